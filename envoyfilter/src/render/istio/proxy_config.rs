//! The proxy configuration that carries every label and histogram bucket into the bootstrap
//! Istio writes for a proxy (pod annotations), from the same `all_tag_names` /
//! `bucket_settings` as `meshstats render stats-config`.

use super::documents::to_yaml_text;
use meshstats_filter::config::PluginConfig;
use meshstats_filter::labels::STANDARD_LABELS;
use meshstats_filter::metrics::{all_tag_names, bucket_settings};
use serde_json::{json, Map, Value};

/// The prefix Envoy gives every metric a Wasm module defines: all of the filter's series
/// (`istio_*`, `meshstats_*`, user-defined names) start with it, before tag extraction.
pub const WASM_STAT_PREFIX: &str = "wasmcustom.";

/// Pod annotations Istio reads when it writes the proxy's bootstrap.
pub const PROXY_CONFIG_ANNOTATION: &str = "proxy.istio.io/config";
pub const HISTOGRAM_BUCKETS_ANNOTATION: &str = "sidecar.istio.io/statsHistogramBuckets";
pub const BOOTSTRAP_OVERRIDE_ANNOTATION: &str = "sidecar.istio.io/bootstrapOverride";

/// The tags Istio's bootstrap already extracts with the regex the filter's encoding needs
/// (`(TAG=\.=(.*?);\.;)`): its `DefaultStatTags` and its own `response_code` entry, which
/// together are Istio's 25 standard labels.
pub fn istio_builtin_tags() -> &'static [&'static str] {
    &STANDARD_LABELS
}

/// `extraStatTags`: every tag the filter can write that Istio's bootstrap does not already
/// extract, in the order `stats-config` extracts them (custom dimensions longest first,
/// then `istio_build`'s `component` and `tag`, whose encoding Istio's own `component`/`tag`
/// regexes do not read).
pub fn extra_stat_tags(config: &PluginConfig) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    all_tag_names(config)
        .into_iter()
        .filter(|t| !istio_builtin_tags().contains(&t.as_str()))
        .filter(|t| seen.insert(t.clone()))
        .collect()
}

/// The `ProxyConfig` fields (`proxy.istio.io/config`, `meshConfig.defaultConfig`): the
/// extra tags, and the filter's series kept by the stats matcher whatever else it
/// excludes.
pub fn proxy_config(config: &PluginConfig) -> Value {
    json!({
        "extraStatTags": extra_stat_tags(config),
        "proxyStatsMatcher": { "inclusionPrefixes": [WASM_STAT_PREFIX] },
    })
}

/// How the configuration's histogram buckets reach the bootstrap.
#[derive(Debug, Clone, PartialEq)]
pub enum Buckets {
    /// None configured: Envoy's defaults.
    None,
    /// One set of bounds: `statsHistogramBuckets` can carry it, keyed by a stat name
    /// prefix. Every histogram of the filter shares the prefix, so all of them get these
    /// bounds, including those the configuration gave none.
    Annotation(Vec<f64>),
    /// Several sets: a prefix cannot tell the metrics apart (labels come before the metric
    /// name), so the exact per-metric settings of `render stats-config` go in a
    /// `bootstrapOverride` ConfigMap.
    BootstrapOverride,
}

pub fn buckets(config: &PluginConfig) -> Buckets {
    let settings = bucket_settings(config);
    let mut distinct: Vec<&Vec<f64>> = Vec::new();
    for s in &settings {
        if !distinct.contains(&&s.bounds) {
            distinct.push(&s.bounds);
        }
    }
    match distinct[..] {
        [] => Buckets::None,
        [one] => Buckets::Annotation(one.clone()),
        _ => Buckets::BootstrapOverride,
    }
}

/// The key of `statsHistogramBuckets` (Istio matches it as a stat name prefix).
pub fn histogram_bucket_prefix() -> &'static str {
    WASM_STAT_PREFIX.trim_end_matches('.')
}

/// The pod annotations, for `spec.template.metadata.annotations`. `bootstrap_config_map`
/// names the ConfigMap of [`bootstrap_override`], used only when [`buckets`] needs it.
pub fn proxy_annotations(config: &PluginConfig, bootstrap_config_map: &str) -> Map<String, Value> {
    let mut annotations = Map::new();
    annotations.insert(
        PROXY_CONFIG_ANNOTATION.into(),
        Value::String(to_yaml_text(&proxy_config(config))),
    );
    insert_buckets(
        &mut annotations,
        config,
        histogram_bucket_prefix(),
        bootstrap_config_map,
    );
    annotations
}

/// The histogram buckets as the pod carries them: Istio's annotation keyed by a stat-name
/// prefix (`prefix`) when it can express them, else the bootstrap override ConfigMap's name.
pub(super) fn insert_buckets(
    annotations: &mut Map<String, Value>,
    config: &PluginConfig,
    prefix: &str,
    bootstrap_config_map: &str,
) {
    match buckets(config) {
        Buckets::None => {}
        Buckets::Annotation(bounds) => {
            let value = json!({ prefix: bounds });
            annotations.insert(
                HISTOGRAM_BUCKETS_ANNOTATION.into(),
                Value::String(value.to_string()),
            );
        }
        Buckets::BootstrapOverride => {
            annotations.insert(
                BOOTSTRAP_OVERRIDE_ANNOTATION.into(),
                Value::String(bootstrap_config_map.to_string()),
            );
        }
    }
}

/// `render proxy-config`: a strategic merge patch for a Deployment (or any pod template
/// owner): `kubectl patch deployment NAME --patch-file FILE`.
pub fn proxy_config_patch(config: &PluginConfig, bootstrap_config_map: &str) -> Value {
    json!({ "spec": { "template": { "metadata": {
        "annotations": proxy_annotations(config, bootstrap_config_map),
    }}}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bucket_set_is_an_annotation_several_need_the_bootstrap() {
        let none = PluginConfig::default();
        assert_eq!(buckets(&none), Buckets::None);
        let one = PluginConfig::parse(
            r#"{"metrics": [{"buckets": {"explicit_buckets": {"bounds": [1, 10]}}}]}"#,
        )
        .unwrap();
        assert_eq!(buckets(&one), Buckets::Annotation(vec![1.0, 10.0]));
        let a = proxy_annotations(&one, "cm");
        assert_eq!(
            a[HISTOGRAM_BUCKETS_ANNOTATION],
            r#"{"wasmcustom":[1.0,10.0]}"#
        );
        assert!(!a.contains_key(BOOTSTRAP_OVERRIDE_ANNOTATION));
        let two = PluginConfig::parse(
            r#"{"metrics": [{"name": "request_bytes", "buckets": {"explicit_buckets": {"bounds": [1, 10]}}},
                            {"name": "response_bytes", "buckets": {"explicit_buckets": {"bounds": [2, 20]}}}]}"#,
        )
        .unwrap();
        assert_eq!(buckets(&two), Buckets::BootstrapOverride);
        let a = proxy_annotations(&two, "cm");
        assert_eq!(a[BOOTSTRAP_OVERRIDE_ANNOTATION], "cm");
        assert!(!a.contains_key(HISTOGRAM_BUCKETS_ANNOTATION));
    }
}
