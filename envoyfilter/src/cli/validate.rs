//! `meshstats validate FILE...`: each file checked exactly as the filter will parse it, and
//! the metrics it will emit, each with its labels.

use crate::input::compile_config;
use crate::output::Output;
use clap::Args;
use meshstats_filter::config::MetricKind;
use meshstats_filter::plugin::{Compiled, UNEVALUABLE_CONSEQUENCE};
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Debug, Clone, Args)]
pub struct ValidateArgs {
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Reports every file and fails at the end, so one bad file does not hide the others.
/// Problems (parts the filter leaves out) fail; warnings (dimensions that cannot be evaluated,
/// which the filter keeps as `unknown`, as Istio does) do not.
pub fn validate(args: &ValidateArgs) -> Output {
    let mut out = Output {
        success: true,
        ..Output::default()
    };
    for path in &args.files {
        let file = path.display();
        let compiled = match compile_config(path) {
            Ok((_, c)) => c,
            Err(e) => {
                out.success = false;
                // Infallible: writing to a String.
                let _ = writeln!(out.stderr, "{e}");
                continue;
            }
        };
        for p in &compiled.problems {
            let _ = writeln!(out.stderr, "{file}: {p}");
        }
        for w in &compiled.unevaluable {
            let _ = writeln!(
                out.stderr,
                "{file}: warning: {w}; {UNEVALUABLE_CONSEQUENCE}"
            );
        }
        let (problems, warnings) = (compiled.problems.len(), compiled.unevaluable.len());
        let verdict = match (problems, warnings) {
            (0, 0) => "ok".to_string(),
            (0, w) => format!("ok, {}", count(w, "warning")),
            (p, 0) => format!("{}; the filter loads the rest", count(p, "problem")),
            (p, w) => format!(
                "{}, {}; the filter loads the rest",
                count(p, "problem"),
                count(w, "warning")
            ),
        };
        out.success &= problems == 0;
        let _ = writeln!(out.stdout, "{file}: {verdict}");
        list_metrics(&mut out.stdout, &compiled);
    }
    out
}

fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// One line per metric: `  istio_custom COUNTER: reporter, source_principal`.
fn list_metrics(out: &mut String, compiled: &Compiled) {
    for (name, kind, labels) in compiled.metrics.metrics() {
        let kind = match kind {
            MetricKind::Counter => "COUNTER",
            MetricKind::Gauge => "GAUGE",
            MetricKind::Histogram => "HISTOGRAM",
        };
        let labels = if labels.is_empty() {
            "(no labels)".to_string()
        } else {
            labels.join(", ")
        };
        let _ = writeln!(out, "  {name} {kind}: {labels}");
    }
}
