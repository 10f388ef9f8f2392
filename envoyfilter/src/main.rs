//! `meshstats`: see `meshstats_cli::cli` for the commands.

use clap::Parser;
use meshstats_cli::cli::{run, Cli};
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    match try_main() {
        Ok(code) => code,
        // `| head` closing the pipe early is not an error worth reporting.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        // Display, not anyhow's Debug: one line, no backtrace even under RUST_BACKTRACE.
        Err(e) => {
            eprintln!("meshstats: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn try_main() -> anyhow::Result<ExitCode> {
    let output = run(&Cli::parse())?;
    std::io::stdout().write_all(output.stdout.as_bytes())?;
    std::io::stderr().write_all(output.stderr.as_bytes())?;
    Ok(if output.success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}
