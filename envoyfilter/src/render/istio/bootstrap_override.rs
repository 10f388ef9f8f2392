//! The `bootstrapOverride` ConfigMap: the per-metric histogram buckets that annotations cannot
//! carry.

use super::resource::part_of_labels;
use crate::render::stats_config::stats_config;
use meshstats_filter::config::PluginConfig;
use serde_json::{json, Value};

/// The key Istio's injector reads from the ConfigMap `bootstrapOverride` names.
pub const BOOTSTRAP_OVERRIDE_KEY: &str = "custom_bootstrap.json";

/// The bootstrap fragment Istio merges into the proxy's bootstrap: the exact per-metric
/// histogram buckets of `render stats-config` (tags stay in `extraStatTags`).
pub fn bootstrap_override_fragment(config: &PluginConfig) -> Value {
    let settings = stats_config(config)
        .get("histogram_bucket_settings")
        .cloned()
        .unwrap_or_else(|| json!([]));
    json!({ "stats_config": { "histogram_bucket_settings": settings } })
}

/// The ConfigMap `sidecar.istio.io/bootstrapOverride` names (in the pod's namespace).
pub fn bootstrap_override(config: &PluginConfig, name: &str, namespace: &str) -> Value {
    let fragment =
        serde_json::to_string_pretty(&bootstrap_override_fragment(config)).unwrap_or_default();
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": name, "namespace": namespace, "labels": part_of_labels() },
        "data": { BOOTSTRAP_OVERRIDE_KEY: fragment + "\n" },
    })
}
