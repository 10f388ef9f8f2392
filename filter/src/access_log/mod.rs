//! JSON access logs defined like Mixer `logentry` instances (`logs[]` in the configuration).
//!
//! Each entry is one line in the shape of Mixer's stdio handler with `outputAsJson`:
//! `{"level":"warn","time":"2018-11-14T01:46:26.528539Z","instance":"newlog.logentry.istio-system",`
//! then the variables sorted by name (byte order, as Go's `sort.Strings`). Values are
//! written by [`json::write_value`]; a variable that fails to evaluate is left out of its line
//! (a preset may write `null` instead, see [`presets`]).
//!
//! Per request, at stream end and after the metrics: each log's `match` runs over the slots
//! every request fills; then its sampler; only then are the attributes that just its
//! variables, severity and timestamp read ([`LogTable::eager_slots`] are the others), so a
//! request no log selects costs no host call at all. Delivery ([`LogDelivery`]):
//! - `filter_state`: all of the request's entries, joined by `\n`, in one `set_property` of
//!   [`LOG_PROPERTY`]; Envoy's stdout access logger prints it with
//!   `%FILTER_STATE(wasm.meshstats_log:PLAIN)%`;
//! - `proxy_log`: one info-level proxy log call per entry (`wasm log <plugin>: <line>`).

mod compile;
pub mod json;
pub mod presets;

#[cfg(test)]
mod json_tests;
#[cfg(test)]
mod tests;

use crate::attributes::slots::{self, Inputs};
use crate::attributes::vocabulary::SlotDef;
use crate::config::LogDelivery;
use crate::expr::{Attr, Program, Value};
use crate::host::{Host, LogLevel};

pub use compile::compile;

/// The property (filter state `wasm.meshstats_log`) the filter stores a request's entries in.
pub const LOG_PROPERTY: &str = "meshstats_log";

/// Names every line starts with; a variable may not take them.
pub const RESERVED: [&str; 3] = ["level", "time", "instance"];

/// Parts per million of [`Sampler`]: the resolution of `sampling`.
const MILLION: u32 = 1_000_000;

/// The compiled `logs[]`.
#[derive(Debug, Default)]
pub struct LogTable {
    logs: Vec<Log>,
    delivery: LogDelivery,
    /// Slots every request fills: all the metrics use, and those of the logs' `match`es.
    eager: Vec<usize>,
    /// Which slots hold this request's values, once a log was selected.
    filled: Vec<bool>,
    /// This request's lines.
    out: String,
    /// Scratch for sorting map keys.
    order: Vec<usize>,
}

#[derive(Debug)]
struct Log {
    /// `,"instance":"…"`, escaped once.
    instance: String,
    /// `None`: every request.
    matcher: Option<Program>,
    /// `None`: `info`.
    severity: Option<Program>,
    /// `None` only if even the default failed to compile: the line has no `time`.
    timestamp: Option<Program>,
    /// Sorted by name.
    variables: Vec<Variable>,
    /// The slots only this log's severity, timestamp and variables read (none eager).
    lazy: Vec<usize>,
    sampler: Sampler,
}

#[derive(Debug)]
struct Variable {
    /// `,"name":`, escaped once.
    key: String,
    program: Program,
    /// Write `null` when it fails, instead of leaving the field out.
    null_if_absent: bool,
}

/// Deterministic sampling: each request the `match` selects adds `rate` (parts per million)
/// to `credit`, and is logged when the credit reaches a million. So `0.25` logs exactly every
/// 4th matching request, `0.3` 3 of every 10, counted per Wasm VM (one per worker thread);
/// the first matching request on each VM is logged. No randomness: tests and replays see the
/// same entries.
#[derive(Debug, Clone, Copy)]
struct Sampler {
    rate: u32,
    credit: u32,
}

impl Sampler {
    /// `fraction` in (0, 1]; anything below one per million logs one per million.
    fn new(fraction: f64) -> Sampler {
        let rate = (fraction * f64::from(MILLION))
            .round()
            .clamp(1.0, f64::from(MILLION)) as u32;
        Sampler {
            rate,
            credit: MILLION - rate,
        }
    }

    fn take(&mut self) -> bool {
        self.credit += self.rate;
        if self.credit >= MILLION {
            self.credit -= MILLION;
            return true;
        }
        false
    }
}

/// The line's `level` from a severity, with the stdio handler's names in any case:
/// `warn`/`warning` → warn, `error`/`err`/`fatal` → error, anything else (`info`, `Info`,
/// `informational`, `""`, …) → info.
pub fn level(severity: &str) -> &'static str {
    let is = |name: &str| severity.eq_ignore_ascii_case(name);
    if is("warning") || is("warn") {
        "warn"
    } else if is("error") || is("err") || is("fatal") {
        "error"
    } else {
        "info"
    }
}

impl LogTable {
    pub fn is_empty(&self) -> bool {
        self.logs.is_empty()
    }

    /// The slots to fill for every request, sorted.
    pub fn eager_slots(&self) -> &[usize] {
        &self.eager
    }

    /// Writes and delivers this request's entries. `values` holds the eager slots; the others
    /// are read here, only for selected logs.
    pub fn record<H: Host>(
        &mut self,
        inputs: &Inputs<'_, H>,
        defs: &[SlotDef],
        values: &mut [Option<Attr>],
    ) {
        let LogTable {
            logs,
            delivery,
            filled,
            out,
            order,
            ..
        } = self;
        out.clear();
        let mut any = false;
        for log in logs.iter_mut() {
            // A `match` that cannot be decided is false, as for metrics.
            let matched = log
                .matcher
                .as_ref()
                .is_none_or(|m| m.eval_bool(values) == Ok(true));
            if !matched || !log.sampler.take() {
                continue;
            }
            if !any {
                filled.clear();
                filled.resize(defs.len(), false);
                any = true;
            }
            for &slot in &log.lazy {
                if let Some(done) = filled.get_mut(slot).filter(|done| !**done) {
                    slots::fill_some(defs, values, &[slot], inputs);
                    *done = true;
                }
            }
            match delivery {
                LogDelivery::FilterState => {
                    if !out.is_empty() {
                        out.push('\n');
                    }
                    log.write(values, out, order);
                }
                LogDelivery::ProxyLog => {
                    out.clear();
                    log.write(values, out, order);
                    inputs.host.log(LogLevel::Info, out);
                }
            }
        }
        if *delivery == LogDelivery::FilterState && !out.is_empty() {
            inputs.host.set_property(&[LOG_PROPERTY], out.as_bytes());
        }
    }
}

impl Log {
    fn write(&self, values: &[Option<Attr>], out: &mut String, order: &mut Vec<usize>) {
        let level = match self.severity.as_ref().map(|s| s.eval(values)) {
            Some(Ok(Value::Str(s))) => level(&s),
            _ => "info",
        };
        out.push_str("{\"level\":\"");
        out.push_str(level);
        out.push('"');
        // A time that cannot be evaluated is left out, like a variable.
        if let Some(Ok(Value::Timestamp(ns))) = self.timestamp.as_ref().map(|t| t.eval(values)) {
            out.push_str(",\"time\":");
            json::write_time(out, ns);
        }
        out.push_str(&self.instance);
        for v in &self.variables {
            match v.program.eval(values) {
                Ok(value) => {
                    out.push_str(&v.key);
                    json::write_value(out, &value, order);
                }
                Err(_) if v.null_if_absent => {
                    out.push_str(&v.key);
                    out.push_str("null");
                }
                Err(_) => {}
            }
        }
        out.push('}');
    }
}
