//! Istio manifests that deploy the filter (docs/deploying.md): `WasmPlugin` (Istio ≥ 1.12's
//! way), `EnvoyFilter` (any Istio, the filter's file already on the proxy), the `Telemetry`
//! resource and mesh config that print the filter's access log entries, and the proxy
//! configuration that carries every label and histogram bucket into the proxy's bootstrap
//! (Istio builds the bootstrap itself; `meshstats render stats-config` is its plain-Envoy
//! equivalent, and both come from the same `all_tag_names` / `bucket_settings`).
//!
//! Every function returns JSON values; [`to_yaml`] and [`to_json`] print them.

use crate::render::access_log::{log_filter_expression, log_format};
use crate::render::stats_config::stats_config;
use meshstats_filter::config::{LogDelivery, PluginConfig};
use meshstats_filter::labels::STANDARD_LABELS;
use meshstats_filter::metrics::{all_tag_names, bucket_settings};
use serde_json::{json, Map, Value};

pub const WASM_PLUGIN_API_VERSION: &str = "extensions.istio.io/v1alpha1";
pub const ENVOY_FILTER_API_VERSION: &str = "networking.istio.io/v1alpha3";
/// `v1` is served from Istio 1.22 on (same schema as `v1alpha1`, which older releases serve).
pub const TELEMETRY_API_VERSION: &str = "telemetry.istio.io/v1";

/// The prefix Envoy gives every metric a Wasm module defines: all of the filter's series
/// (`istio_*`, `meshstats_*`, user-defined names) start with it, before tag extraction.
pub const WASM_STAT_PREFIX: &str = "wasmcustom.";

/// Pod annotations Istio reads when it writes the proxy's bootstrap.
pub const PROXY_CONFIG_ANNOTATION: &str = "proxy.istio.io/config";
pub const HISTOGRAM_BUCKETS_ANNOTATION: &str = "sidecar.istio.io/statsHistogramBuckets";
pub const BOOTSTRAP_OVERRIDE_ANNOTATION: &str = "sidecar.istio.io/bootstrapOverride";
/// The key Istio's injector reads from the ConfigMap `bootstrapOverride` names.
pub const BOOTSTRAP_OVERRIDE_KEY: &str = "custom_bootstrap.json";

/// The label every rendered resource carries (`kubectl delete -l app.kubernetes.io/part-of=meshstats`).
const PART_OF: (&str, &str) = ("app.kubernetes.io/part-of", "meshstats");

/// A `targetRefs` entry: a Gateway API `Gateway`/`GatewayClass` or a `Service`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRef {
    pub group: String,
    pub kind: String,
    pub name: String,
}

impl TargetRef {
    /// `Kind/name` (the group follows from the kind: `Gateway` and `GatewayClass` are
    /// `gateway.networking.k8s.io`, anything else the core group) or `group/Kind/name`.
    pub fn parse(text: &str) -> Result<TargetRef, String> {
        let parts: Vec<&str> = text.split('/').collect();
        let (group, kind, name) = match parts[..] {
            [kind, name] => {
                let group = match kind {
                    "Gateway" | "GatewayClass" => "gateway.networking.k8s.io",
                    _ => "",
                };
                (group, kind, name)
            }
            [group, kind, name] => (group, kind, name),
            _ => {
                return Err(format!(
                    "expected Kind/name or group/Kind/name, got {text:?}"
                ))
            }
        };
        if kind.is_empty() || name.is_empty() {
            return Err(format!(
                "expected Kind/name or group/Kind/name, got {text:?}"
            ));
        }
        Ok(TargetRef {
            group: group.to_string(),
            kind: kind.to_string(),
            name: name.to_string(),
        })
    }

    fn to_json(&self) -> Value {
        json!({ "group": self.group, "kind": self.kind, "name": self.name })
    }
}

/// `key=value`, for `--selector`.
pub fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() && !k.contains('*') && !v.contains('*') => {
            Ok((k.to_string(), v.to_string()))
        }
        _ => Err(format!("expected key=value (no wildcards), got {text:?}")),
    }
}

/// Which workloads a resource applies to. Empty: every workload in its namespace (in
/// Istio's root namespace, normally `istio-system`: the whole mesh).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub selector: Vec<(String, String)>,
    pub target_refs: Vec<TargetRef>,
}

impl Scope {
    fn labels(&self) -> Value {
        Value::Object(
            self.selector
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        )
    }

    /// Adds `selector_field: {labels_field: …}` or `targetRefs` to `spec`.
    fn apply(&self, spec: &mut Map<String, Value>, selector_field: &str, labels_field: &str) {
        if !self.selector.is_empty() {
            spec.insert(
                selector_field.into(),
                json!({ labels_field: self.labels() }),
            );
        }
        if !self.target_refs.is_empty() {
            let refs = self.target_refs.iter().map(TargetRef::to_json).collect();
            spec.insert("targetRefs".into(), Value::Array(refs));
        }
    }
}

fn resource(api_version: &str, kind: &str, name: &str, namespace: &str, spec: Value) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": { PART_OF.0: PART_OF.1 },
        },
        "spec": spec,
    })
}

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
    spec.insert("failStrategy".into(), json!("FAIL_OPEN"));
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
        // Telemetry must never take traffic down: if the VM fails, requests pass
        // through unobserved instead of failing.
        "failure_policy": "FAIL_OPEN",
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
                "value": http_wasm_filter(root_id, &opts.code, &opts.config_json),
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

/// Whether the configuration has log entries for an access logger to print (the filter
/// state delivery); `render access-log` prints `[]` otherwise.
pub fn has_filter_state_logs(config: &PluginConfig) -> bool {
    !config.logs.is_empty() && config.log_delivery == LogDelivery::FilterState
}

/// The access log provider, for `meshConfig.extensionProviders`: Envoy's file access log on
/// the proxy's stdout with the format `render access-log` uses. Istio's provider has no
/// filter; the `Telemetry` resource's `filter.expression` carries it.
pub fn access_log_provider(name: &str) -> Value {
    json!({
        "name": name,
        "envoyFileAccessLog": {
            "path": "/dev/stdout",
            "logFormat": { "text": log_format() },
        },
    })
}

/// What `render telemetry` renders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryOptions {
    pub name: String,
    pub namespace: String,
    pub scope: Scope,
    /// The `extensionProviders` entry's name.
    pub provider: String,
}

/// The `Telemetry` resource that turns the provider on, with the CEL filter `render
/// access-log` puts on its logger: requests without entries print nothing.
pub fn telemetry(opts: &TelemetryOptions) -> Value {
    let mut spec = Map::new();
    spec.insert(
        "accessLogging".into(),
        json!([{
            "providers": [{ "name": opts.provider }],
            "filter": { "expression": log_filter_expression() },
        }]),
    );
    opts.scope.apply(&mut spec, "selector", "matchLabels");
    resource(
        TELEMETRY_API_VERSION,
        "Telemetry",
        &opts.name,
        &opts.namespace,
        Value::Object(spec),
    )
}

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
    match buckets(config) {
        Buckets::None => {}
        Buckets::Annotation(bounds) => {
            let value = json!({ histogram_bucket_prefix(): bounds });
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
    annotations
}

/// `render proxy-config`: a strategic merge patch for a Deployment (or any pod template
/// owner): `kubectl patch deployment NAME --patch-file FILE`.
pub fn proxy_config_patch(config: &PluginConfig, bootstrap_config_map: &str) -> Value {
    json!({ "spec": { "template": { "metadata": {
        "annotations": proxy_annotations(config, bootstrap_config_map),
    }}}})
}

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
        "metadata": { "name": name, "namespace": namespace, "labels": { PART_OF.0: PART_OF.1 } },
        "data": { BOOTSTRAP_OVERRIDE_KEY: fragment + "\n" },
    })
}

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

/// Output formats of the Istio targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Documents separated by `---`.
    #[default]
    Yaml,
    /// One document as is; several as a `v1` `List`.
    Json,
}

/// YAML text of one value.
pub fn to_yaml_text(value: &Value) -> String {
    serde_yaml_ng::to_string(value).unwrap_or_default()
}

/// YAML documents, `---` between them, each after its comment lines (`# …`).
pub fn to_yaml(comment: &[&str], docs: &[Value]) -> String {
    let mut out = String::new();
    for line in comment {
        out.push_str("# ");
        out.push_str(line);
        out.push('\n');
    }
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&to_yaml_text(doc));
    }
    out
}

/// JSON: one document as it is, several as a `List` (`kubectl apply -f` takes both).
pub fn to_json(docs: &[Value]) -> String {
    let value = match docs {
        [one] => one.clone(),
        _ => json!({ "apiVersion": "v1", "kind": "List", "items": docs }),
    };
    let mut out = serde_json::to_string_pretty(&value).unwrap_or_default();
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_refs_default_their_group() {
        assert_eq!(
            TargetRef::parse("Gateway/bookinfo-gateway").unwrap(),
            TargetRef {
                group: "gateway.networking.k8s.io".into(),
                kind: "Gateway".into(),
                name: "bookinfo-gateway".into()
            }
        );
        assert_eq!(TargetRef::parse("Service/ratings").unwrap().group, "");
        assert_eq!(TargetRef::parse("x.io/Thing/a").unwrap().group, "x.io");
        assert!(TargetRef::parse("ratings").is_err());
        assert!(TargetRef::parse("Service/").is_err());
        assert!(parse_label("app=ratings").is_ok());
        assert!(parse_label("app").is_err());
        assert!(parse_label("app=rat*").is_err());
    }

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
