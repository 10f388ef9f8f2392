//! Sidecars shaped like Istio's, rendered by `meshstats_cli::envoy_bootstrap`, and the
//! standard two-sidecar setup the scenario tests use (the demo's mesh is [`crate::demo`]'s):
//!
//! ```text
//! client --> [productpage-v1 sidecar, OUTBOUND] --> [ratings-v1 sidecar, INBOUND] --> app
//!            Bookinfo::client, listens on entry     Bookinfo::server
//! ```

use crate::envoy::Envoy;
use crate::paths::{build, free_port, native_module_path, wasm_path};
use meshstats_cli::render::access_log::access_loggers;
use meshstats_cli::render::envoy::{Protocol, TlsFiles};
use meshstats_cli::{
    default_node_id, envoy_bootstrap, native_stats_config, stats_config_for, Build, Direction,
    SidecarOptions,
};
use meshstats_filter::config::PluginConfig;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The service every Bookinfo cluster belongs to.
pub const RATINGS_SERVICE: &str = "ratings.default.svc.cluster.local";

/// The `host` productpage sends its requests to ratings with.
pub const RATINGS_HOST: &str = "ratings:9080";

/// Istio's node metadata for workload `{app}-{version}` (pod `{app}-{version}-0`) in
/// namespace `default`, cluster `Kubernetes`, with the app/version and canonical labels.
pub fn workload_metadata(app: &str, version: &str) -> Value {
    json!({
        "NAME": format!("{app}-{version}-0"),
        "NAMESPACE": "default",
        "WORKLOAD_NAME": format!("{app}-{version}"),
        "CLUSTER_ID": "Kubernetes",
        "LABELS": {
            "app": app,
            "version": version,
            "service.istio.io/canonical-name": app,
            "service.istio.io/canonical-revision": version,
        },
    })
}

/// A cluster's `filter_metadata` as istiod writes it for a service (`istio.services`).
pub fn service_metadata(host: &str) -> Value {
    let name = host.split('.').next().unwrap_or(host);
    let namespace = host.split('.').nth(1).unwrap_or("default");
    json!({ "istio": { "services": [{ "host": host, "name": name, "namespace": namespace }] } })
}

/// Everything about one sidecar except its ports, which [`Sidecar::start`] picks. Fields
/// are public: adjust with struct update syntax or the builder methods.
#[derive(Debug, Clone, PartialEq)]
pub struct Sidecar {
    /// Names the Envoy in logs and its scratch directory.
    pub name: String,
    pub direction: Direction,
    /// Where the single cluster points.
    pub upstream: SocketAddr,
    pub node_metadata: Value,
    /// The filter configuration, passed verbatim. Also decides the bootstrap's stats tags
    /// (the defaults' when it does not parse, as the filter then serves with the defaults).
    pub config: String,
    /// Empty by default, so the filter takes its direction from the listener; Istio's
    /// `stats_inbound` / `stats_outbound` also work.
    pub root_id: String,
    pub cluster_name: Option<String>,
    pub cluster_metadata: Option<Value>,
    pub endpoint_metadata: Option<Value>,
    /// False: the same bootstrap without the filter.
    pub with_filter: bool,
    /// Which build of the filter: [`crate::build`] (`$MESHSTATS_BUILD`) unless a test sets it.
    pub build: Build,
    /// Envoy's default access log on stderr (into [`Envoy::log`]), for debugging.
    pub debug_access_log: bool,
    /// More connection manager `access_log` entries, after the ones the configuration
    /// renders (its log entries on stdout), e.g. Envoy's own JSON log into a file to
    /// compare with.
    pub extra_access_logs: Vec<Value>,
    /// The connection manager's `max_request_headers_kb` (Envoy's default: 60), for tests
    /// that send very large headers. Set on every sidecar a request passes.
    pub max_request_headers_kb: Option<u32>,
    /// The route's `timeout` (Envoy's default: 15 s; Istio sets it from a `VirtualService`'s
    /// `timeout`), for tests of upstream timeouts.
    pub route_timeout: Option<Duration>,
    /// Extra Envoy command-line arguments, e.g. `--component-log-level wasm:debug`.
    pub envoy_args: Vec<String>,
    /// The bootstrap's `stats_flush_interval`, a setting [`Sidecar::bootstrap`] adds to
    /// what `envoy_bootstrap` renders. Histograms reach `/stats/prometheus` only at a stats
    /// flush (Envoy's default: every 5 s), counters at once; the default here, 100 ms, keeps
    /// waiting for histograms short. Tests must still wait for histogram values (e.g.
    /// [`Envoy::wait_for`]) rather than scrape once. `None` keeps Envoy's default.
    pub stats_flush_interval: Option<Duration>,
    /// Envoy's `--file-flush-interval-msec`: how often access log files, stdout included,
    /// are written out (Envoy's default: every 10 s, or once 64 KiB are buffered). The
    /// default here, 100 ms, lets tests wait for log lines briefly. `None` keeps Envoy's.
    pub file_flush_interval: Option<Duration>,
    /// HTTP (default) or TCP (`tcp_proxy` with the network Wasm filter).
    pub protocol: Protocol,
    /// mTLS on the listener (client certificates required) / from the cluster.
    pub downstream_tls: Option<TlsFiles>,
    pub upstream_tls: Option<TlsFiles>,
    /// gRPC: Envoy's `grpc_stats` filter before the Wasm filter and an HTTP/2 cluster, for
    /// the message metrics (`SidecarOptions::grpc`).
    pub grpc: bool,
    /// Serve the listener by file-based LDS from this file instead of the bootstrap
    /// ([`crate::lds`]), so a test can push new listeners while traffic flows. `None`: static.
    pub lds: Option<PathBuf>,
}

impl Sidecar {
    /// Filter config `{}`, no cluster or endpoint metadata, no root id.
    pub fn new(
        name: &str,
        direction: Direction,
        upstream: SocketAddr,
        node_metadata: Value,
    ) -> Sidecar {
        Sidecar {
            name: name.to_string(),
            direction,
            upstream,
            node_metadata,
            config: "{}".to_string(),
            root_id: String::new(),
            cluster_name: None,
            cluster_metadata: None,
            endpoint_metadata: None,
            with_filter: true,
            build: build(),
            debug_access_log: false,
            extra_access_logs: Vec::new(),
            max_request_headers_kb: None,
            route_timeout: None,
            envoy_args: Vec::new(),
            stats_flush_interval: Some(Duration::from_millis(100)),
            file_flush_interval: Some(Duration::from_millis(100)),
            protocol: Protocol::Http,
            downstream_tls: None,
            upstream_tls: None,
            grpc: false,
            lds: None,
        }
    }

    /// With filter configuration `config` (JSON text).
    pub fn config(self, config: &str) -> Sidecar {
        Sidecar {
            config: config.to_string(),
            ..self
        }
    }

    /// The render options for this sidecar on `listen` / `admin`.
    pub fn options(&self, listen: SocketAddr, admin: SocketAddr) -> SidecarOptions {
        let parsed = PluginConfig::parse(&self.config).unwrap_or_default();
        // TCP is the Wasm network filter under either build: Envoy 1.40's network
        // dynamic-module ABI has no labelled metrics (docs/native.md).
        let build = match self.protocol {
            Protocol::Tcp => Build::Wasm,
            Protocol::Http => self.build,
        };
        SidecarOptions {
            direction: self.direction,
            listen,
            upstream: self.upstream,
            admin,
            node_id: default_node_id(&self.node_metadata),
            node_metadata: self.node_metadata.clone(),
            wasm_path: (self.with_filter && build == Build::Wasm).then(wasm_path),
            native_module: (self.with_filter && build == Build::Native).then(native_module_path),
            config_json: self.config.clone(),
            root_id: self.root_id.clone(),
            cluster_name: self
                .cluster_name
                .clone()
                .or_else(|| self.istio_cluster_name()),
            cluster_metadata: self.cluster_metadata.clone(),
            endpoint_metadata: self.endpoint_metadata.clone(),
            with_filter: self.with_filter,
            access_log: access_loggers(&parsed),
            debug_access_log: self.debug_access_log,
            stats_config: match build {
                // As the filter's AUTO encoding picks on this node.
                Build::Wasm => stats_config_for(
                    &parsed,
                    parsed
                        .stat_name_encoding
                        .resolve(self.node_metadata.get("ISTIO_VERSION").is_some()),
                ),
                Build::Native => native_stats_config(&parsed),
            },
            protocol: self.protocol,
            downstream_tls: self.downstream_tls.clone(),
            upstream_tls: self.upstream_tls.clone(),
            grpc: self.grpc,
        }
    }

    /// Istio's name for an outbound cluster of the service its metadata names,
    /// `outbound|PORT||HOST`, as istiod writes both: the native build derives the service from
    /// that name (Envoy 1.40's dynamic-module ABI cannot read `istio.services`, a list of
    /// structs), so the harness renders what a real mesh has rather than `…||127.0.0.1`.
    fn istio_cluster_name(&self) -> Option<String> {
        if self.direction != Direction::Outbound {
            return None;
        }
        let host = self
            .cluster_metadata
            .as_ref()?
            .pointer("/istio/services/0/host")?
            .as_str()?;
        Some(format!("outbound|{}||{host}", self.upstream.port()))
    }

    /// The bootstrap for this sidecar on `listen` / `admin`: `envoy_bootstrap`'s, plus
    /// `stats_flush_interval`, `extra_access_logs`, `max_request_headers_kb` and
    /// `route_timeout` when set.
    pub fn bootstrap(&self, listen: SocketAddr, admin: SocketAddr) -> Value {
        let mut bootstrap = envoy_bootstrap(&self.options(listen, admin));
        if let (Some(interval), Some(obj)) = (self.stats_flush_interval, bootstrap.as_object_mut())
        {
            obj.insert(
                "stats_flush_interval".into(),
                json!(format!("{:.3}s", interval.as_secs_f64())),
            );
        }
        if let Some(hcm) = bootstrap
            .pointer_mut("/static_resources/listeners/0/filter_chains/0/filters/0/typed_config")
            .and_then(Value::as_object_mut)
        {
            if !self.extra_access_logs.is_empty() {
                let logs = hcm.entry("access_log").or_insert_with(|| json!([]));
                if let Some(logs) = logs.as_array_mut() {
                    logs.extend(self.extra_access_logs.iter().cloned());
                }
            }
            if let Some(kb) = self.max_request_headers_kb {
                hcm.insert("max_request_headers_kb".into(), json!(kb));
            }
            if let (Some(timeout), Some(route)) = (
                self.route_timeout,
                hcm.get_mut("route_config")
                    .and_then(|r| r.pointer_mut("/virtual_hosts/0/routes/0/route"))
                    .and_then(Value::as_object_mut),
            ) {
                route.insert(
                    "timeout".into(),
                    json!(format!("{:.3}s", timeout.as_secs_f64())),
                );
            }
        }
        bootstrap
    }

    /// Starts it on free ports; returns the Envoy and its listener address. A port taken
    /// between picking and binding (another process) is retried with new ports.
    pub fn start(&self) -> Result<(Envoy, SocketAddr), String> {
        let mut attempt = 1;
        loop {
            let listen = local(free_port());
            let admin = local(free_port());
            let mut bootstrap = self.bootstrap(listen, admin);
            if let Some(path) = &self.lds {
                crate::lds::move_listener_to_file(&mut bootstrap, path)?;
            }
            match self.start_from(&bootstrap, admin) {
                Ok(envoy) => return Ok((envoy, listen)),
                Err(e) if attempt < 3 && e.contains("Address already in use") => attempt += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// Starts Envoy from `bootstrap` (this sidecar's [`Sidecar::bootstrap`], possibly
    /// changed: the demo gives one cluster several endpoints) with this sidecar's
    /// command-line settings, on ports the caller picked, so that a whole mesh can start at
    /// once.
    pub fn start_from(&self, bootstrap: &Value, admin: SocketAddr) -> Result<Envoy, String> {
        let mut args: Vec<String> = Vec::new();
        if let Some(interval) = self.file_flush_interval {
            args.extend([
                "--file-flush-interval-msec".to_string(),
                interval.as_millis().max(1).to_string(),
            ]);
        }
        args.extend(self.envoy_args.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Envoy::start_with_args(&self.name, bootstrap, admin, &args)
    }
}

pub(crate) fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// productpage-v1 calling ratings-v1, each through its sidecar, both clusters carrying
/// [`RATINGS_SERVICE`]'s metadata. Drop stops both Envoys.
pub struct Bookinfo {
    /// productpage-v1's sidecar (OUTBOUND), reporting as `source`.
    pub client: Envoy,
    /// ratings-v1's sidecar (INBOUND), reporting as `destination`.
    pub server: Envoy,
    /// Where to send requests: the client sidecar's listener.
    pub entry: SocketAddr,
    /// The server sidecar's listener (the client sidecar's upstream).
    pub server_listen: SocketAddr,
}

impl Bookinfo {
    /// In front of the app at `app`, with filter configs for the client and server sidecars.
    pub fn start(
        app: SocketAddr,
        client_config: &str,
        server_config: &str,
    ) -> Result<Bookinfo, String> {
        Bookinfo::start_with(
            app,
            |c| c.config(client_config),
            |s| s.config(server_config),
        )
    }

    /// Like [`Bookinfo::start`] with config `{}`, after `client` and `server` adjust each
    /// sidecar (the server starts first, so the client's upstream is already filled in).
    pub fn start_with(
        app: SocketAddr,
        client: impl FnOnce(Sidecar) -> Sidecar,
        server: impl FnOnce(Sidecar) -> Sidecar,
    ) -> Result<Bookinfo, String> {
        let with_service = |s: Sidecar| Sidecar {
            cluster_metadata: Some(service_metadata(RATINGS_SERVICE)),
            ..s
        };
        let server_sidecar = server(with_service(Sidecar::new(
            "ratings-v1",
            Direction::Inbound,
            app,
            workload_metadata("ratings", "v1"),
        )));
        let (server, server_listen) = server_sidecar.start()?;
        let client_sidecar = client(with_service(Sidecar::new(
            "productpage-v1",
            Direction::Outbound,
            server_listen,
            workload_metadata("productpage", "v1"),
        )));
        let (client, entry) = client_sidecar.start()?;
        Ok(Bookinfo {
            client,
            server,
            entry,
            server_listen,
        })
    }
    /// [`Bookinfo::start`] over mTLS with `pki`'s workload certificates: the client sidecar
    /// presents productpage's, the server sidecar requires one signed by the mesh CA.
    pub fn start_mtls(
        app: SocketAddr,
        pki: &crate::pki::Pki,
        server_config: &str,
    ) -> Result<Bookinfo, String> {
        Bookinfo::start_with(
            app,
            |c| Sidecar {
                upstream_tls: Some(pki.client.clone()),
                ..c
            },
            |s| Sidecar {
                downstream_tls: Some(pki.server.clone()),
                ..s.config(server_config)
            },
        )
    }
}

/// The 20 peer labels (reporter … destination_cluster) both sidecars of [`Bookinfo`] report for
/// productpage-v1 → ratings-v1 with metadata exchange working and no TLS: every request
/// metric's labels start with these. The server side of the native build names the service
/// by the Host header ([`server_service_labels`]).
pub fn bookinfo_peer_labels(reporter: &str) -> std::collections::BTreeMap<String, String> {
    let mut labels = bookinfo_peer_labels_of_metadata(reporter);
    // Every reporter but the client's is the server sidecar (`waypoint`: SERVER_GATEWAY).
    if reporter != "source" {
        for (k, v) in server_service_labels(RATINGS_HOST) {
            labels.insert(k.to_string(), v.to_string());
        }
    }
    labels
}

/// `destination_service` and `destination_service_name` of a server sidecar whose inbound
/// cluster carries [`RATINGS_SERVICE`]'s `istio.services` and whose requests came with Host
/// `host`. The Wasm build reads the metadata; the native build cannot (Envoy 1.40's
/// dynamic-module ABI reads no list of structs, and an inbound cluster's name, `inbound|PORT||`,
/// names no service), so it falls back to the Host header as Istio does without metadata
/// (docs/native.md).
pub fn server_service_labels(host: &str) -> [(&'static str, String); 2] {
    match build() {
        Build::Wasm => [
            ("destination_service", RATINGS_SERVICE.to_string()),
            ("destination_service_name", "ratings".to_string()),
        ],
        Build::Native => [
            ("destination_service", host.to_string()),
            ("destination_service_name", host.to_string()),
        ],
    }
}

fn bookinfo_peer_labels_of_metadata(reporter: &str) -> std::collections::BTreeMap<String, String> {
    [
        ("reporter", reporter),
        ("source_workload", "productpage-v1"),
        ("source_workload_namespace", "default"),
        ("source_principal", "unknown"),
        ("source_app", "productpage"),
        ("source_version", "v1"),
        ("source_canonical_service", "productpage"),
        ("source_canonical_revision", "v1"),
        ("source_cluster", "Kubernetes"),
        ("destination_workload", "ratings-v1"),
        ("destination_workload_namespace", "default"),
        ("destination_principal", "unknown"),
        ("destination_app", "ratings"),
        ("destination_version", "v1"),
        ("destination_service", "ratings.default.svc.cluster.local"),
        ("destination_service_name", "ratings"),
        ("destination_service_namespace", "default"),
        ("destination_canonical_service", "ratings"),
        ("destination_canonical_revision", "v1"),
        ("destination_cluster", "Kubernetes"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

impl Bookinfo {
    /// productpage-v1 → ratings-v1 as plaintext TCP sidecars (`tcp_proxy`) in front of
    /// `upstream`, both with `config`; the client's endpoint carries ratings' `istio.workload`.
    pub fn start_tcp(upstream: SocketAddr, config: &str) -> Result<Bookinfo, String> {
        let workload = json!({
            "istio": {"workload": "ratings-v1;default;ratings;v1;Kubernetes"}
        });
        Bookinfo::start_with(
            upstream,
            |c| Sidecar {
                protocol: Protocol::Tcp,
                endpoint_metadata: Some(workload),
                ..c.config(config)
            },
            |s| Sidecar {
                protocol: Protocol::Tcp,
                ..s.config(config)
            },
        )
    }
}

/// The peer labels each side of [`Bookinfo::start_tcp`] knows, under Mixer's TCP label names:
/// the client knows its upstream from the endpoint's `istio.workload` (no app/version labels
/// there); in plaintext the server knows nothing of its caller. `destination_service` is as
/// the config computes it.
pub fn plaintext_tcp_labels(
    reporter: &str,
    destination_service: &str,
) -> std::collections::BTreeMap<String, String> {
    let source = reporter == "source";
    let (src, src_ns, src_app, src_version) = if source {
        ("productpage-v1", "default", "productpage", "v1")
    } else {
        ("unknown", "unknown", "unknown", "unknown")
    };
    let (dst_app, dst_version) = if source {
        ("unknown", "unknown")
    } else {
        ("ratings", "v1")
    };
    [
        ("reporter", reporter),
        ("source_app", src_app),
        ("source_principal", "unknown"),
        ("source_workload", src),
        ("source_workload_namespace", src_ns),
        ("source_version", src_version),
        ("destination_app", dst_app),
        ("destination_principal", "unknown"),
        ("destination_workload", "ratings-v1"),
        ("destination_workload_namespace", "default"),
        ("destination_version", dst_version),
        ("destination_service", destination_service),
        ("destination_service_name", "ratings"),
        ("destination_service_namespace", "default"),
        (
            "connection_security_policy",
            if source { "unknown" } else { "none" },
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}
