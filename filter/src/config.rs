//! The filter's configuration: Istio's stats plugin JSON (`stats.PluginConfig`), parsed
//! strictly. Unknown fields are errors naming their path, so a typo never silently turns a
//! feature off. Protobuf JSON accepts both `snake_case` and `lowerCamelCase` names, and so do we.

use serde::Deserialize;
use std::fmt;

mod logs;
pub use logs::{LogConfig, LogDelivery, LogPreset};

/// `stats.PluginConfig` as it arrives from Envoy (`configuration`) or a file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginConfig {
    #[serde(alias = "disableHostHeaderFallback", deserialize_with = "proto_bool")]
    pub disable_host_header_fallback: bool,
    /// A protobuf JSON duration such as `"5s"` or `"0.5s"`.
    #[serde(alias = "tcpReportingDuration")]
    pub tcp_reporting_duration: Option<String>,
    pub metrics: Vec<MetricConfig>,
    pub definitions: Vec<MetricDefinition>,
    pub reporter: ReporterMode,
    /// meshstats: do not send our own `x-envoy-peer-metadata` (requests or responses).
    /// Incoming exchange headers are still read and stripped.
    #[serde(alias = "disableMetadataExchange", deserialize_with = "proto_bool")]
    pub disable_metadata_exchange: bool,
    /// meshstats: Istio's TCP metadata exchange (`istio-peer-exchange` frames at the start of
    /// each direction, docs/tcp.md) on mTLS connections. Off by default: under Istio its own
    /// `istio.metadata_exchange` filter does it, and a frame sent to a peer that does not
    /// expect one would reach its app.
    #[serde(alias = "tcpMetadataExchange", deserialize_with = "proto_bool")]
    pub tcp_metadata_exchange: bool,
    /// meshstats: when a caller's `x-envoy-peer-metadata` is believed.
    #[serde(alias = "peerMetadataTrust")]
    pub peer_metadata_trust: PeerMetadataTrust,
    /// Accepted for configs written for older Istio releases; has no effect.
    pub debug: Option<serde_json::Value>,
    /// Accepted for older configs; only `"istio"` (the default) is supported.
    #[serde(alias = "statPrefix")]
    pub stat_prefix: Option<String>,
    /// Capacity of the decoded-peer cache (older Istio metadata-exchange option).
    #[serde(alias = "maxPeerCacheSize")]
    pub max_peer_cache_size: Option<u32>,
    /// meshstats: JSON access logs, defined like Mixer `logentry` instances.
    pub logs: Vec<LogConfig>,
    /// meshstats: how log entries leave the filter.
    #[serde(alias = "logDelivery")]
    pub log_delivery: LogDelivery,
    /// meshstats: distinct label sets one metric may hold (per Wasm VM); past it, new ones are
    /// recorded in the metric's overflow series. Default [`DEFAULT_MAX_SERIES_PER_METRIC`].
    #[serde(alias = "maxSeriesPerMetric")]
    pub max_series_per_metric: Option<u32>,
    /// meshstats: label values longer than this many bytes are cut to it.
    /// Default [`DEFAULT_MAX_LABEL_VALUE_LENGTH`].
    #[serde(alias = "maxLabelValueLength")]
    pub max_label_value_length: Option<u32>,
    /// meshstats: how labels are written into Envoy stat names (`stat_name` module).
    #[serde(alias = "statNameEncoding")]
    pub stat_name_encoding: StatNameEncoding,
    /// meshstats: read the stream-end attributes in one host call where the host can
    /// (Envoy's `expr_evaluate`) instead of one call each. Off by default: on Envoy 1.40 the
    /// one CEL evaluation costs more than the calls it saves (docs/benchmarks.md).
    #[serde(alias = "batchReads", deserialize_with = "proto_bool")]
    pub batch_reads: bool,
}

/// Which stat-name encoding the filter writes; `stats_tags` must be rendered for the same one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum StatNameEncoding {
    /// `ISTIO` when the node metadata has `ISTIO_VERSION` (Istio's agent always sets it),
    /// else `COMPACT`.
    #[default]
    #[serde(rename = "AUTO")]
    Auto,
    #[serde(rename = "ISTIO")]
    Istio,
    #[serde(rename = "COMPACT")]
    Compact,
}

impl StatNameEncoding {
    /// The encoding used on a node; `istio` says whether it runs under Istio's agent.
    pub fn resolve(self, istio: bool) -> crate::stat_name::Encoding {
        use crate::stat_name::Encoding;
        match self {
            StatNameEncoding::Istio => Encoding::Istio,
            StatNameEncoding::Compact => Encoding::Compact,
            StatNameEncoding::Auto if istio => Encoding::Istio,
            StatNameEncoding::Auto => Encoding::Compact,
        }
    }
}

/// Label sets per metric by default: OpenTelemetry SDKs' cardinality limit.
pub const DEFAULT_MAX_SERIES_PER_METRIC: u32 = 2_000;
/// The largest `max_series_per_metric`: each label set costs Envoy ~3 KiB per metric.
pub const MAX_SERIES_PER_METRIC: u32 = 100_000;
/// Label value length by default, in bytes: a DNS name (253) fits.
pub const DEFAULT_MAX_LABEL_VALUE_LENGTH: u32 = 256;
/// The largest `max_label_value_length`: Envoy scans every byte of a new name once per tag.
pub const MAX_LABEL_VALUE_LENGTH: u32 = 4_096;

/// `stats.MetricConfig`: an override applied to one metric (or all, when `name` is empty).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricConfig {
    pub name: String,
    pub dimensions: std::collections::BTreeMap<String, String>,
    #[serde(alias = "tagsToRemove")]
    pub tags_to_remove: Vec<String>,
    /// A predicate: record the metric only when it holds (Mixer's `rule.match`).
    #[serde(rename = "match")]
    pub match_: String,
    #[serde(deserialize_with = "proto_bool")]
    pub drop: bool,
    /// meshstats: histogram buckets for the metric(s), rendered into Envoy's bootstrap.
    pub buckets: Option<Buckets>,
}

/// `stats.MetricDefinition`: a user-defined metric.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricDefinition {
    pub name: String,
    /// An integer expression: the increment (counter) or the recorded value.
    pub value: String,
    #[serde(rename = "type")]
    pub kind: MetricKind,
    /// meshstats: the full emitted name, e.g. Mixer's `double_request_count`; default
    /// `istio_<name>` as Istio.
    #[serde(alias = "metricName")]
    pub metric_name: Option<String>,
    /// meshstats: the metric's own labels (name → expression), instead of the standard ones.
    pub dimensions: std::collections::BTreeMap<String, String>,
    /// meshstats: histogram buckets.
    pub buckets: Option<Buckets>,
}

/// Histogram buckets, in the shapes of Mixer's prometheus handler (and the Prometheus client
/// libraries): explicit bounds, `offset + width·i` or `scale · growth_factor^i` for i < count.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Buckets {
    #[serde(rename = "explicit_buckets", alias = "explicitBuckets")]
    Explicit { bounds: Vec<f64> },
    #[serde(rename = "linear_buckets", alias = "linearBuckets")]
    Linear {
        #[serde(alias = "numFiniteBuckets")]
        num_finite_buckets: u32,
        width: f64,
        #[serde(default)]
        offset: f64,
    },
    #[serde(rename = "exponential_buckets", alias = "exponentialBuckets")]
    Exponential {
        #[serde(alias = "numFiniteBuckets")]
        num_finite_buckets: u32,
        #[serde(alias = "growthFactor")]
        growth_factor: f64,
        scale: f64,
    },
}

/// The most bounds a bucket spec may produce; Envoy keeps every bucket per series.
pub const MAX_BUCKETS: usize = 100;

impl Buckets {
    /// The upper bounds, strictly increasing and finite, or why not.
    pub fn bounds(&self) -> Result<Vec<f64>, String> {
        let bounds: Vec<f64> = match self {
            Buckets::Explicit { bounds } => bounds.clone(),
            Buckets::Linear {
                num_finite_buckets: n,
                width,
                offset,
            } => {
                if *width <= 0.0 {
                    return Err(format!("width must be > 0, got {width}"));
                }
                (0..at_most_max(*n)?)
                    .map(|i| offset + width * f64::from(i))
                    .collect()
            }
            Buckets::Exponential {
                num_finite_buckets: n,
                growth_factor,
                scale,
            } => {
                if *growth_factor <= 1.0 || *scale <= 0.0 {
                    return Err(format!(
                        "growth_factor must be > 1 and scale > 0, got {growth_factor} and {scale}"
                    ));
                }
                (0..at_most_max(*n)?)
                    .map(|i| scale * growth_factor.powi(i as i32))
                    .collect()
            }
        };
        if bounds.is_empty() || bounds.len() > MAX_BUCKETS {
            return Err(format!(
                "needs 1 to {MAX_BUCKETS} buckets, got {}",
                bounds.len()
            ));
        }
        if bounds.iter().any(|b| !b.is_finite()) || bounds.windows(2).any(|w| w.first() >= w.get(1))
        {
            return Err(format!(
                "bounds must be finite and strictly increasing, got {bounds:?}"
            ));
        }
        Ok(bounds)
    }
}

/// Checked before the bounds are generated: `num_finite_buckets` is any u32, and 2³² bounds
/// are 32 GiB, which aborts the process (traps the VM) instead of being a config error.
fn at_most_max(n: u32) -> Result<u32, String> {
    if n as usize > MAX_BUCKETS {
        return Err(format!("needs 1 to {MAX_BUCKETS} buckets, got {n}"));
    }
    Ok(n)
}

/// Protobuf JSON accepts `"true"`/`"false"` strings for bools, and Istio's own test configs
/// use them (`disable_host_header_fallback: "true"`).
fn proto_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum B {
        Bool(bool),
        Str(String),
    }
    match B::deserialize(d)? {
        B::Bool(b) => Ok(b),
        B::Str(s) if s == "true" => Ok(true),
        B::Str(s) if s == "false" => Ok(false),
        B::Str(s) => Err(serde::de::Error::custom(format!(
            "expected a boolean, got string {s:?}"
        ))),
    }
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

/// Istio's `stats.Reporter` option: how this proxy picks the [`crate::labels::Reporter`] it
/// reports as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum ReporterMode {
    /// From the listener direction (or Istio's `stats_inbound`/`stats_outbound` root ids).
    #[default]
    #[serde(rename = "UNSPECIFIED")]
    Unspecified,
    /// A shared server-side proxy; reports `reporter="waypoint"`.
    #[serde(rename = "SERVER_GATEWAY")]
    ServerGateway,
}

/// meshstats: which callers' exchange headers a server-side proxy believes. Whatever the
/// mode, a header that contradicts the caller's SPIFFE certificate is never believed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum PeerMetadataTrust {
    /// Istio's behaviour: any caller's, so a plaintext caller can claim any identity.
    #[default]
    #[serde(rename = "ANY")]
    Any,
    /// Only a caller that presented a client certificate (mTLS), the one thing it cannot
    /// forge.
    #[serde(rename = "MTLS_ONLY")]
    MtlsOnly,
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
        // Paths and reasons quote the configuration (keys, expressions, values); a line break
        // in one would split the error into lines that read as separate log entries.
        let (path, reason) = (one_line(&self.path), one_line(&self.reason));
        if path.is_empty() || path == "." || path == "?" {
            write!(f, "invalid meshstats config: {reason}")
        } else {
            write!(f, "invalid meshstats config at `{path}`: {reason}")
        }
    }
}

fn one_line(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(['\n', '\r']) {
        s.replace('\n', "\\n").replace('\r', "\\r").into()
    } else {
        s.into()
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
            ConfigError {
                path,
                reason: clean_serde_reason(&e.inner().to_string()),
            }
        })?;
        de.end().map_err(|e| ConfigError {
            path: String::new(),
            reason: clean_serde_reason(&e.to_string()),
        })?;
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
        for (path, value, max) in [
            (
                "max_series_per_metric",
                self.max_series_per_metric,
                MAX_SERIES_PER_METRIC,
            ),
            (
                "max_label_value_length",
                self.max_label_value_length,
                MAX_LABEL_VALUE_LENGTH,
            ),
        ] {
            if let Some(v) = value.filter(|v| *v == 0 || *v > max) {
                return Err(ConfigError {
                    path: path.into(),
                    reason: format!("must be between 1 and {max}, got {v}"),
                });
            }
        }
        Ok(())
    }

    /// Distinct label sets one metric may hold.
    pub fn max_series(&self) -> usize {
        self.max_series_per_metric
            .unwrap_or(DEFAULT_MAX_SERIES_PER_METRIC) as usize
    }

    /// The longest label value, in bytes.
    pub fn max_value_len(&self) -> usize {
        self.max_label_value_length
            .unwrap_or(DEFAULT_MAX_LABEL_VALUE_LENGTH) as usize
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
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 9
    {
        return Err(bad());
    }
    let whole: u64 = whole.parse().map_err(|_| bad())?;
    let mut millis_frac = 0u64;
    for (i, b) in frac.bytes().take(3).enumerate() {
        millis_frac += u64::from(b - b'0') * 10u64.pow(2 - i as u32);
    }
    let ms = whole
        .checked_mul(1000)
        .and_then(|w| w.checked_add(millis_frac))
        .ok_or_else(bad)?;
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
        assert_eq!(
            PluginConfig::parse(" {} ").unwrap(),
            PluginConfig::default()
        );
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
        assert_eq!(c.reporter, ReporterMode::ServerGateway);
        assert_eq!(c.metrics[0].tags_to_remove, vec!["source_app"]);
        assert_eq!(c.definitions[0].kind, MetricKind::Histogram);
    }

    #[test]
    fn unknown_field_names_its_path() {
        let e = PluginConfig::parse(r#"{"metrics": [{}, {"nmae": "x"}]}"#).unwrap_err();
        assert_eq!(e.path, "metrics[1].nmae");
        assert!(
            e.reason
                .starts_with("unknown field `nmae`, expected one of"),
            "{}",
            e.reason
        );
        assert_eq!(
            e.to_string(),
            format!(
                "invalid meshstats config at `metrics[1].nmae`: {}",
                e.reason
            )
        );
    }

    #[test]
    fn wrong_types_and_values_name_the_field() {
        let e = PluginConfig::parse(r#"{"disable_host_header_fallback": "yes"}"#).unwrap_err();
        assert_eq!(e.path, "disable_host_header_fallback");
        assert_eq!(e.reason, "expected a boolean, got string \"yes\"");
        assert!(
            PluginConfig::parse(r#"{"disable_host_header_fallback": "true"}"#)
                .unwrap()
                .disable_host_header_fallback
        );
        let e = PluginConfig::parse(r#"{"reporter": "CLIENT"}"#).unwrap_err();
        assert_eq!(e.path, "reporter");
        let e = PluginConfig::parse(r#"{"tcp_reporting_duration": "5m"}"#).unwrap_err();
        assert_eq!(e.to_string(), "invalid meshstats config at `tcp_reporting_duration`: expected a duration such as \"5s\" or \"0.5s\", got \"5m\"");
        let e = PluginConfig::parse("{").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid meshstats config: EOF while parsing an object"
        );
        let e = PluginConfig::parse("{} x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid meshstats config: trailing characters"
        );
    }

    #[test]
    fn tcp_metadata_exchange_is_off_by_default_in_both_spellings_and_names_its_field() {
        assert!(!PluginConfig::parse("{}").unwrap().tcp_metadata_exchange);
        for text in [
            r#"{"tcp_metadata_exchange": true}"#,
            r#"{"tcpMetadataExchange": "true"}"#,
        ] {
            assert!(
                PluginConfig::parse(text).unwrap().tcp_metadata_exchange,
                "{text}"
            );
        }
        let e = PluginConfig::parse(r#"{"tcp_metadata_exchange": "yes"}"#).unwrap_err();
        assert_eq!(e.path, "tcp_metadata_exchange");
    }

    #[test]
    fn peer_metadata_trust_in_both_spellings_and_bad_values_name_the_field() {
        assert_eq!(
            PluginConfig::parse("{}").unwrap().peer_metadata_trust,
            PeerMetadataTrust::Any
        );
        for text in [
            r#"{"peer_metadata_trust": "MTLS_ONLY"}"#,
            r#"{"peerMetadataTrust": "MTLS_ONLY"}"#,
        ] {
            assert_eq!(
                PluginConfig::parse(text).unwrap().peer_metadata_trust,
                PeerMetadataTrust::MtlsOnly
            );
        }
        let e = PluginConfig::parse(r#"{"peer_metadata_trust": "mtls"}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid meshstats config at `peer_metadata_trust`: unknown variant `mtls`, expected `ANY` or `MTLS_ONLY`"
        );
        let e = PluginConfig::parse(r#"{"peer_metadata_trust": true}"#).unwrap_err();
        assert_eq!(e.path, "peer_metadata_trust");
    }

    #[test]
    fn buckets_in_mixer_shapes() {
        let c = PluginConfig::parse(
            r#"{"metrics": [{"name": "request_bytes", "buckets": {"exponential_buckets": {"num_finite_buckets": 4, "growth_factor": 10, "scale": 1}}}],
                "definitions": [{"name": "x", "value": "1", "type": "HISTOGRAM", "buckets": {"linearBuckets": {"numFiniteBuckets": 3, "width": 5, "offset": 10}}},
                                {"name": "y", "value": "1", "type": "HISTOGRAM", "buckets": {"explicit_buckets": {"bounds": [0.5, 1, 2.5]}}}]}"#,
        )
        .unwrap();
        assert_eq!(
            c.metrics[0].buckets.as_ref().unwrap().bounds().unwrap(),
            vec![1.0, 10.0, 100.0, 1000.0]
        );
        assert_eq!(
            c.definitions[0].buckets.as_ref().unwrap().bounds().unwrap(),
            vec![10.0, 15.0, 20.0]
        );
        assert_eq!(
            c.definitions[1].buckets.as_ref().unwrap().bounds().unwrap(),
            vec![0.5, 1.0, 2.5]
        );
        let bad = Buckets::Explicit {
            bounds: vec![1.0, 1.0],
        };
        assert_eq!(
            bad.bounds().unwrap_err(),
            "bounds must be finite and strictly increasing, got [1.0, 1.0]"
        );
        let e =
            PluginConfig::parse(r#"{"metrics": [{"buckets": {"log_buckets": {}}}]}"#).unwrap_err();
        assert_eq!(e.path, "metrics[0].buckets");
    }

    #[test]
    fn series_limits_and_encoding() {
        let c = PluginConfig::default();
        assert_eq!((c.max_series(), c.max_value_len()), (2000, 256));
        let c = PluginConfig::parse(
            r#"{"maxSeriesPerMetric": 5, "max_label_value_length": 9, "stat_name_encoding": "ISTIO"}"#,
        )
        .unwrap();
        assert_eq!((c.max_series(), c.max_value_len()), (5, 9));
        assert_eq!(c.stat_name_encoding, StatNameEncoding::Istio);
        let e = PluginConfig::parse(r#"{"max_series_per_metric": 0}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid meshstats config at `max_series_per_metric`: must be between 1 and 100000, got 0"
        );
        let e = PluginConfig::parse(r#"{"max_label_value_length": 4097}"#).unwrap_err();
        assert_eq!(e.path, "max_label_value_length");
        let e = PluginConfig::parse(r#"{"stat_name_encoding": "SHORT"}"#).unwrap_err();
        assert_eq!(e.path, "stat_name_encoding");
        use crate::stat_name::Encoding;
        assert_eq!(StatNameEncoding::Auto.resolve(true), Encoding::Istio);
        assert_eq!(StatNameEncoding::Auto.resolve(false), Encoding::Compact);
        assert_eq!(StatNameEncoding::Compact.resolve(true), Encoding::Compact);
        assert_eq!(StatNameEncoding::Istio.resolve(false), Encoding::Istio);
    }

    #[test]
    fn bucket_counts_are_checked_before_any_bound_is_made() {
        // Found by fuzzing (meshstats-fuzz `config`): 2^32 - 1 buckets allocated 32 GiB and
        // aborted the process before the count was checked.
        for shape in [
            r#""linear_buckets": {"num_finite_buckets": 4294967295, "width": 1}"#,
            r#""exponential_buckets": {"num_finite_buckets": 4294967295, "growth_factor": 2, "scale": 1}"#,
        ] {
            let text = format!(
                r#"{{"definitions": [{{"name": "x", "value": "1", "type": "HISTOGRAM", "buckets": {{{shape}}}}}]}}"#
            );
            let c = PluginConfig::parse(&text).unwrap();
            assert_eq!(
                c.definitions[0].buckets.as_ref().unwrap().bounds(),
                Err("needs 1 to 100 buckets, got 4294967295".to_string())
            );
        }
    }

    #[test]
    fn errors_stay_on_one_line() {
        // Found by fuzzing: a line break in a quoted key or value split the error (and the
        // filter's log line) in two.
        let e =
            PluginConfig::parse("{\"metrics\": [{\"buckets\": {\"a\\nb\\r\": 1}}]}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid meshstats config at `metrics[0].buckets`: unknown variant `a\\nb\\r`, expected one of `explicitBuckets`, `explicit_buckets`, `linearBuckets`, `linear_buckets`, `exponentialBuckets`, `exponential_buckets`"
        );
        assert_eq!(
            e.reason.lines().count(),
            2,
            "the reason itself keeps the text"
        );
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
