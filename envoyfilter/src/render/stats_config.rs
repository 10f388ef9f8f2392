//! The bootstrap `stats_config` that turns the labels the filter encodes into stat names
//! back into Prometheus labels (see `meshstats_filter::stat_name`).

use meshstats_filter::config::PluginConfig;
use meshstats_filter::metrics::all_tag_names;
use meshstats_filter::stat_name::tag_regex;
use serde_json::{json, Value};

/// Envoy's bootstrap `stats_config`: one `stats_tags` entry per label the filter can emit
/// under `config`, in emission order, since each regex strips its run from the front.
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
    json!({ "use_all_default_tags": true, "stats_tags": tags })
}
