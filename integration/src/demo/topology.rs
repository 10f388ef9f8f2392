//! The demo mesh: bookinfo's workloads, each behind Istio-shaped sidecars, and the edges
//! between them. [`EDGES`] is what the mesh is built from and what its test compares the
//! graph Prometheus shows against.
//!
//! ```text
//! client → istio-ingressgateway ─http→ productpage-v1 ─grpc→ details-v1
//!                                                    ─http→ reviews-v1
//!                                                    ─http→ reviews-v2 ─http→ ratings-v1 ─tcp (mTLS)→ mongodb-v1
//!                                                    ─http→ reviews-v3 ─http→ ratings-v1
//! ```
//!
//! Every workload has an inbound sidecar (reporter `destination`) in front of its app, and
//! one outbound sidecar (reporter `source`) per service it calls, as Istio has one outbound
//! listener per service; the gateway has the outbound side only. productpage's reviews
//! sidecar balances over the three reviews workloads, as one Kubernetes service does.

use crate::demo::backends::{self, App, RatingsCallers, TcpStore};
use crate::demo::graph::Node;
use crate::demo::grpc::{DetailsClient, DetailsServer};
use crate::envoy::Envoy;
use crate::mesh::{local, service_metadata, workload_metadata, Sidecar};
use crate::paths::{free_port, scratch_dir};
use crate::pki::workload_pki;
use meshstats_cli::render::envoy::Protocol;
use meshstats_cli::Direction;
use serde_json::{json, Value};
use std::net::SocketAddr;

/// bookinfo's namespace, the one the graph is drawn for (as Kiali is asked for one).
pub const NAMESPACE: &str = "default";

/// One workload (a Kubernetes Deployment), with the labels Istio reports it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Workload {
    pub name: &'static str,
    pub namespace: &'static str,
    /// `app` and `service.istio.io/canonical-name`.
    pub app: &'static str,
    /// `version` and `service.istio.io/canonical-revision`.
    pub version: &'static str,
}

const fn bookinfo(name: &'static str, app: &'static str, version: &'static str) -> Workload {
    Workload {
        name,
        namespace: NAMESPACE,
        app,
        version,
    }
}

/// Istio's ingress gateway: in `istio-system`, no `version` label (canonical revision
/// `latest`, as Istio defaults it).
pub const GATEWAY: Workload = Workload {
    name: "istio-ingressgateway",
    namespace: "istio-system",
    app: "istio-ingressgateway",
    version: "latest",
};
pub const PRODUCTPAGE: Workload = bookinfo("productpage-v1", "productpage", "v1");
pub const DETAILS: Workload = bookinfo("details-v1", "details", "v1");
pub const REVIEWS_V1: Workload = bookinfo("reviews-v1", "reviews", "v1");
pub const REVIEWS_V2: Workload = bookinfo("reviews-v2", "reviews", "v2");
pub const REVIEWS_V3: Workload = bookinfo("reviews-v3", "reviews", "v3");
pub const RATINGS: Workload = bookinfo("ratings-v1", "ratings", "v1");
pub const MONGODB: Workload = bookinfo("mongodb-v1", "mongodb", "v1");

/// Every workload, the gateway first.
pub const WORKLOADS: [Workload; 8] = [
    GATEWAY,
    PRODUCTPAGE,
    DETAILS,
    REVIEWS_V1,
    REVIEWS_V2,
    REVIEWS_V3,
    RATINGS,
    MONGODB,
];

/// One caller → callee pair with the protocol Istio reports for it (`request_protocol`;
/// `tcp` for the `istio_tcp_*` edge, as Kiali labels it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    pub source: Workload,
    pub destination: Workload,
    pub protocol: &'static str,
}

const fn edge(source: Workload, destination: Workload, protocol: &'static str) -> Edge {
    Edge {
        source,
        destination,
        protocol,
    }
}

/// The mesh's edges: what the demo starts, and all the graph may show.
pub const EDGES: [Edge; 8] = [
    edge(GATEWAY, PRODUCTPAGE, "http"),
    edge(PRODUCTPAGE, DETAILS, "grpc"),
    edge(PRODUCTPAGE, REVIEWS_V1, "http"),
    edge(PRODUCTPAGE, REVIEWS_V2, "http"),
    edge(PRODUCTPAGE, REVIEWS_V3, "http"),
    edge(REVIEWS_V2, RATINGS, "http"),
    edge(REVIEWS_V3, RATINGS, "http"),
    edge(RATINGS, MONGODB, "tcp"),
];

/// The graph node a workload is.
pub fn node(w: &Workload) -> Node {
    Node::Workload {
        namespace: w.namespace.to_string(),
        name: w.name.to_string(),
        app: w.app.to_string(),
        version: w.version.to_string(),
    }
}

/// The Kubernetes service (`host`) of a workload's app.
pub fn service_host(w: &Workload) -> String {
    format!("{}.{}.svc.cluster.local", w.app, w.namespace)
}

/// Istio's node metadata for `w`: the harness's `workload_metadata`, in `w`'s namespace; the
/// gateway carries the `istio: ingressgateway` label and no `version`.
pub fn node_metadata(w: &Workload) -> Value {
    let mut md = workload_metadata(w.app, w.version);
    md["NAMESPACE"] = json!(w.namespace);
    if *w == GATEWAY {
        md["NAME"] = json!("istio-ingressgateway-0");
        md["WORKLOAD_NAME"] = json!(w.name);
        md["LABELS"] = json!({
            "app": w.app,
            "istio": "ingressgateway",
            "service.istio.io/canonical-name": w.app,
            "service.istio.io/canonical-revision": w.version,
        });
    }
    md
}

/// Every sidecar's filter configuration: Istio's JSON access log on stdout, and TCP
/// counters reported every second (Istio's default is 15 s) so short runs see bytes move.
pub const FILTER_CONFIG: &str =
    r#"{"logs": [{"name": "istio", "preset": "istio"}], "tcp_reporting_duration": "1s"}"#;

/// One running Envoy of the mesh.
pub struct Proxy {
    /// Its Prometheus job: the workload, then `-inbound` or `-to-<service>`.
    pub job: String,
    pub workload: Workload,
    pub direction: Direction,
    pub listen: SocketAddr,
    pub envoy: Envoy,
}

/// The running mesh. Dropping it stops every Envoy and app.
pub struct Mesh {
    /// Where clients send `GET /productpage`: the gateway's listener.
    pub entry: SocketAddr,
    pub proxies: Vec<Proxy>,
    /// ratings-v1's app, which counts the requests it got.
    pub ratings: App,
    /// What ratings-v1 answered each caller (the error pattern's basis).
    pub ratings_callers: RatingsCallers,
    // Held so that they run as long as the mesh.
    _apps: Vec<App>,
    _details: DetailsServer,
    _store: TcpStore,
}

/// A sidecar not yet started, with the ports it will use.
struct Planned {
    job: String,
    workload: Workload,
    sidecar: Sidecar,
    listen: SocketAddr,
    admin: SocketAddr,
    /// More endpoints of the cluster (a service of several workloads).
    more_upstreams: Vec<SocketAddr>,
}

fn plan(job: String, workload: Workload, sidecar: Sidecar) -> Planned {
    Planned {
        job,
        workload,
        sidecar,
        listen: local(free_port()),
        admin: local(free_port()),
        more_upstreams: Vec::new(),
    }
}

/// An inbound sidecar of `w` in front of its app at `app`.
fn inbound(w: Workload, app: SocketAddr) -> Planned {
    let sidecar = Sidecar {
        cluster_metadata: Some(service_metadata(&service_host(&w))),
        ..Sidecar::new(
            &format!("{}-inbound", w.name),
            Direction::Inbound,
            app,
            node_metadata(&w),
        )
        .config(FILTER_CONFIG)
    };
    plan(format!("{}-inbound", w.name), w, sidecar)
}

/// An outbound sidecar of `w` for the service of `to`, pointing at `upstream`.
fn outbound(w: Workload, to: Workload, upstream: SocketAddr) -> Planned {
    let name = format!("{}-to-{}", w.name, to.app);
    let sidecar = Sidecar {
        cluster_metadata: Some(service_metadata(&service_host(&to))),
        ..Sidecar::new(&name, Direction::Outbound, upstream, node_metadata(&w))
            .config(FILTER_CONFIG)
    };
    plan(name, w, sidecar)
}

impl Mesh {
    /// Starts the apps, then the Envoys (each knows its peers' ports already).
    pub fn start() -> Result<Mesh, String> {
        let pki = workload_pki(
            &scratch_dir("demo-pki"),
            (
                "ratings",
                "spiffe://cluster.local/ns/default/sa/bookinfo-ratings",
            ),
            (
                "mongodb",
                "spiffe://cluster.local/ns/default/sa/bookinfo-mongodb",
            ),
        )?;
        let store = TcpStore::start()?;
        let details = DetailsServer::start()?;

        // Inbound sidecars first: their listeners are the outbound sidecars' upstreams.
        let mut mongodb_in = inbound(MONGODB, store.addr());
        mongodb_in.sidecar.protocol = Protocol::Tcp;
        mongodb_in.sidecar.downstream_tls = Some(pki.server.clone());
        let mut ratings_to_mongodb = outbound(RATINGS, MONGODB, mongodb_in.listen);
        ratings_to_mongodb.sidecar.protocol = Protocol::Tcp;
        ratings_to_mongodb.sidecar.upstream_tls = Some(pki.client.clone());

        let ratings_callers = RatingsCallers::default();
        let ratings = App::start(
            "ratings",
            backends::ratings(ratings_to_mongodb.listen, ratings_callers.clone()),
        )?;
        let ratings_in = inbound(RATINGS, ratings.addr());
        let mut apps = Vec::new();
        let mut planned = vec![mongodb_in, ratings_to_mongodb];
        let mut reviews_in = Vec::new();
        for (w, calls_ratings) in [(REVIEWS_V1, false), (REVIEWS_V2, true), (REVIEWS_V3, true)] {
            let to_ratings = calls_ratings.then(|| outbound(w, RATINGS, ratings_in.listen));
            let app = App::start(
                w.name,
                backends::reviews(w.version, to_ratings.as_ref().map(|p| p.listen)),
            )?;
            reviews_in.push(inbound(w, app.addr()));
            apps.push(app);
            planned.extend(to_ratings);
        }
        planned.push(ratings_in);

        let mut details_in = inbound(DETAILS, details.addr());
        details_in.sidecar.grpc = true;
        let mut to_details = outbound(PRODUCTPAGE, DETAILS, details_in.listen);
        to_details.sidecar.grpc = true;
        let mut to_reviews = outbound(PRODUCTPAGE, REVIEWS_V1, reviews_in[0].listen);
        to_reviews.more_upstreams = reviews_in[1..].iter().map(|p| p.listen).collect();
        let client = DetailsClient::new(to_details.listen, "details:9080")?;
        let productpage = App::start(
            "productpage",
            backends::productpage(client, to_reviews.listen),
        )?;
        let productpage_in = inbound(PRODUCTPAGE, productpage.addr());
        apps.push(productpage);
        let gateway = outbound(GATEWAY, PRODUCTPAGE, productpage_in.listen);
        let entry = gateway.listen;
        planned.extend(reviews_in);
        planned.extend([details_in, to_details, to_reviews, productpage_in, gateway]);

        let proxies = start_all(planned)?;
        Ok(Mesh {
            entry,
            proxies,
            ratings,
            ratings_callers,
            _apps: apps,
            _details: details,
            _store: store,
        })
    }

    /// `(job, admin address)` of every Envoy, for Prometheus.
    pub fn targets(&self) -> Vec<(&str, SocketAddr)> {
        self.proxies
            .iter()
            .map(|p| (p.job.as_str(), p.envoy.admin()))
            .collect()
    }

    pub fn proxy(&self, job: &str) -> Option<&Proxy> {
        self.proxies.iter().find(|p| p.job == job)
    }
}

/// How many Envoys start at once: start-up is mostly compiling the Wasm module, and more
/// than this on 2 busy cores leaves admin pages unanswered past the harness's ready timeout.
const STARTING_AT_ONCE: usize = 3;

/// Starts the planned sidecars, [`STARTING_AT_ONCE`] at a time (the order does not matter:
/// every port is known, and Envoy connects upstream only when traffic comes).
fn start_all(planned: Vec<Planned>) -> Result<Vec<Proxy>, String> {
    let mut proxies = Vec::new();
    let mut planned = planned.into_iter().peekable();
    while planned.peek().is_some() {
        let batch: Vec<Planned> = planned.by_ref().take(STARTING_AT_ONCE).collect();
        let results: Vec<Result<Proxy, String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = batch
                .into_iter()
                .map(|p| scope.spawn(move || start_one(p)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("start thread panicked".into()))
                })
                .collect()
        });
        for r in results {
            proxies.push(r?);
        }
    }
    Ok(proxies)
}

fn start_one(p: Planned) -> Result<Proxy, String> {
    let mut bootstrap = p.sidecar.bootstrap(p.listen, p.admin);
    add_endpoints(&mut bootstrap, &p.more_upstreams)?;
    let envoy = p.sidecar.start_from(&bootstrap, p.admin)?;
    Ok(Proxy {
        job: p.job,
        workload: p.workload,
        direction: p.sidecar.direction,
        listen: p.listen,
        envoy,
    })
}

/// Appends `more` to the cluster's endpoints, copies of its first (metadata included).
fn add_endpoints(bootstrap: &mut Value, more: &[SocketAddr]) -> Result<(), String> {
    if more.is_empty() {
        return Ok(());
    }
    let endpoints = bootstrap
        .pointer_mut("/static_resources/clusters/0/load_assignment/endpoints/0/lb_endpoints")
        .and_then(Value::as_array_mut)
        .ok_or("bootstrap: no lb_endpoints in the first cluster")?;
    let first = endpoints.first().cloned().ok_or("bootstrap: no endpoint")?;
    for addr in more {
        let mut e = first.clone();
        e["endpoint"]["address"]["socket_address"]["port_value"] = json!(addr.port());
        endpoints.push(e);
    }
    Ok(())
}
