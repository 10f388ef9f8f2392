//! Reading the files named on the command line. Every error names the file, because the
//! tool is usually run over several at once (CI, `validate *.json`).

use crate::render::package::is_wasm;
use meshstats_filter::config::PluginConfig;
use meshstats_filter::plugin::Compiled;
use serde_json::Value;
use std::fmt;
use std::path::{Path, PathBuf};

/// A file that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    pub path: PathBuf,
    pub reason: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for InputError {}

impl InputError {
    pub fn new(path: &Path, reason: impl Into<String>) -> InputError {
        InputError {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

pub fn read_text(path: &Path) -> Result<String, InputError> {
    std::fs::read_to_string(path).map_err(|e| InputError::new(path, format!("cannot read: {e}")))
}

/// A filter configuration: its text (to pass to Envoy untouched) and what it parses to.
/// It must compile without a single problem; the reason on failure is exactly the
/// `ConfigError` text the filter itself logs, one line per problem, each naming the file.
/// Rendering refuses a dimension that cannot be evaluated too: the filter would run it as
/// `unknown`, which is never what the author meant (`meshstats validate` tells them apart).
pub fn read_config(path: &Path) -> Result<(String, PluginConfig), InputError> {
    let (text, compiled) = compile_config(path)?;
    let all: Vec<String> = compiled
        .problems
        .iter()
        .chain(&compiled.unevaluable)
        .map(|p| p.to_string())
        .collect();
    if !all.is_empty() {
        return Err(InputError::new(
            path,
            all.join(&format!("\n{}: ", path.display())),
        ));
    }
    Ok((text, compiled.config))
}

/// A filter configuration compiled as the filter does, whatever its problems; `Err` only when
/// it cannot be read or parsed at all.
pub fn compile_config(path: &Path) -> Result<(String, Compiled), InputError> {
    let text = read_text(path)?;
    let compiled =
        meshstats_filter::compile(&text).map_err(|e| InputError::new(path, e.to_string()))?;
    Ok((text, compiled))
}

/// A JSON object (node or cluster metadata); anything else is refused here rather than by
/// Envoy, whose message would not name the file.
pub fn read_json_object(path: &Path) -> Result<Value, InputError> {
    let text = read_text(path)?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| InputError::new(path, format!("not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(InputError::new(
            path,
            format!("expected a JSON object, got {}", kind(&value)),
        ));
    }
    Ok(value)
}

/// A WebAssembly module (`render wasmplugin --wasm`, `package`); refused here if it is not one,
/// before its digest ends up in a manifest.
pub fn read_wasm(path: &Path) -> Result<Vec<u8>, InputError> {
    let bytes =
        std::fs::read(path).map_err(|e| InputError::new(path, format!("cannot read: {e}")))?;
    if !is_wasm(&bytes) {
        return Err(InputError::new(
            path,
            "not a WebAssembly module (no \\0asm header)",
        ));
    }
    Ok(bytes)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("meshstats-cli-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn errors_name_the_file_and_reason() {
        let missing = Path::new("/nonexistent/meshstats.json");
        let e = read_json_object(missing).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/meshstats.json: cannot read: "),
            "{e}"
        );

        let p = temp_file("bad.json", "{nope");
        let e = read_json_object(&p).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("{}: not valid JSON: ", p.display())),
            "{e}"
        );

        let p = temp_file("array.json", "[1]");
        assert_eq!(
            read_json_object(&p).unwrap_err().reason,
            "expected a JSON object, got an array"
        );
    }

    #[test]
    fn config_errors_are_the_filters_own_text() {
        let p = temp_file("typo.json", r#"{"reporter": "CLIENT"}"#);
        let e = read_config(&p).unwrap_err();
        let expected = PluginConfig::parse(r#"{"reporter": "CLIENT"}"#)
            .unwrap_err()
            .to_string();
        assert_eq!(e.reason, expected);
        assert_eq!(e.to_string(), format!("{}: {expected}", p.display()));

        let p = temp_file(
            "badtag.json",
            r#"{"metrics": [{"tags_to_remove": ["nope"]}]}"#,
        );
        assert_eq!(
            read_config(&p).unwrap_err().reason,
            "invalid meshstats config at `metrics[0].tags_to_remove[0]`: \"nope\" is not a label of this metric",
            "validate checks what the filter compiles, not just the JSON shape"
        );

        let text = " {\"debug\": \"false\"}\n";
        let p = temp_file("ok.json", text);
        assert_eq!(read_config(&p).unwrap().0, text, "text is kept verbatim");
    }
}
