//! `make soak`: 1,000,000 requests (by default) through the two Bookinfo sidecars, half over
//! keep-alive connections and half each on a new connection, then the exact accounting on
//! both sides (`meshstats_integration::soak`). Exit status 1 when any count is off.
//!
//! Usage: `meshstats-soak [--requests N] [--connections C] [--budget-secs S]`. Uses
//! `ENVOY_BIN`, `MESHSTATS_WASM` like the tests.

use meshstats_integration::soak::{self, SoakOptions};
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: meshstats-soak [--requests N] [--connections C] [--budget-secs S]\n  \
    --requests N      requests in total, half keep-alive, half on new connections (default 1000000)\n  \
    --connections C   concurrent connections, half of each kind (default 8)\n  \
    --budget-secs S   stop sending after S seconds whatever was sent (default 3600)";

/// Upper bounds, so a typo cannot make a run that never ends.
const MAX_REQUESTS: u64 = 100_000_000;
const MAX_CONNECTIONS: usize = 256;
const MAX_BUDGET_SECS: u64 = 6 * 3600;

fn parse_args() -> Result<SoakOptions, String> {
    let mut options = SoakOptions {
        requests: 1_000_000,
        connections: 8,
        budget: Duration::from_secs(3600),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || -> Result<u64, String> {
            let v = args.next().ok_or(format!("{flag} needs a value"))?;
            v.parse().map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--requests" => options.requests = value()?.clamp(2, MAX_REQUESTS),
            "--connections" => {
                let c = usize::try_from(value()?).unwrap_or(MAX_CONNECTIONS);
                options.connections = c.clamp(2, MAX_CONNECTIONS);
            }
            "--budget-secs" => {
                options.budget = Duration::from_secs(value()?.clamp(1, MAX_BUDGET_SECS))
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(options)
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    eprintln!(
        "soak: {} requests over {} connections (budget {:?})",
        options.requests, options.connections, options.budget
    );
    match soak::run(&options) {
        Ok(report) => {
            print!("{report}");
            let problems = report.problems(options.requests);
            if problems.is_empty() {
                println!("soak: every request counted and logged exactly once on both sides");
                ExitCode::SUCCESS
            } else {
                for p in &problems {
                    println!("soak: WRONG: {p}");
                }
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::FAILURE
        }
    }
}
