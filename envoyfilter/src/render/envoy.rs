//! A standalone Envoy v3 bootstrap for one sidecar: one listener, one upstream cluster, the
//! meshstats filter in front of the router. Shaped like what istiod sends a sidecar in the
//! places the filter reads (listener direction, node and cluster/endpoint metadata, cluster
//! names), so the filter sees the same inputs as in a mesh.

use crate::render::native::{native_http_filter, native_layered_runtime, native_network_filter};
use serde_json::{json, Value};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Which way the listener faces; the filter reads it as `listener_direction` to decide
/// whether it reports as the destination (inbound) or the source (outbound).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    /// The lower-case word Istio uses in listener, stat prefix and cluster names.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }

    fn traffic_direction(self) -> &'static str {
        match self {
            Direction::Inbound => "INBOUND",
            Direction::Outbound => "OUTBOUND",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the listener carries: HTTP through a connection manager (the HTTP Wasm filter before
/// the router), or TCP through `tcp_proxy` (the network Wasm filter before it, for Istio's
/// `istio_tcp_*` metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Protocol {
    #[default]
    Http,
    Tcp,
}

/// PEM files for one side of a TLS connection: this proxy's certificate chain and key, and
/// the CA that must have signed the other side's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// Everything that varies between the sidecars `envoy_bootstrap` renders.
#[derive(Debug, Clone, PartialEq)]
pub struct SidecarOptions {
    pub direction: Direction,
    pub listen: SocketAddr,
    pub upstream: SocketAddr,
    pub admin: SocketAddr,
    /// Istio's `sidecar~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local`; see [`default_node_id`].
    pub node_id: String,
    /// A JSON object placed verbatim at `node.metadata` (Istio keys: `NAME`, `NAMESPACE`,
    /// `WORKLOAD_NAME`, `CLUSTER_ID`, `LABELS`, ...).
    pub node_metadata: Value,
    /// The filter's `.wasm` file; unused when `with_filter` is false or with `native_module`.
    pub wasm_path: Option<PathBuf>,
    /// `Some`: the native build instead of the Wasm one, the dynamic module at this path
    /// (`libmeshstats.so`; see [`crate::render::native`]), with `root_id` as `filter_name`.
    pub native_module: Option<PathBuf>,
    /// The filter configuration, passed to the filter as it was written.
    pub config_json: String,
    /// Istio uses `stats_inbound`/`stats_outbound`, which the filter also accepts as a
    /// direction hint.
    pub root_id: String,
    /// `None` means [`default_cluster_name`].
    pub cluster_name: Option<String>,
    /// The cluster's `metadata.filter_metadata` (where istiod puts `istio.services`).
    pub cluster_metadata: Option<Value>,
    /// The endpoint's `metadata.filter_metadata` (where istiod puts `istio.workload`).
    pub endpoint_metadata: Option<Value>,
    /// False renders a bare Envoy, identical otherwise, as a benchmark baseline.
    pub with_filter: bool,
    /// The connection manager's `access_log` list: from [`crate::access_log`], which prints
    /// the filter's JSON log entries on stdout (empty when the configuration has none). Kept
    /// even without the filter, so the two setups differ only by the filter.
    pub access_log: Vec<Value>,
    /// Also logs each request to stderr in Envoy's default format (debugging aid); stderr,
    /// so that stdout carries only the filter's log entries.
    pub debug_access_log: bool,
    /// From [`crate::stats_config`]; kept even without the filter so the two setups differ
    /// only by the filter.
    pub stats_config: Value,
    /// HTTP (the default) or TCP.
    pub protocol: Protocol,
    /// The listener terminates TLS and requires a client certificate signed by `ca` (mTLS,
    /// as Istio's inbound listeners in STRICT mode). `None`: plaintext.
    pub downstream_tls: Option<TlsFiles>,
    /// The cluster originates TLS, presenting `cert` and checking the server against `ca`
    /// (as Istio's outbound clusters with ISTIO_MUTUAL). `None`: plaintext.
    pub upstream_tls: Option<TlsFiles>,
    /// gRPC message metrics (HTTP only): Envoy's `grpc_stats` filter before the Wasm filter,
    /// writing the message counts the filter reads (`emit_filter_state`), and an HTTP/2
    /// upstream cluster (gRPC needs HTTP/2 end to end). False: neither.
    pub grpc: bool,
}

/// The node id istiod's sidecars use, built from the node metadata's `NAME` (pod name) and
/// `NAMESPACE`, falling back to `WORKLOAD_NAME`, then `meshstats`, and `default`.
pub fn default_node_id(node_metadata: &Value) -> String {
    let pod = meta_str(node_metadata, "NAME")
        .or_else(|| meta_str(node_metadata, "WORKLOAD_NAME"))
        .unwrap_or("meshstats");
    let ns = namespace(node_metadata);
    format!("sidecar~127.0.0.1~{pod}.{ns}~{ns}.svc.cluster.local")
}

/// Istio's cluster names: `outbound|PORT||HOST` for a service, `inbound|PORT||` for the
/// local workload. The filter falls back to them when there is no cluster metadata.
pub fn default_cluster_name(direction: Direction, upstream: SocketAddr) -> String {
    match direction {
        Direction::Outbound => format!("outbound|{}||{}", upstream.port(), upstream.ip()),
        Direction::Inbound => format!("inbound|{}||", upstream.port()),
    }
}

fn meta_str<'a>(metadata: &'a Value, key: &str) -> Option<&'a str> {
    metadata
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn namespace(node_metadata: &Value) -> &str {
    meta_str(node_metadata, "NAMESPACE").unwrap_or("default")
}

fn socket_address(addr: SocketAddr) -> Value {
    json!({ "socket_address": { "address": addr.ip().to_string(), "port_value": addr.port() } })
}

/// The complete bootstrap, as Envoy's JSON (`envoy -c`).
pub fn envoy_bootstrap(opts: &SidecarOptions) -> Value {
    let cluster_name = opts
        .cluster_name
        .clone()
        .unwrap_or_else(|| default_cluster_name(opts.direction, opts.upstream));
    let mut bootstrap = json!({
        "node": {
            "id": opts.node_id,
            "cluster": namespace(&opts.node_metadata),
            "metadata": opts.node_metadata,
        },
        "admin": { "address": socket_address(opts.admin) },
        "stats_config": opts.stats_config,
        "static_resources": {
            "listeners": [listener(opts, &cluster_name)],
            "clusters": [cluster(opts, &cluster_name)],
        },
    });
    if let (true, Some(_), Some(obj)) = (
        opts.with_filter,
        &opts.native_module,
        bootstrap.as_object_mut(),
    ) {
        obj.insert("layered_runtime".into(), native_layered_runtime());
    }
    bootstrap
}

fn listener(opts: &SidecarOptions, cluster_name: &str) -> Value {
    let dir = opts.direction.as_str();
    let filters = match opts.protocol {
        Protocol::Http => vec![
            json!({ "name": "envoy.filters.network.http_connection_manager", "typed_config": hcm(opts, cluster_name) }),
        ],
        Protocol::Tcp => tcp_filters(opts, cluster_name),
    };
    let mut chain = json!({ "filters": filters });
    if let (Some(tls), Some(obj)) = (&opts.downstream_tls, chain.as_object_mut()) {
        obj.insert(
            "transport_socket".into(),
            downstream_tls(tls, opts.protocol),
        );
    }
    json!({
        "name": format!("{dir}_{}", opts.listen.port()),
        "address": socket_address(opts.listen),
        "traffic_direction": opts.direction.traffic_direction(),
        "filter_chains": [chain],
    })
}

/// The network filter before `tcp_proxy`: the Wasm one (same configuration) whenever the
/// `.wasm` is given, also next to the native HTTP filter, because Envoy 1.40's network
/// dynamic-module ABI has no labelled metrics (`docs/native.md`); a TCP connection reports a
/// few times per connection, not per request, so Wasm costs little there.
fn tcp_filters(opts: &SidecarOptions, cluster_name: &str) -> Vec<Value> {
    let exchanging = with_tcp_exchange(opts);
    let opts = exchanging.as_ref().unwrap_or(opts);
    let mut filters = Vec::new();
    if let (true, None, Some(module)) = (opts.with_filter, &opts.wasm_path, &opts.native_module) {
        filters.push(native_network_filter(
            &opts.root_id,
            Some(module),
            &opts.config_json,
        ));
    } else if opts.with_filter {
        let mut wasm = wasm_filter(opts);
        wasm["name"] = json!("envoy.filters.network.wasm");
        wasm["typed_config"]["@type"] =
            json!("type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm");
        filters.push(wasm);
    }
    let mut proxy = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        "stat_prefix": format!("{}_tcp", opts.direction.as_str()),
        "cluster": cluster_name,
    });
    if let (true, Some(obj)) = (opts.debug_access_log, proxy.as_object_mut()) {
        obj.insert("access_log".into(), json!([stderr_access_log()]));
    }
    filters.push(json!({ "name": "envoy.filters.network.tcp_proxy", "typed_config": proxy }));
    filters
}

/// Istio's ALPN for in-mesh clusters with TCP metadata exchange (`ALPNInMeshWithMxc`).
pub const ALPN_UPSTREAM_EXCHANGE: [&str; 2] = ["istio-peer-exchange", "istio"];
/// Istio's ALPN for inbound mTLS listeners with TCP metadata exchange
/// (`ALPNDownstreamWithMxc`).
pub const ALPN_DOWNSTREAM_EXCHANGE: [&str; 3] = ["istio-peer-exchange", "h2", "http/1.1"];

/// A TCP sidecar with mTLS on either side speaks Istio's TCP metadata exchange, as Istio's
/// do: the filter configuration gets `tcp_metadata_exchange: true` unless it sets the field
/// itself (either spelling), and the TLS contexts Istio's ALPN. `None`: nothing to change.
fn with_tcp_exchange(opts: &SidecarOptions) -> Option<SidecarOptions> {
    if opts.downstream_tls.is_none() && opts.upstream_tls.is_none() {
        return None;
    }
    let mut config: Value = serde_json::from_str(&opts.config_json).ok()?;
    let obj = config.as_object_mut()?;
    if obj.contains_key("tcp_metadata_exchange") || obj.contains_key("tcpMetadataExchange") {
        return None;
    }
    obj.insert("tcp_metadata_exchange".into(), Value::Bool(true));
    let mut out = opts.clone();
    out.config_json = config.to_string();
    Some(out)
}

fn stderr_access_log() -> Value {
    json!({
        "name": "envoy.access_loggers.stderr",
        "typed_config": { "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StderrAccessLog" },
    })
}

fn common_tls_context(tls: &TlsFiles) -> Value {
    let file = |p: &PathBuf| json!({ "filename": p.to_string_lossy() });
    json!({
        "tls_certificates": [{ "certificate_chain": file(&tls.cert), "private_key": file(&tls.key) }],
        "validation_context": { "trusted_ca": file(&tls.ca) },
    })
}

/// `protocol` TCP: Istio's ALPN for TCP metadata exchange (HTTP exchanges by headers).
fn downstream_tls(tls: &TlsFiles, protocol: Protocol) -> Value {
    let mut common = common_tls_context(tls);
    if protocol == Protocol::Tcp {
        common["alpn_protocols"] = json!(ALPN_DOWNSTREAM_EXCHANGE);
    }
    json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "require_client_certificate": true,
            "common_tls_context": common,
        },
    })
}

fn upstream_tls(tls: &TlsFiles, protocol: Protocol) -> Value {
    let mut common = common_tls_context(tls);
    if protocol == Protocol::Tcp {
        common["alpn_protocols"] = json!(ALPN_UPSTREAM_EXCHANGE);
    }
    json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "common_tls_context": common,
        },
    })
}

fn hcm(opts: &SidecarOptions, cluster_name: &str) -> Value {
    let dir = opts.direction.as_str();
    let mut http_filters = Vec::new();
    if opts.grpc {
        http_filters.push(grpc_stats_filter());
    }
    if let (true, Some(module)) = (opts.with_filter, &opts.native_module) {
        http_filters.push(native_http_filter(
            &opts.root_id,
            Some(module),
            &opts.config_json,
        ));
    } else if opts.with_filter {
        http_filters.push(wasm_filter(opts));
    }
    http_filters.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" },
    }));
    let mut hcm = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": format!("{dir}_http"),
        "codec_type": "AUTO",
        "route_config": {
            "name": format!("{dir}_{}", opts.listen.port()),
            "virtual_hosts": [{
                "name": cluster_name,
                "domains": ["*"],
                // No retry policy: a retried request would be counted twice upstream and
                // make request counts in tests depend on timing.
                "routes": [{ "match": { "prefix": "/" }, "route": { "cluster": cluster_name } }],
            }],
        },
        "http_filters": http_filters,
    });
    let mut access_log = opts.access_log.clone();
    if opts.debug_access_log {
        access_log.push(stderr_access_log());
    }
    if let (false, Some(obj)) = (access_log.is_empty(), hcm.as_object_mut()) {
        obj.insert("access_log".into(), Value::Array(access_log));
    }
    hcm
}

/// Counts gRPC messages per stream and writes the counts to the stream's filter state
/// (`envoy.filters.http.grpc_stats`), where the Wasm filter after it reads them for
/// `istio_request_messages_total` / `istio_response_messages_total`. `stats_for_all_methods:
/// false`: Envoy's own `grpc.*` stats then do not carry service/method names, so callers
/// cannot create stats by calling made-up methods (Istio's metrics have no method label
/// either). Kept even without the Wasm filter, so a baseline differs only by that filter.
fn grpc_stats_filter() -> Value {
    json!({
        "name": "envoy.filters.http.grpc_stats",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.grpc_stats.v3.FilterConfig",
            "emit_filter_state": true,
            "stats_for_all_methods": false,
        },
    })
}

/// What Envoy does when the filter's VM fails (docs/deploying.md, "When the filter fails"). A
/// trap fails only the request it happened in (measured: `FAIL_OPEN` fails that one too, as
/// Envoy's per-stream fail-open comes only from the deprecated `fail_open` flag) and the next
/// request gets a fresh VM, at most one reload per second and worker (Envoy's default
/// backoff); `FAIL_OPEN` would leave the proxy unobserved until it restarts, with no stat
/// saying so. `integration/tests/wasm_failure.rs` pins both behaviours.
pub const FAILURE_POLICY: &str = "FAIL_RELOAD";

fn wasm_filter(opts: &SidecarOptions) -> Value {
    let filename = opts
        .wasm_path
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    json!({
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "meshstats",
                "root_id": opts.root_id,
                "failure_policy": FAILURE_POLICY,
                "vm_config": {
                    "vm_id": "meshstats",
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": { "local": { "filename": filename } },
                },
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": opts.config_json,
                },
            },
        },
    })
}

fn cluster(opts: &SidecarOptions, cluster_name: &str) -> Value {
    let mut endpoint = json!({ "endpoint": { "address": socket_address(opts.upstream) } });
    if let (Some(md), Some(obj)) = (&opts.endpoint_metadata, endpoint.as_object_mut()) {
        obj.insert("metadata".into(), json!({ "filter_metadata": md }));
    }
    let mut cluster = json!({
        "name": cluster_name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": cluster_name,
            "endpoints": [{ "lb_endpoints": [endpoint] }],
        },
    });
    if let (Protocol::Http, Some(obj)) = (opts.protocol, cluster.as_object_mut()) {
        // gRPC needs HTTP/2 to the upstream; plain HTTP keeps HTTP/1.1 as before.
        let http_config = if opts.grpc {
            json!({ "http2_protocol_options": {} })
        } else {
            json!({ "http_protocol_options": {} })
        };
        obj.insert(
            "typed_extension_protocol_options".into(),
            json!({
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": http_config,
                },
            }),
        );
    }
    if let (Some(tls), Some(obj)) = (&opts.upstream_tls, cluster.as_object_mut()) {
        obj.insert("transport_socket".into(), upstream_tls(tls, opts.protocol));
    }
    if let (Some(md), Some(obj)) = (&opts.cluster_metadata, cluster.as_object_mut()) {
        obj.insert("metadata".into(), json!({ "filter_metadata": md }));
    }
    cluster
}
