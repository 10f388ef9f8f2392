//! `meshstats mixer import FILE...`: the configuration on stdout, the report on stderr.

use crate::input::{read_text, InputError};
use crate::mixer::import;
use crate::output::Output;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

pub fn mixer_import(args: &ImportArgs) -> Result<Output, InputError> {
    let mut inputs = Vec::new();
    for path in &args.files {
        inputs.push((path.display().to_string(), read_text(path)?));
    }
    let imported = import(&inputs).map_err(|(origin, reason)| InputError {
        path: PathBuf::from(origin),
        reason,
    })?;
    let mut stderr = String::new();
    for w in &imported.warnings {
        stderr.push_str(&w.to_string());
        stderr.push('\n');
    }
    match imported.config {
        Some(config) => Ok(Output {
            stderr,
            ..Output::json(&config)
        }),
        None => {
            stderr.push_str("meshstats: nothing to import: no metric or logentry instance reaches a prometheus or stdio handler through a rule\n");
            Ok(Output {
                stdout: String::new(),
                stderr,
                success: false,
            })
        }
    }
}
