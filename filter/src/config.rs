//! The filter's configuration: Istio's stats plugin JSON (`stats.PluginConfig`), parsed
//! strictly. Unknown fields are errors naming their path, so a typo never silently turns a
//! feature off. Protobuf JSON accepts both `snake_case` and `lowerCamelCase` names, and so do we.

use serde::Deserialize;
use std::fmt;

/// `stats.PluginConfig` as it arrives from Envoy (`configuration`) or a file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginConfig {
    #[serde(alias = "disableHostHeaderFallback")]
    pub disable_host_header_fallback: bool,
    /// A protobuf JSON duration such as `"5s"` or `"0.5s"`.
    #[serde(alias = "tcpReportingDuration")]
    pub tcp_reporting_duration: Option<String>,
    pub metrics: Vec<MetricConfig>,
    pub definitions: Vec<MetricDefinition>,
    pub reporter: Reporter,
    /// meshstats: do not send our own `x-envoy-peer-metadata` (requests or responses).
    /// Incoming exchange headers are still read and stripped.
    #[serde(alias = "disableMetadataExchange")]
    pub disable_metadata_exchange: bool,
    /// Accepted for configs written for older Istio releases; has no effect.
    pub debug: Option<serde_json::Value>,
    /// Accepted for older configs; only `"istio"` (the default) is supported.
    #[serde(alias = "statPrefix")]
    pub stat_prefix: Option<String>,
    /// Capacity of the decoded-peer cache (older Istio metadata-exchange option).
    #[serde(alias = "maxPeerCacheSize")]
    pub max_peer_cache_size: Option<u32>,
}

/// `stats.MetricConfig`: an override applied to one metric (or all, when `name` is empty).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricConfig {
    pub name: String,
    pub dimensions: std::collections::BTreeMap<String, String>,
    #[serde(alias = "tagsToRemove")]
    pub tags_to_remove: Vec<String>,
    #[serde(rename = "match")]
    pub match_: String,
    pub drop: bool,
}

/// `stats.MetricDefinition`: a user-defined metric.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricDefinition {
    pub name: String,
    pub value: String,
    #[serde(rename = "type")]
    pub kind: MetricKind,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum MetricKind {
    #[default]
    #[serde(rename = "COUNTER")]
    Counter,
    #[serde(rename = "GAUGE")]
    Gauge,
    #[serde(rename = "HISTOGRAM")]
    Histogram,
}

/// `stats.Reporter`: who this proxy reports as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum Reporter {
    /// From the listener direction (or Istio's `stats_inbound`/`stats_outbound` root ids).
    #[default]
    #[serde(rename = "UNSPECIFIED")]
    Unspecified,
    /// A shared server-side proxy; reports `reporter="waypoint"`.
    #[serde(rename = "SERVER_GATEWAY")]
    ServerGateway,
}

/// Why a configuration cannot be used: one line naming the field and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// JSON path of the offending field, e.g. `metrics[0].tags_to_remove`; empty for the root.
    pub path: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() || self.path == "." || self.path == "?" {
            write!(f, "invalid meshstats config: {}", self.reason)
        } else {
            write!(f, "invalid meshstats config at `{}`: {}", self.path, self.reason)
        }
    }
}

impl std::error::Error for ConfigError {}

/// The default TCP reporting period, as in Istio's plugin config documentation.
pub const DEFAULT_TCP_REPORTING_MS: u64 = 5_000;

impl PluginConfig {
    /// Parses and checks a configuration. Empty input means `{}`: all defaults.
    pub fn parse(text: &str) -> Result<PluginConfig, ConfigError> {
        let text = text.trim();
        let text = if text.is_empty() { "{}" } else { text };
        let mut de = serde_json::Deserializer::from_str(text);
        let config: PluginConfig = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            ConfigError { path, reason: clean_serde_reason(&e.inner().to_string()) }
        })?;
        de.end().map_err(|e| ConfigError { path: String::new(), reason: clean_serde_reason(&e.to_string()) })?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        if let Some(prefix) = &self.stat_prefix {
            if prefix != "istio" {
                return Err(ConfigError {
                    path: "stat_prefix".into(),
                    reason: format!("only \"istio\" is supported, got {prefix:?}"),
                });
            }
        }
        if let Some(d) = &self.tcp_reporting_duration {
            parse_duration_ms(d).map_err(|reason| ConfigError {
                path: "tcp_reporting_duration".into(),
                reason,
            })?;
        }
        Ok(())
    }

    /// The TCP reporting period in milliseconds.
    pub fn tcp_reporting_ms(&self) -> u64 {
        self.tcp_reporting_duration
            .as_deref()
            .and_then(|d| parse_duration_ms(d).ok())
            .unwrap_or(DEFAULT_TCP_REPORTING_MS)
    }
}

/// Parses a protobuf JSON duration (`"5s"`, `"1.5s"`, `"0.010s"`) into milliseconds (> 0).
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let bad = || format!("expected a duration such as \"5s\" or \"0.5s\", got {text:?}");
    let secs = text.strip_suffix('s').ok_or_else(bad)?;
    let (whole, frac) = secs.split_once('.').unwrap_or((secs, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 9 {
        return Err(bad());
    }
    let whole: u64 = whole.parse().map_err(|_| bad())?;
    let mut millis_frac = 0u64;
    for (i, b) in frac.bytes().take(3).enumerate() {
        millis_frac += u64::from(b - b'0') * 10u64.pow(2 - i as u32);
    }
    let ms = whole.checked_mul(1000).and_then(|w| w.checked_add(millis_frac)).ok_or_else(bad)?;
    if ms == 0 {
        return Err(format!("must be at least 1ms, got {text:?}"));
    }
    Ok(ms)
}

// serde_json appends " at line 1 column 42"; the path already says where.
fn clean_serde_reason(reason: &str) -> String {
    match reason.rfind(" at line ") {
        Some(i) => reason.get(..i).unwrap_or(reason).to_string(),
        None => reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_braces_are_defaults() {
        assert_eq!(PluginConfig::parse("").unwrap(), PluginConfig::default());
        assert_eq!(PluginConfig::parse(" {} ").unwrap(), PluginConfig::default());
        assert_eq!(PluginConfig::default().tcp_reporting_ms(), 5000);
    }

    #[test]
    fn istio_fields_in_both_spellings() {
        let c = PluginConfig::parse(
            r#"{"disableHostHeaderFallback": true, "tcp_reporting_duration": "0.5s",
                "reporter": "SERVER_GATEWAY", "debug": "false", "stat_prefix": "istio",
                "metrics": [{"name": "requests_total", "dimensions": {"x": "request.host"},
                             "tags_to_remove": ["source_app"], "drop": false}],
                "definitions": [{"name": "c", "value": "1", "type": "HISTOGRAM"}]}"#,
        )
        .unwrap();
        assert!(c.disable_host_header_fallback);
        assert_eq!(c.tcp_reporting_ms(), 500);
        assert_eq!(c.reporter, Reporter::ServerGateway);
        assert_eq!(c.metrics[0].tags_to_remove, vec!["source_app"]);
        assert_eq!(c.definitions[0].kind, MetricKind::Histogram);
    }

    #[test]
    fn unknown_field_names_its_path() {
        let e = PluginConfig::parse(r#"{"metrics": [{}, {"nmae": "x"}]}"#).unwrap_err();
        assert_eq!(e.path, "metrics[1].nmae");
        assert!(e.reason.starts_with("unknown field `nmae`, expected one of"), "{}", e.reason);
        assert_eq!(
            e.to_string(),
            format!("invalid meshstats config at `metrics[1].nmae`: {}", e.reason)
        );
    }

    #[test]
    fn wrong_types_and_values_name_the_field() {
        let e = PluginConfig::parse(r#"{"disable_host_header_fallback": "yes"}"#).unwrap_err();
        assert_eq!(e.path, "disable_host_header_fallback");
        assert_eq!(e.reason, "invalid type: string \"yes\", expected a boolean");
        let e = PluginConfig::parse(r#"{"reporter": "CLIENT"}"#).unwrap_err();
        assert_eq!(e.path, "reporter");
        let e = PluginConfig::parse(r#"{"tcp_reporting_duration": "5m"}"#).unwrap_err();
        assert_eq!(e.to_string(), "invalid meshstats config at `tcp_reporting_duration`: expected a duration such as \"5s\" or \"0.5s\", got \"5m\"");
        let e = PluginConfig::parse("{").unwrap_err();
        assert_eq!(e.to_string(), "invalid meshstats config: EOF while parsing an object");
        let e = PluginConfig::parse("{} x").unwrap_err();
        assert_eq!(e.to_string(), "invalid meshstats config: trailing characters");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("5s"), Ok(5000));
        assert_eq!(parse_duration_ms("0.010s"), Ok(10));
        assert_eq!(parse_duration_ms("1.2345s"), Ok(1234));
        assert!(parse_duration_ms("0s").is_err());
        assert!(parse_duration_ms("s").is_err());
        assert!(parse_duration_ms("-1s").is_err());
        assert!(parse_duration_ms("99999999999999999999s").is_err());
    }
}
