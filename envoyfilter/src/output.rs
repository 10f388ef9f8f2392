//! What a command printed and whether it succeeded: commands return it instead of writing to
//! stdout themselves, so tests see exactly what users see and the binary only writes it out.

use serde_json::Value;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub success: bool,
}

impl Output {
    /// A successful command that printed `stdout` and nothing on stderr.
    pub fn stdout(stdout: String) -> Output {
        Output {
            stdout,
            stderr: String::new(),
            success: true,
        }
    }

    /// `value` as pretty JSON, one trailing newline.
    pub fn json(value: &Value) -> Output {
        let mut stdout = serde_json::to_string_pretty(value).unwrap_or_default();
        stdout.push('\n');
        Output::stdout(stdout)
    }
}
