//! `WasmPlugin` (Istio ≥ 1.12's way): Istio fetches the module from an image or url.

use super::resource::{resource, Scope};
use serde_json::{json, Map, Value};

pub const WASM_PLUGIN_API_VERSION: &str = "extensions.istio.io/v1alpha1";

/// The filter configuration as the structured object `WasmPlugin.pluginConfig` holds (Istio
/// hands it to the filter as JSON again). Empty text is `{}`, as for the filter.
pub fn plugin_config_object(config_json: &str) -> Result<Value, String> {
    let text = config_json.trim();
    let value: Value = if text.is_empty() {
        json!({})
    } else {
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?
    };
    if !value.is_object() {
        return Err(
            "the configuration must be a JSON object to be a WasmPlugin's pluginConfig".into(),
        );
    }
    Ok(value)
}

/// What `render wasmplugin` renders.
#[derive(Debug, Clone, PartialEq)]
pub struct WasmPluginOptions {
    pub name: String,
    pub namespace: String,
    /// `oci://…`, `file://…`, `http(s)://…`.
    pub url: String,
    /// The module's sha256 (http, file) or the image manifest's digest (oci), hex.
    pub sha256: Option<String>,
    pub scope: Scope,
    /// `pluginConfig`: the filter configuration, an object.
    pub plugin_config: Value,
    /// Also render the `type: NETWORK` plugin for TCP traffic, named `<name>-tcp`.
    pub tcp: bool,
    pub image_pull_secret: Option<String>,
}

/// One `WasmPlugin` per traffic type: `HTTP`, then (with `tcp`) `NETWORK`. Both are in the
/// STATS phase and fail open: a plugin that cannot be fetched or started leaves traffic
/// flowing, unobserved, instead of failing requests.
pub fn wasm_plugins(opts: &WasmPluginOptions) -> Vec<Value> {
    let mut out = vec![wasm_plugin(opts, &opts.name, "HTTP")];
    if opts.tcp {
        out.push(wasm_plugin(opts, &format!("{}-tcp", opts.name), "NETWORK"));
    }
    out
}

fn wasm_plugin(opts: &WasmPluginOptions, name: &str, plugin_type: &str) -> Value {
    let mut spec = Map::new();
    spec.insert("url".into(), json!(opts.url));
    if let Some(sha) = &opts.sha256 {
        spec.insert("sha256".into(), json!(sha));
    }
    if let Some(secret) = &opts.image_pull_secret {
        spec.insert("imagePullSecret".into(), json!(secret));
    }
    spec.insert("phase".into(), json!("STATS"));
    spec.insert("type".into(), json!(plugin_type));
    // Istio (1.25+) passes it on as Envoy's `failure_policy` of the same name.
    spec.insert(
        "failStrategy".into(),
        json!(crate::render::envoy::FAILURE_POLICY),
    );
    spec.insert("pluginConfig".into(), opts.plugin_config.clone());
    opts.scope.apply(&mut spec, "selector", "matchLabels");
    resource(
        WASM_PLUGIN_API_VERSION,
        "WasmPlugin",
        name,
        &opts.namespace,
        Value::Object(spec),
    )
}
