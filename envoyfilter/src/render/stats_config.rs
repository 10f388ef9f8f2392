//! The bootstrap `stats_config` that turns the labels the filter encodes into stat names
//! back into Prometheus labels (see `meshstats_filter::stat_name`).

use meshstats_filter::config::PluginConfig;
use meshstats_filter::metrics::{bucket_settings, stats_tags};
use meshstats_filter::stat_name::Encoding;
use serde_json::{json, Value};

/// Envoy's bootstrap `stats_config` for a plain Envoy (no Istio agent): the encoding the
/// filter picks there (`COMPACT` unless the config says `ISTIO`).
pub fn stats_config(config: &PluginConfig) -> Value {
    stats_config_for(config, config.stat_name_encoding.resolve(false))
}

/// Envoy's bootstrap `stats_config`: one `stats_tags` entry per label the filter can emit
/// under `config` (each label once: a second extractor could never match and would only cost
/// Envoy another regex on every new stat name), and the histogram buckets the configuration
/// asks for. `encoding` must be the one the filter resolves on that node.
pub fn stats_config_for(config: &PluginConfig, encoding: Encoding) -> Value {
    let tags: Vec<Value> = stats_tags(config, encoding)
        .into_iter()
        .map(|(t, regex)| json!({ "tag_name": t, "regex": regex }))
        .collect();
    // Envoy's own tags (cluster name, listener address, ...) stay, as in Istio's bootstrap.
    let mut out = json!({ "use_all_default_tags": true, "stats_tags": tags });
    let buckets: Vec<Value> = bucket_settings(config)
        .into_iter()
        .map(|b| json!({ "match": { "safe_regex": { "regex": histogram_regex(&b.metric) } }, "buckets": b.bounds }))
        .collect();
    if !buckets.is_empty() {
        out["histogram_bucket_settings"] = Value::Array(buckets);
    }
    out
}

/// Bucket settings match the stat name before tag extraction: Envoy's `wasmcustom.`
/// namespace, the encoded labels, then the metric name.
pub fn histogram_regex(metric: &str) -> String {
    format!("^wasmcustom\\.(.*;\\.;)?{}$", metric.replace('.', "\\."))
}
