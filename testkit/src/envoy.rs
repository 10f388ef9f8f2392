//! The Envoy under test, and its verdict on a configuration (`envoy --mode validate`).

use crate::artifacts::artifact;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Envoy binary: `$ENVOY_BIN`, else `<workspace>/.venv/bin/envoy` (what `make setup`
/// installs). Panics if it is missing: a test against Envoy must fail, never skip.
pub fn envoy_bin() -> PathBuf {
    artifact("ENVOY_BIN", ".venv/bin/envoy", "make setup")
}

/// The arguments before the configuration's path, the same wherever the project validates
/// (`scripts/validate-envoy-configs.sh` and `scripts/compat.sh` spell them out; a test below
/// holds them to it):
/// - `--log-level warn`: Envoy reports a rejected configuration at `critical`; the `info`
///   lines it prints for every listener and cluster it loads would only bury that line.
/// - no `--disable-hot-restart`: validate mode never sets hot restart up (no shared memory,
///   no domain socket), so validations running side by side, or beside running Envoys,
///   cannot collide.
const VALIDATE_ARGS: [&str; 5] = ["--mode", "validate", "--log-level", "warn", "-c"];

/// `envoy --mode validate` on the configuration in `config`: `Ok`, or `Err` with Envoy's
/// stdout and stderr. Validate mode parses the whole configuration and loads every Wasm
/// module (see [`crate::stand_in_filter`]), without binding any port.
pub fn envoy_validate(config: &Path) -> Result<(), String> {
    let bin = envoy_bin();
    let out = Command::new(&bin)
        .args(VALIDATE_ARGS)
        .arg(config)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// [`envoy_validate`] on `config`, written (pretty-printed) to `dir/<name>.json` first, where
/// it stays for a look after a failure.
pub fn envoy_validate_json(dir: &Path, name: &str, config: &Value) -> Result<(), String> {
    let path = dir.join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(config).expect("a JSON value serializes");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    envoy_validate(&path)
}

#[cfg(test)]
mod tests {
    use super::VALIDATE_ARGS;
    use crate::workspace_root;

    /// The scripts that run `envoy --mode validate` themselves pass exactly these arguments.
    #[test]
    fn scripts_validate_with_the_same_arguments() {
        let args = VALIDATE_ARGS.join(" ");
        for script in ["scripts/validate-envoy-configs.sh", "scripts/compat.sh"] {
            let text = std::fs::read_to_string(workspace_root().join(script))
                .unwrap_or_else(|e| panic!("{script}: {e}"));
            // An invocation: the quoted binary's path, then the mode (not the messages that
            // name the command).
            let runs: Vec<&str> = text
                .lines()
                .filter(|l| l.contains("\" --mode validate"))
                .collect();
            assert!(
                !runs.is_empty(),
                "{script} no longer runs envoy --mode validate"
            );
            for line in runs {
                assert!(
                    line.contains(&args),
                    "{script}: `{line}` does not pass `{args}`"
                );
            }
        }
    }
}
