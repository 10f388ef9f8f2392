//! `EnvoyFilter` (any Istio): the filter's Envoy configuration patched into sidecars and
//! gateways, the module a file already on the proxy or fetched by Envoy itself.

use super::resource::{resource, Scope};
use crate::render::native::native_http_filter;
use serde_json::{json, Map, Value};
use std::path::Path;

pub const ENVOY_FILTER_API_VERSION: &str = "networking.istio.io/v1alpha3";

/// Where the proxy gets the module from, in an `EnvoyFilter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WasmCode {
    /// A path on the proxy's filesystem (a volume mounted into `istio-proxy`).
    Local(String),
    /// Fetched by Envoy itself over `cluster` (which must exist in the proxy's config, e.g.
    /// Istio's `outbound|443||HOST` for a `ServiceEntry`), checked against `sha256`.
    Remote {
        uri: String,
        cluster: String,
        sha256: String,
    },
}

impl WasmCode {
    fn to_json(&self) -> Value {
        match self {
            WasmCode::Local(path) => json!({ "local": { "filename": path } }),
            WasmCode::Remote {
                uri,
                cluster,
                sha256,
            } => json!({ "remote": {
                "http_uri": { "uri": uri, "cluster": cluster, "timeout": "30s" },
                "sha256": sha256,
                "retry_policy": { "num_retries": 5 },
            }}),
        }
    }
}

/// Istio's outbound cluster for `http(s)://HOST[:PORT]/…`: `outbound|PORT||HOST`.
pub fn default_remote_cluster(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once("://")?;
    let default_port = match scheme {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            (h, p.parse::<u16>().ok()?)
        }
        _ => (authority, default_port),
    };
    (!host.is_empty()).then(|| format!("outbound|{port}||{host}"))
}

/// What `render envoyfilter` renders.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvoyFilterOptions {
    pub name: String,
    pub namespace: String,
    pub scope: Scope,
    pub code: WasmCode,
    /// `Some`: the native build instead, `libmeshstats.so` at this path on the proxy (the
    /// pod mounts it: `render proxy-config --build native`); `code` is then unused.
    pub native_module: Option<String>,
    /// The filter configuration, passed verbatim as the plugin's `configuration`.
    pub config_json: String,
    /// Also insert the network filter before `tcp_proxy` (TCP traffic).
    pub tcp: bool,
}

/// The `vm_id`s: the HTTP filters of all contexts share one VM per worker thread; the
/// network filter has its own.
pub const HTTP_VM_ID: &str = "meshstats";
pub const TCP_VM_ID: &str = "meshstats_tcp";

/// The plugin `config` (`envoy.extensions.wasm.v3.PluginConfig`) of the filter, as
/// `meshstats render envoy` writes it: the root id tells the filter its direction (Istio's
/// `stats_inbound`/`stats_outbound`).
pub fn plugin_config(root_id: &str, vm_id: &str, code: &WasmCode, config_json: &str) -> Value {
    json!({
        "name": "meshstats",
        "root_id": root_id,
        "failure_policy": crate::render::envoy::FAILURE_POLICY,
        "vm_config": {
            "vm_id": vm_id,
            "runtime": "envoy.wasm.runtime.v8",
            "code": code.to_json(),
        },
        "configuration": {
            "@type": "type.googleapis.com/google.protobuf.StringValue",
            "value": config_json,
        },
    })
}

/// The HTTP filter the `EnvoyFilter` inserts (also what `render envoy` puts in front of the
/// router).
pub fn http_wasm_filter(root_id: &str, code: &WasmCode, config_json: &str) -> Value {
    json!({
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": plugin_config(root_id, HTTP_VM_ID, code, config_json),
        },
    })
}

/// The network filter the `EnvoyFilter` inserts before `tcp_proxy`.
pub fn network_wasm_filter(root_id: &str, code: &WasmCode, config_json: &str) -> Value {
    json!({
        "name": "envoy.filters.network.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm",
            "config": plugin_config(root_id, TCP_VM_ID, code, config_json),
        },
    })
}

/// Istio's patch contexts and the root id that tells the filter its side there. A gateway
/// is a client of the services it routes to, as in Istio's own stats configuration.
pub const HTTP_CONTEXTS: [(&str, &str); 3] = [
    ("SIDECAR_INBOUND", "stats_inbound"),
    ("SIDECAR_OUTBOUND", "stats_outbound"),
    ("GATEWAY", "stats_outbound"),
];
pub const TCP_CONTEXTS: [(&str, &str); 2] = [
    ("SIDECAR_INBOUND", "stats_inbound"),
    ("SIDECAR_OUTBOUND", "stats_outbound"),
];

/// One `EnvoyFilter`: the HTTP filter before the router in every HTTP connection manager of
/// the three contexts and (with `tcp`) the network filter before every `tcp_proxy`.
pub fn envoy_filter(opts: &EnvoyFilterOptions) -> Value {
    let mut patches = Vec::new();
    for (context, root_id) in HTTP_CONTEXTS {
        patches.push(json!({
            "applyTo": "HTTP_FILTER",
            "match": {
                "context": context,
                "listener": { "filterChain": { "filter": {
                    "name": "envoy.filters.network.http_connection_manager",
                    "subFilter": { "name": "envoy.filters.http.router" },
                }}},
            },
            "patch": {
                "operation": "INSERT_BEFORE",
                "value": match &opts.native_module {
                    Some(path) => native_http_filter(root_id, Some(Path::new(path)), &opts.config_json),
                    None => http_wasm_filter(root_id, &opts.code, &opts.config_json),
                },
            },
        }));
    }
    if opts.tcp {
        for (context, root_id) in TCP_CONTEXTS {
            patches.push(json!({
                "applyTo": "NETWORK_FILTER",
                "match": {
                    "context": context,
                    "listener": { "filterChain": { "filter": {
                        "name": "envoy.filters.network.tcp_proxy",
                    }}},
                },
                "patch": {
                    "operation": "INSERT_BEFORE",
                    // The Wasm network filter under either build: Envoy 1.40's network
                    // dynamic-module ABI has no labelled metrics (docs/native.md).
                    "value": network_wasm_filter(root_id, &opts.code, &opts.config_json),
                },
            }));
        }
    }
    let mut spec = Map::new();
    spec.insert("configPatches".into(), Value::Array(patches));
    opts.scope.apply(&mut spec, "workloadSelector", "labels");
    resource(
        ENVOY_FILTER_API_VERSION,
        "EnvoyFilter",
        &opts.name,
        &opts.namespace,
        Value::Object(spec),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_clusters_are_istios_outbound_names() {
        assert_eq!(
            default_remote_cluster("https://files.example.com/m/meshstats.wasm").as_deref(),
            Some("outbound|443||files.example.com")
        );
        assert_eq!(
            default_remote_cluster("http://files.example.com:8080/x").as_deref(),
            Some("outbound|8080||files.example.com")
        );
        assert_eq!(default_remote_cluster("oci://x/y"), None);
    }
}
