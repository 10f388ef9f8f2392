//! Options several subcommands share, defined once so that they parse, conflict and default the
//! same way everywhere. A command whose option means a little more says so by replacing the
//! help line (`#[command(mut_arg(...))]`), never by redefining the option.

use crate::input::{read_config, read_wasm, InputError};
use crate::render::istio::{to_json, to_yaml, Scope, TargetRef};
use crate::render::native::Build;
use crate::render::package;
use clap::builder::PossibleValue;
use clap::{Args, ValueEnum};
use meshstats_filter::config::PluginConfig;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// An optional filter configuration.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// Filter configuration; defaults to `{}`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl ConfigArgs {
    /// The configuration's text and parse; `{}` without a file.
    pub fn load(&self) -> Result<(String, PluginConfig), InputError> {
        match &self.config {
            Some(path) => read_config(path),
            None => Ok(("{}".to_string(), PluginConfig::default())),
        }
    }
}

/// Which build of the filter the rendered configuration runs.
#[derive(Debug, Clone, Copy, Args)]
pub struct BuildArgs {
    /// `wasm`: meshstats.wasm in Envoy's Wasm sandbox (any Envoy with Wasm); `native`:
    /// libmeshstats.so as an Envoy dynamic module (faster; only the Envoy release it was
    /// built for, 1.40.0, can load it).
    #[arg(long, value_enum, default_value = "wasm")]
    pub build: Build,
}

// The renderer's enum stays free of clap, like `Direction`.
impl ValueEnum for Build {
    fn value_variants<'a>() -> &'a [Self] {
        &[Build::Wasm, Build::Native]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.as_str()))
    }
}

/// Which workloads: `--selector` or `--target-ref`, not both (none: the whole namespace).
#[derive(Debug, Clone, Args)]
pub struct ScopeArgs {
    /// Workload label `key=value` the resource applies to (repeatable; all must match).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_label, conflicts_with = "target_ref")]
    pub selector: Vec<(String, String)>,
    /// `Kind/name` or `group/Kind/name` (`Gateway/NAME`, `Service/NAME`) the resource
    /// applies to (repeatable).
    #[arg(long, value_name = "KIND/NAME", value_parser = TargetRef::parse)]
    pub target_ref: Vec<TargetRef>,
}

impl ScopeArgs {
    pub fn scope(&self) -> Scope {
        Scope {
            selector: self.selector.clone(),
            target_refs: self.target_ref.clone(),
        }
    }
}

/// The name and namespace of the Istio resources a command renders.
#[derive(Debug, Clone, Args)]
pub struct ResourceArgs {
    #[arg(long, default_value = "istio-system")]
    pub namespace: String,
    #[arg(long, default_value = "meshstats")]
    pub name: String,
}

/// The module's checksum, given or computed from the module.
#[derive(Debug, Clone, Args)]
pub struct ChecksumArgs {
    /// The module's sha256, for `--url`.
    #[arg(long, value_name = "HEX", value_parser = parse_sha256, conflicts_with = "wasm")]
    pub sha256: Option<String>,
    /// Compute `--sha256` from this .wasm file.
    #[arg(long, value_name = "FILE")]
    pub wasm: Option<PathBuf>,
}

impl ChecksumArgs {
    /// `--sha256`, else the checksum of `--wasm` as `url` needs it; `None` without either.
    pub fn resolve(&self, url: &str) -> Result<Option<String>, InputError> {
        match (&self.sha256, &self.wasm) {
            (Some(sha), _) => Ok(Some(sha.clone())),
            (None, Some(wasm)) => checksum(url, wasm).map(Some),
            (None, None) => Ok(None),
        }
    }
}

/// The checksum of `wasm` as `url` needs it: an image's manifest digest for `oci://`.
fn checksum(url: &str, wasm: &Path) -> Result<String, InputError> {
    let bytes = read_wasm(wasm)?;
    if url.starts_with("oci://") {
        let image = package::image(&bytes, "").map_err(|e| InputError::new(wasm, e.to_string()))?;
        Ok(image
            .manifest
            .digest
            .trim_start_matches("sha256:")
            .to_string())
    } else {
        Ok(package::sha256_hex(&bytes))
    }
}

/// Output formats of the Istio targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Documents separated by `---`.
    #[default]
    Yaml,
    /// One document as is; several as a `v1` `List`.
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct FormatArgs {
    #[arg(long, value_enum, default_value_t = Format::Yaml)]
    pub format: Format,
}

impl FormatArgs {
    /// `docs` in the chosen format; YAML puts `comment` (`# ` lines) first, JSON has no
    /// comments.
    pub fn print(&self, comment: &[&str], docs: &[Value]) -> String {
        match self.format {
            Format::Yaml => to_yaml(comment, docs),
            Format::Json => to_json(docs),
        }
    }
}

/// `key=value`, for `--selector`.
pub fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() && !k.contains('*') && !v.contains('*') => {
            Ok((k.to_string(), v.to_string()))
        }
        _ => Err(format!("expected key=value (no wildcards), got {text:?}")),
    }
}

pub fn parse_sha256(text: &str) -> Result<String, String> {
    let hex = text.strip_prefix("sha256:").unwrap_or(text);
    if hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(hex.to_string())
    } else {
        Err(format!("expected 64 lower-case hex digits, got {text:?}"))
    }
}

pub fn parse_url(text: &str) -> Result<String, String> {
    match text.split_once("://") {
        Some(("oci" | "file" | "http" | "https", rest)) if !rest.is_empty() => Ok(text.to_string()),
        _ => Err(format!(
            "expected an oci://, file://, http:// or https:// url, got {text:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_are_exact_labels() {
        assert!(parse_label("app=ratings").is_ok());
        assert!(parse_label("app").is_err());
        assert!(parse_label("app=rat*").is_err());
    }
}
