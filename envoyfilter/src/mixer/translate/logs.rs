//! Mixer's stdio handlers and the logentry instances they write → `logs`.

use super::report::{absent_reason, object_keys, Report};
use super::rules::Routes;
use crate::mixer::expr::{carry, quote, string_literal};
use crate::mixer::resources::{field, scalar, Resource, Role};
use meshstats_filter::expr::Type;
use serde_json::{Map, Value};

/// Fields of a logentry instance that the mapping reads, or that Mixer's stdio handler never
/// read (`monitored_resource_*`: Stackdriver's).
const LOGENTRY_FIELDS: &[&str] = &[
    "severity",
    "timestamp",
    "variables",
    "monitored_resource_type",
    "monitoredResourceType",
    "monitored_resource_dimensions",
    "monitoredResourceDimensions",
];

/// The imported access logs.
#[derive(Debug, Default)]
pub struct Logs {
    pub entries: Vec<Value>,
}

impl Logs {
    /// A stdio handler: one log per logentry instance that rules send it.
    pub fn stdio(&mut self, report: &mut Report, routes: &Routes, at: usize, params: &Value) {
        let resources = report.resources;
        let mut levels: Vec<(String, Level)> = DEFAULT_SEVERITY_LEVELS
            .iter()
            .map(|(k, l)| (k.to_string(), *l))
            .collect();
        for key in object_keys(params) {
            let value = params.get(&key).cloned().unwrap_or(Value::Null);
            match key.as_str() {
                "severity_levels" | "severityLevels" => {
                    for (k, v) in value.as_object().cloned().unwrap_or_default() {
                        match Level::parse(&v) {
                            Some(l) => {
                                levels.retain(|(x, _)| *x != k);
                                levels.push((k, l));
                            }
                            None => report.warn(
                                at,
                                format!("{key}.{k}"),
                                format!(
                                    "{v} is not a level (INFO, WARNING, ERROR or 0, 1, 2); ignored"
                                ),
                            ),
                        }
                    }
                }
                "outputAsJson" | "output_as_json" => {
                    if value == Value::Bool(false) {
                        report.warn(
                            at,
                            key,
                            "Mixer's console format is not available: entries are JSON",
                        );
                    }
                }
                "logStream" | "log_stream" => {
                    if value.as_str() != Some("STDOUT") && value.as_i64() != Some(0) {
                        report.warn(at, key, format!("{value} is not carried over: entries go to the sidecar's stdout (or its Envoy log)"));
                    }
                }
                "outputLevel" | "output_level" => {
                    if Level::parse(&value) != Some(Level::Info) {
                        report.warn(
                            at,
                            key,
                            "not carried over: every entry is written whatever its level",
                        );
                    }
                }
                _ => report.warn(at, key, "not carried over"),
            }
        }
        let mut seen = Vec::new();
        for instance in routes.sent_to(at) {
            if seen.contains(&instance) {
                continue;
            }
            seen.push(instance);
            report.accounted.push(instance);
            let Some(Role::Instance { template, params }) =
                resources.get(instance).map(|r| r.role.clone())
            else {
                continue;
            };
            let fqn = resources
                .get(instance)
                .map(Resource::fqn)
                .unwrap_or_default();
            if template != "logentry" {
                report.warn(at, "", format!("rules send the {template} {fqn} here: stdio's metric lines are not carried over (the metric is imported where a prometheus handler has it)"));
                continue;
            }
            let match_ = routes.combined_match(at, instance).flatten();
            self.log(report, instance, &params, match_, &levels);
        }
    }

    fn log(
        &mut self,
        report: &mut Report,
        instance: usize,
        params: &Value,
        match_: Option<String>,
        levels: &[(String, Level)],
    ) {
        let Some(res) = report.resources.get(instance) else {
            return;
        };
        let (short, fqn) = (res.name.clone(), res.fqn());
        for key in object_keys(params) {
            if !LOGENTRY_FIELDS.contains(&key.as_str()) {
                report.warn(instance, key, "not carried over");
            }
        }
        let mut log = Map::new();
        let taken = self
            .entries
            .iter()
            .any(|l| l.get("name").and_then(Value::as_str) == Some(short.as_str()));
        log.insert(
            "name".into(),
            Value::String(if taken { fqn.clone() } else { short }),
        );
        log.insert("instance".into(), Value::String(fqn));
        if let Some(m) = match_ {
            log.insert("match".into(), Value::String(m));
        }
        if let Some(sev) = field(params, &["severity"])
            .and_then(scalar)
            .filter(|s| !s.trim().is_empty())
        {
            match severity(&sev, levels) {
                Ok(s) => {
                    log.insert("severity".into(), Value::String(s));
                }
                Err(reason) => {
                    report.warn(instance, "severity", format!("{reason}; the level is info"))
                }
            }
        }
        if let Some(ts) = field(params, &["timestamp"])
            .and_then(scalar)
            .filter(|s| !s.trim().is_empty())
        {
            match carry(&ts, Some(Type::Timestamp)) {
                Ok(c) => {
                    for a in &c.absent {
                        report.warn(instance, "timestamp", absent_reason(a, &c.source));
                    }
                    log.insert("timestamp".into(), Value::String(c.source));
                }
                Err(reason) => report.warn(
                    instance,
                    "timestamp",
                    format!("{reason}; the time is the request's start"),
                ),
            }
        }
        let mut variables = Map::new();
        let vars = field(params, &["variables"])
            .cloned()
            .unwrap_or(Value::Object(Map::new()));
        for name in object_keys(&vars) {
            let Some(src) = vars.get(&name).and_then(scalar) else {
                continue;
            };
            if ["level", "time", "instance"].contains(&name.as_str()) {
                report.warn(
                    instance,
                    format!("variables.{name}"),
                    "`level`, `time` and `instance` are fields of every line; left out",
                );
                continue;
            }
            match carry(&src, None) {
                Ok(c) => {
                    for a in &c.absent {
                        report.warn(
                            instance,
                            format!("variables.{name}"),
                            absent_reason(a, &c.source),
                        );
                    }
                    variables.insert(name, Value::String(c.source));
                }
                Err(reason) => report.warn(
                    instance,
                    format!("variables.{name}"),
                    format!("{reason}; the variable is left out"),
                ),
            }
        }
        log.insert("variables".into(), Value::Object(variables));
        self.entries.push(Value::Object(log));
    }
}

/// The stdio handler's levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warning,
    Error,
}

impl Level {
    fn parse(v: &Value) -> Option<Level> {
        match (v.as_i64(), v.as_str()) {
            (Some(0), _) | (_, Some("INFO")) => Some(Level::Info),
            (Some(1), _) | (_, Some("WARNING")) => Some(Level::Warning),
            (Some(2), _) | (_, Some("ERROR")) => Some(Level::Error),
            _ => None,
        }
    }

    fn literal(self) -> &'static str {
        match self {
            Level::Info => "\"info\"",
            Level::Warning => "\"warning\"",
            Level::Error => "\"error\"",
        }
    }

    /// How the filter maps a severity value (docs/access-logs.md).
    fn ours(severity: &str) -> Level {
        let s = severity.to_ascii_lowercase();
        match s.as_str() {
            "warn" | "warning" => Level::Warning,
            "error" | "err" | "fatal" => Level::Error,
            _ => Level::Info,
        }
    }
}

/// The stdio handler's default `severity_levels`, which a handler's own entries extend.
const DEFAULT_SEVERITY_LEVELS: &[(&str, Level)] = &[
    ("INFORMATIONAL", Level::Info),
    ("informational", Level::Info),
    ("INFO", Level::Info),
    ("info", Level::Info),
    ("WARNING", Level::Warning),
    ("warning", Level::Warning),
    ("WARN", Level::Warning),
    ("warn", Level::Warning),
    ("ERROR", Level::Error),
    ("error", Level::Error),
    ("ERR", Level::Error),
    ("err", Level::Error),
    ("FATAL", Level::Error),
    ("fatal", Level::Error),
];

/// The logentry's severity, so that the filter's mapping gives the level Mixer's handler gave:
/// Mixer looked the value up in `severity_levels` exactly (anything else was info), the filter
/// maps level names in any case. A literal is kept when both agree, else replaced by the level;
/// an expression is wrapped in the handler's table.
fn severity(source: &str, levels: &[(String, Level)]) -> Result<String, String> {
    let mixer = |v: &str| {
        levels
            .iter()
            .find(|(k, _)| k == v)
            .map_or(Level::Info, |(_, l)| *l)
    };
    if let Some(v) = string_literal(source) {
        return Ok(if mixer(&v) == Level::ours(&v) {
            source.trim().to_string()
        } else {
            mixer(&v).literal().to_string()
        });
    }
    let c = carry(source, Some(Type::String))?;
    let list = |level: Level| {
        let keys: Vec<String> = levels
            .iter()
            .filter(|(_, l)| *l == level)
            .map(|(k, _)| quote(k))
            .collect();
        format!("[{}]", keys.join(", "))
    };
    let s = c.source;
    Ok(format!(
        "conditional(({s}) in {}, \"warning\", conditional(({s}) in {}, \"error\", \"info\"))",
        list(Level::Warning),
        list(Level::Error)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mixer::expr;

    #[test]
    fn severities_as_mixer_mapped_them() {
        let levels: Vec<(String, Level)> = DEFAULT_SEVERITY_LEVELS
            .iter()
            .map(|(k, l)| (k.to_string(), *l))
            .collect();
        assert_eq!(severity("\"warning\"", &levels).unwrap(), "\"warning\"");
        assert_eq!(severity("\"Info\"", &levels).unwrap(), "\"Info\"");
        // Mixer: not in the table, so info; the filter would say warn.
        assert_eq!(severity("\"Warning\"", &levels).unwrap(), "\"info\"");
        let mut custom = levels.clone();
        custom.push(("Critical".into(), Level::Error));
        assert_eq!(severity("'Critical'", &custom).unwrap(), "\"error\"");
        let wrapped = severity("request.headers[\"x-level\"] | \"info\"", &levels).unwrap();
        assert!(wrapped.starts_with("conditional((request.headers[\"x-level\"] | \"info\") in [\"WARNING\", \"warning\", \"WARN\", \"warn\"], \"warning\""), "{wrapped}");
        assert!(expr::compile(&wrapped, Some(Type::String)).is_ok());
    }
}
