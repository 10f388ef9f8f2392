//! `meshConfig` values: the proxy configuration for every proxy and the access log provider.

use super::proxy_config::proxy_config;
use super::telemetry::access_log_provider;
use crate::render::access_log::has_filter_state_logs;
use meshstats_filter::config::PluginConfig;
use serde_json::{json, Map, Value};

/// `render mesh-config`: the `meshConfig` values (istiod Helm chart's `meshConfig`,
/// `IstioOperator`'s `spec.meshConfig`): the proxy config for every proxy, and the access
/// log provider when the configuration has entries to print.
pub fn mesh_config(config: &PluginConfig, provider: &str) -> Value {
    let mut mesh = Map::new();
    mesh.insert("defaultConfig".into(), proxy_config(config));
    if has_filter_state_logs(config) {
        mesh.insert(
            "extensionProviders".into(),
            json!([access_log_provider(provider)]),
        );
    }
    json!({ "meshConfig": mesh })
}
