//! The bootstrap `stats_config` that turns the labels the filter encodes into stat names
//! back into Prometheus labels (see `meshstats_filter::stat_name`).

use meshstats_filter::config::PluginConfig;
use meshstats_filter::metrics::{all_tag_names, bucket_settings};
use meshstats_filter::stat_name::tag_regex;
use serde_json::{json, Value};

/// Envoy's bootstrap `stats_config`: one `stats_tags` entry per label the filter can emit
/// under `config`, in the order they must be extracted, and the histogram buckets the
/// configuration asks for.
pub fn stats_config(config: &PluginConfig) -> Value {
    let mut seen = std::collections::HashSet::new();
    let tags: Vec<Value> = all_tag_names(config)
        .into_iter()
        // A label is written once per stat, so a second extractor for it could never match
        // and would only cost Envoy another regex on every stat name.
        .filter(|t| seen.insert(t.clone()))
        .map(|t| json!({ "tag_name": t, "regex": tag_regex(&t) }))
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
