//! `meshstats validate FILE...`: each file checked exactly as the filter will parse it.

use crate::input::read_config;
use crate::output::Output;
use clap::Args;
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Debug, Clone, Args)]
pub struct ValidateArgs {
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Reports every file and fails at the end, so one bad file does not hide the others.
pub fn validate(args: &ValidateArgs) -> Output {
    let mut out = Output {
        success: true,
        ..Output::default()
    };
    for path in &args.files {
        // Infallible: writing to a String.
        let _ = match read_config(path) {
            Ok(_) => writeln!(out.stdout, "{}: ok", path.display()),
            Err(e) => {
                out.success = false;
                writeln!(out.stderr, "{e}")
            }
        };
    }
    out
}
