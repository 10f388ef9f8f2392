//! From `logs[]` to a [`LogTable`], with the failure semantics of metrics: a broken part
//! disables only what it belongs to and is reported as a problem.
//! - a variable whose expression does not compile (or that is named `level`, `time` or
//!   `instance`) is left out of the log's lines;
//! - a `match` that does not compile, an empty name or a `sampling` outside (0, 1] disable
//!   the log (a predicate that cannot be decided is false; a bad rate must not flood);
//! - a severity or timestamp that does not compile falls back to its default (`info`, the
//!   request's start).

use super::{json, presets, Log, LogTable, Sampler, Variable, RESERVED};
use crate::attributes::vocabulary::Vocabulary;
use crate::config::{ConfigError, LogConfig, PluginConfig};
use crate::expr::{self, Program, Type};
use std::collections::BTreeMap;

const DEFAULT_TIMESTAMP: &str = "request.time";

/// Severities Mixer's stdio handler knew; written bare (`"severity": "warning"`) they are no
/// attribute, so they are read as the string they name instead of failing.
const LEVEL_NAMES: [&str; 7] = [
    "info",
    "informational",
    "warn",
    "warning",
    "error",
    "err",
    "fatal",
];

/// Compiles `config.logs`, resolving attributes through `vocab`. Call it after the metrics:
/// the slots resolved until then are the metrics', which every request fills anyway.
pub fn compile(config: &PluginConfig, vocab: &mut Vocabulary) -> (LogTable, Vec<ConfigError>) {
    let mut eager: Vec<usize> = (0..vocab.slots().len()).collect();
    let mut c = Compiler {
        vocab,
        problems: Vec::new(),
    };
    let mut logs = Vec::new();
    for (i, log) in config.logs.iter().enumerate() {
        if let Some(log) = c.log(i, log, &mut eager) {
            logs.push(log);
        }
    }
    eager.sort_unstable();
    eager.dedup();
    // A later log's `match` may make an earlier log's slot eager: it is read once either way.
    for log in &mut logs {
        log.lazy.retain(|s| eager.binary_search(s).is_err());
    }
    let table = LogTable {
        logs,
        delivery: config.log_delivery,
        eager,
        ..LogTable::default()
    };
    (table, c.problems)
}

struct Compiler<'v> {
    vocab: &'v mut Vocabulary,
    problems: Vec<ConfigError>,
}

impl Compiler<'_> {
    fn problem(&mut self, path: String, reason: String) {
        self.problems.push(ConfigError { path, reason });
    }

    fn program(&mut self, path: &str, source: &str, ty: Option<Type>) -> Option<Program> {
        match expr::compile(source, ty, self.vocab) {
            Ok(p) => Some(p),
            Err(e) => {
                self.problem(path.to_string(), format!("{e} in `{source}`"));
                None
            }
        }
    }

    fn log(&mut self, i: usize, config: &LogConfig, eager: &mut Vec<usize>) -> Option<Log> {
        let at = |field: &str| format!("logs[{i}].{field}");
        if config.name.is_empty() {
            self.problem(at("name"), "must not be empty".into());
            return None;
        }
        let sampler = match config.sampling {
            None => Sampler::new(1.0),
            Some(f) if f > 0.0 && f <= 1.0 => Sampler::new(f),
            Some(f) => {
                self.problem(
                    at("sampling"),
                    format!("must be a fraction in (0, 1], got {f}"),
                );
                return None;
            }
        };
        let matcher = if config.match_.trim().is_empty() {
            None
        } else {
            let m = self.program(&at("match"), &config.match_, Some(Type::Bool))?;
            eager.extend_from_slice(m.slots());
            Some(m)
        };
        let severity = config.severity.as_deref().and_then(|s| {
            let bare = s.trim();
            let quoted;
            let source = if LEVEL_NAMES.iter().any(|n| n.eq_ignore_ascii_case(bare)) {
                quoted = format!("'{bare}'");
                &quoted
            } else {
                s
            };
            self.program(&at("severity"), source, Some(Type::String))
        });
        let timestamp = config
            .timestamp
            .as_deref()
            .and_then(|t| self.program(&at("timestamp"), t, Some(Type::Timestamp)))
            .or_else(|| expr::compile(DEFAULT_TIMESTAMP, Some(Type::Timestamp), self.vocab).ok());
        let variables = self.variables(i, config);
        let mut lazy: Vec<usize> = severity
            .iter()
            .chain(&timestamp)
            .flat_map(|p| p.slots().iter().copied())
            .collect();
        lazy.extend(
            variables
                .iter()
                .flat_map(|v| v.program.slots().iter().copied()),
        );
        lazy.sort_unstable();
        lazy.dedup();
        let mut instance = String::from(",\"instance\":");
        json::write_str(
            &mut instance,
            config.instance.as_deref().unwrap_or(&config.name),
        );
        Some(Log {
            instance,
            matcher,
            severity,
            timestamp,
            variables,
            lazy,
            sampler,
        })
    }

    /// The preset's variables, then `variables` (which may override them), sorted by name.
    fn variables(&mut self, i: usize, config: &LogConfig) -> Vec<Variable> {
        let mut sources: BTreeMap<&str, (&str, bool, String)> = BTreeMap::new();
        if let Some(preset) = config.preset {
            let (vars, null_if_absent) = presets::variables(preset);
            for (name, source) in vars {
                sources.insert(
                    name,
                    (source, null_if_absent, format!("logs[{i}].preset.{name}")),
                );
            }
        }
        for (name, source) in &config.variables {
            sources.insert(name, (source, false, format!("logs[{i}].variables.{name}")));
        }
        let mut out = Vec::new();
        for (name, (source, null_if_absent, path)) in sources {
            if RESERVED.contains(&name) {
                let reason = format!("`{name}` is a field of every line (level, time, instance); choose another name");
                self.problem(path, reason);
                continue;
            }
            let Some(program) = self.program(&path, source, None) else {
                continue;
            };
            let mut key = String::from(",");
            json::write_str(&mut key, name);
            key.push(':');
            out.push(Variable {
                key,
                program,
                null_if_absent,
            });
        }
        out
    }
}
