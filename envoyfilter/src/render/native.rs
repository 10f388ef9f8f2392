//! The native build's Envoy configuration: the filter as an Envoy dynamic module
//! (`libmeshstats.so`, `DynamicModuleFilter` / `DynamicModuleNetworkFilter`), beside the Wasm
//! filter of `render::envoy`. Same configuration JSON, same root ids (as `filter_name`), same
//! metric names and labels on `/stats/prometheus`; the labels are Envoy's own labelled-metric
//! tags, so the bootstrap needs no `stats_tags`, only the histogram buckets.

use meshstats_filter::config::PluginConfig;
use meshstats_filter::metrics::bucket_settings;
use serde_json::{json, Value};
use std::path::Path;

/// Which build of the filter Envoy runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Build {
    /// `meshstats.wasm` in Envoy's V8 sandbox (the default: works with any Envoy that has
    /// Wasm, and with Istio's `WasmPlugin` delivery).
    #[default]
    Wasm,
    /// `libmeshstats.so` loaded into Envoy itself: native speed, but built against one Envoy
    /// release's dynamic-module ABI and only loadable by that release.
    Native,
}

impl Build {
    pub fn as_str(self) -> &'static str {
        match self {
            Build::Wasm => "wasm",
            Build::Native => "native",
        }
    }
}

/// The module's name: Envoy looks for `lib{name}.so` in `$ENVOY_DYNAMIC_MODULES_SEARCH_PATH`
/// when the configuration gives no file.
pub const NATIVE_MODULE_NAME: &str = "meshstats";

/// The environment variable naming the directory Envoy searches for `libmeshstats.so`.
pub const SEARCH_PATH_ENV: &str = "ENVOY_DYNAMIC_MODULES_SEARCH_PATH";

/// The environment variables the native module reads the local node from (Envoy 1.40's ABI
/// cannot read `xds.node`; docs/native.md): the bootstrap's `node.metadata` as JSON, and its
/// `node.id`.
pub const NODE_METADATA_ENV: &str = "MESHSTATS_NODE_METADATA";
pub const NODE_ID_ENV: &str = "MESHSTATS_NODE_ID";

/// What Envoy's environment must hold for the native module to see `bootstrap`'s node as the
/// Wasm build sees it (empty when the bootstrap has no node).
pub fn node_environment(bootstrap: &Value) -> Vec<(&'static str, String)> {
    let mut env = Vec::new();
    if let Some(metadata) = bootstrap.pointer("/node/metadata") {
        env.push((NODE_METADATA_ENV, metadata.to_string()));
    }
    if let Some(id) = bootstrap.pointer("/node/id").and_then(Value::as_str) {
        env.push((NODE_ID_ENV, id.to_string()));
    }
    env
}

/// The prefix Envoy gives every metric a dynamic module defines (the proto's default
/// `metrics_namespace`, which we leave unset); like Wasm's `wasmcustom.`, `/stats/prometheus`
/// strips it.
pub const NATIVE_STAT_PREFIX: &str = "dynamicmodulescustom.";

/// The Envoy releases whose dynamic-module ABI the native build is compiled against: Envoy
/// only guarantees an exact match.
pub const NATIVE_ENVOY_VERSIONS: [&str; 1] = ["1.40.0"];

/// Envoy 1.40 prints a dynamic module's metrics as `envoy_dynamicmodulescustom_<name>` unless
/// this runtime feature is on: then the metrics namespace is registered like Wasm's
/// `wasmcustom` and `/stats/prometheus` shows `istio_requests_total`, as the Wasm build does.
pub const STRIP_PREFIX_RUNTIME_KEY: &str =
    "envoy.reloadable_features.dynamic_modules_strip_custom_stat_prefix";

/// The bootstrap's `layered_runtime` with [`STRIP_PREFIX_RUNTIME_KEY`] on.
pub fn native_layered_runtime() -> Value {
    json!({ "layers": [{ "name": "meshstats", "static_layer": { STRIP_PREFIX_RUNTIME_KEY: true } }] })
}

/// `dynamic_module_config`: the module by name, and by file when `module` is given. Envoy
/// 1.40's `module.local.filename` takes precedence over the name, so a rendered config needs
/// no environment variable; the name stays for configs users edit down to the search path.
pub fn dynamic_module_config(module: Option<&Path>) -> Value {
    let mut config = json!({ "name": NATIVE_MODULE_NAME });
    if let (Some(path), Some(obj)) = (module, config.as_object_mut()) {
        obj.insert(
            "module".into(),
            json!({ "local": { "filename": path.to_string_lossy() } }),
        );
    }
    config
}

/// The three fields both dynamic-module filters share; `filter_name` is the root id the Wasm
/// build gets (`stats_inbound` / `stats_outbound` decide the direction, anything else leaves
/// it to the listener's `traffic_direction`).
fn typed_config(
    type_url: &str,
    filter_name: &str,
    module: Option<&Path>,
    config_json: &str,
) -> Value {
    json!({
        "@type": type_url,
        "dynamic_module_config": dynamic_module_config(module),
        "filter_name": filter_name,
        "filter_config": {
            "@type": "type.googleapis.com/google.protobuf.StringValue",
            "value": config_json,
        },
    })
}

/// The HTTP filter entry, for a connection manager's `http_filters` before the router.
pub fn native_http_filter(filter_name: &str, module: Option<&Path>, config_json: &str) -> Value {
    json!({
        "name": "envoy.filters.http.dynamic_modules",
        "typed_config": typed_config(
            "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
            filter_name,
            module,
            config_json,
        ),
    })
}

/// The network filter entry (TCP metrics), for a filter chain before `tcp_proxy`.
pub fn native_network_filter(filter_name: &str, module: Option<&Path>, config_json: &str) -> Value {
    json!({
        "name": "envoy.filters.network.dynamic_modules",
        "typed_config": typed_config(
            "type.googleapis.com/envoy.extensions.filters.network.dynamic_modules.v3.DynamicModuleNetworkFilter",
            filter_name,
            module,
            config_json,
        ),
    })
}

/// The bootstrap `stats_config` of the native build: Envoy's default tags and the buckets the
/// configuration asks for. No `stats_tags`: the module defines its metrics with label names,
/// and Envoy runs no tag extraction on stats created with explicit tags.
pub fn native_stats_config(config: &PluginConfig) -> Value {
    let mut out = json!({ "use_all_default_tags": true });
    let buckets: Vec<Value> = bucket_settings(config)
        .into_iter()
        .map(|b| json!({ "match": { "safe_regex": { "regex": native_histogram_regex(&b.metric) } }, "buckets": b.bounds }))
        .collect();
    if !buckets.is_empty() {
        out["histogram_bucket_settings"] = Value::Array(buckets);
    }
    out
}

/// Bucket settings match the stat's full name: the namespace, the metric name, then each
/// label as `.name.value` (Envoy's tag joiner). `(\..*)?$` also matches the bare name, and
/// keeps `istio_request_bytes` from matching a metric that merely starts with it.
pub fn native_histogram_regex(metric: &str) -> String {
    format!(
        "^{}{}(\\..*)?$",
        NATIVE_STAT_PREFIX.replace('.', "\\."),
        metric.replace('.', "\\.")
    )
}
