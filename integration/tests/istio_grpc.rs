//! gRPC through real Envoy sidecars: a tonic client → productpage-v1 client sidecar
//! (OUTBOUND) → ratings-v1 server sidecar (INBOUND) → a tonic server, both sidecars rendered
//! with `grpc: true` (Envoy's `grpc_stats` filter with `emit_filter_state` before the Wasm
//! filter, HTTP/2 clusters). Checks `request_protocol="grpc"`, `grpc_response_status` (from
//! trailers, and from the headers of a trailers-only error) and the message counters
//! `istio_request_messages_total` / `istio_response_messages_total`, including their progress
//! while a server stream is open. Every assertion is on an exact label set and value.
//!
//! The service is written by hand (no `protoc`): prost messages, tonic's generic client
//! (`tonic::client::Grpc`) and a `tower` service over `tonic::server::Grpc`.

use meshstats_integration::mesh::{bookinfo_peer_labels, server_service_labels, Bookinfo, Sidecar};
use meshstats_integration::{Envoy, Scrape};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::codegen::{http, Body, BoxFuture, Context, Poll, Service, StdError};

type Labels = BTreeMap<String, String>;

const REQUESTS: &str = "istio_requests_total";
const REQ_MSGS: &str = "istio_request_messages_total";
const RESP_MSGS: &str = "istio_response_messages_total";

#[derive(Clone, PartialEq, prost::Message)]
struct Ask {
    #[prost(string, tag = "1")]
    name: String,
    /// Server stream: how many replies.
    #[prost(uint32, tag = "2")]
    count: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Reply {
    #[prost(string, tag = "1")]
    text: String,
}

/// `test.Ratings/Get` (unary; name "deny" answers PERMISSION_DENIED) and
/// `test.Ratings/Watch` (server stream: `count` replies, 1 s apart, so that even a loaded
/// machine checks both sidecars while the stream is still open).
#[derive(Clone)]
struct RatingsServer;

impl tonic::server::NamedService for RatingsServer {
    const NAME: &'static str = "test.Ratings";
}

struct GetSvc;

impl tonic::server::UnaryService<Ask> for GetSvc {
    type Response = Reply;
    type Future = BoxFuture<tonic::Response<Reply>, tonic::Status>;
    fn call(&mut self, request: tonic::Request<Ask>) -> Self::Future {
        Box::pin(async move {
            let ask = request.into_inner();
            if ask.name == "deny" {
                return Err(tonic::Status::permission_denied("not for you"));
            }
            Ok(tonic::Response::new(Reply {
                text: format!("hello {}", ask.name),
            }))
        })
    }
}

struct WatchSvc;

type ReplyStream = tokio_stream::wrappers::ReceiverStream<Result<Reply, tonic::Status>>;

impl tonic::server::ServerStreamingService<Ask> for WatchSvc {
    type Response = Reply;
    type ResponseStream = ReplyStream;
    type Future = BoxFuture<tonic::Response<ReplyStream>, tonic::Status>;
    fn call(&mut self, request: tonic::Request<Ask>) -> Self::Future {
        Box::pin(async move {
            let count = request.into_inner().count.min(100);
            let (tx, rx) = tokio::sync::mpsc::channel(8);
            tokio::spawn(async move {
                for i in 0..count {
                    if i > 0 {
                        tokio::time::sleep(Duration::from_millis(1000)).await;
                    }
                    if tx
                        .send(Ok(Reply {
                            text: format!("update {i}"),
                        }))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
            Ok(tonic::Response::new(ReplyStream::new(rx)))
        })
    }
}

impl<B> Service<http::Request<B>> for RatingsServer
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::BoxBody>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        match req.uri().path() {
            "/test.Ratings/Get" => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(tonic::codec::ProstCodec::default());
                Ok(grpc.unary(GetSvc, req).await)
            }),
            "/test.Ratings/Watch" => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(tonic::codec::ProstCodec::default());
                Ok(grpc.server_streaming(WatchSvc, req).await)
            }),
            _ => Box::pin(
                async move { Ok(tonic::Status::unimplemented("no such method").into_http()) },
            ),
        }
    }
}

/// The tonic server on a free loopback port, served by `rt`.
fn start_server(rt: &tokio::runtime::Runtime) -> SocketAddr {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    rt.spawn(
        tonic::transport::Server::builder()
            .add_service(RatingsServer)
            .serve_with_incoming(incoming),
    );
    addr
}

fn grpc_sidecars(app: SocketAddr, config: &str) -> Bookinfo {
    Bookinfo::start_with(
        app,
        |c| Sidecar {
            grpc: true,
            ..c.config(config)
        },
        |s| Sidecar {
            grpc: true,
            ..s.config(config)
        },
    )
    .inspect(|mesh| AUTHORITY.with(|a| *a.borrow_mut() = mesh.entry.to_string()))
    .unwrap()
}

async fn client(entry: SocketAddr) -> tonic::client::Grpc<tonic::transport::Channel> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{entry}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    tonic::client::Grpc::new(channel)
}

async fn get(entry: SocketAddr, name: &str) -> Result<Reply, tonic::Status> {
    let mut c = client(entry).await;
    c.ready().await.unwrap();
    let ask = Ask {
        name: name.to_string(),
        count: 0,
    };
    let path = PathAndQuery::from_static("/test.Ratings/Get");
    c.unary(
        tonic::Request::new(ask),
        path,
        tonic::codec::ProstCodec::default(),
    )
    .await
    .map(|r| r.into_inner())
}

thread_local! {
    /// The authority the gRPC client sends (the client sidecar's listener), set once per test
    /// thread by [`grpc_sidecars`]: the native build's server names the service by it.
    static AUTHORITY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// [`bookinfo_peer_labels`], with the server's service named by the authority under the
/// native build (`mesh::server_service_labels`, docs/native.md).
fn peer_labels(reporter: &str) -> Labels {
    let mut labels = bookinfo_peer_labels(reporter);
    if reporter == "destination" {
        for (k, v) in AUTHORITY.with(|a| server_service_labels(&a.borrow())) {
            labels.insert(k.to_string(), v);
        }
    }
    labels
}

/// All 25 labels of `istio_requests_total` for a gRPC call answered with `grpc_status`.
fn request_labels(reporter: &str, grpc_status: &str) -> Labels {
    let mut labels = peer_labels(reporter);
    let policy = if reporter == "destination" {
        "none"
    } else {
        "unknown"
    };
    for (k, v) in [
        ("request_protocol", "grpc"),
        ("response_flags", "-"),
        ("connection_security_policy", policy),
        ("response_code", "200"),
        ("grpc_response_status", grpc_status),
    ] {
        labels.insert(k.to_string(), v.to_string());
    }
    labels
}

fn describe(s: &Scrape) -> Vec<String> {
    [REQUESTS, REQ_MSGS, RESP_MSGS]
        .iter()
        .flat_map(|m| {
            s.series(m)
                .into_iter()
                .map(move |x| format!("{m}{:?} = {}", x.labels, x.value))
        })
        .collect()
}

/// Waits until every `(metric, labels, value)` is present exactly (and is the metric's only
/// series with those labels); panics with what is there otherwise.
///
/// The native build has no message counts: Envoy 1.40's `http_get_filter_state_bytes` does not
/// return the `grpc_stats` filter state object (measured here, docs/native.md), so under it the
/// message metrics must have no series at all and the rest is checked as for Wasm.
fn wait_exact(envoy: &Envoy, expected: &[(&str, &Labels, f64)]) {
    let native = meshstats_integration::build() == meshstats_integration::Build::Native;
    let found = envoy.wait_for(Duration::from_secs(10), |s| {
        let no_messages = s.series(REQ_MSGS).is_empty() && s.series(RESP_MSGS).is_empty();
        (!native || no_messages).then_some(()).and_then(|()| {
            expected
                .iter()
                .filter(|(m, _, _)| !native || (*m != REQ_MSGS && *m != RESP_MSGS))
                .all(|(metric, labels, n)| {
                    s.series(metric)
                        .iter()
                        .any(|x| &x.labels == *labels && x.value == *n)
                })
                .then_some(())
        })
    });
    if let Err(e) = found {
        panic!(
            "{}: {e}; wanted {expected:?}; present: {:#?}",
            envoy.name(),
            envoy.prometheus().as_ref().map(describe)
        );
    }
}

/// How many series each message metric has once calls ended: one, or none under the native
/// build ([`wait_exact`]).
fn message_series() -> (usize, usize) {
    match meshstats_integration::build() {
        meshstats_integration::Build::Wasm => (1, 1),
        meshstats_integration::Build::Native => (0, 0),
    }
}

fn values(envoy: &Envoy, metric: &str) -> Vec<f64> {
    envoy
        .prometheus()
        .map(|s| s.series(metric).iter().map(|x| x.value).collect())
        .unwrap_or_default()
}

#[test]
fn unary_calls_report_protocol_status_and_messages_on_both_sides() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = start_server(&rt);
    let mesh = grpc_sidecars(app, "{}");
    let reply = rt.block_on(get(mesh.entry, "meshstats")).unwrap();
    assert_eq!(reply.text, "hello meshstats");
    for (envoy, reporter) in [(&mesh.client, "source"), (&mesh.server, "destination")] {
        let peer = peer_labels(reporter);
        wait_exact(
            envoy,
            &[
                (REQUESTS, &request_labels(reporter, "0"), 1.0),
                (REQ_MSGS, &peer, 1.0),
                (RESP_MSGS, &peer, 1.0),
            ],
        );
    }
    // PERMISSION_DENIED: a trailers-only response (grpc-status in the headers), HTTP 200.
    let denied = rt.block_on(get(mesh.entry, "deny")).unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    for (envoy, reporter) in [(&mesh.client, "source"), (&mesh.server, "destination")] {
        let peer = peer_labels(reporter);
        wait_exact(
            envoy,
            &[
                (REQUESTS, &request_labels(reporter, "0"), 1.0),
                (REQUESTS, &request_labels(reporter, "7"), 1.0),
                // One more request message, no response message.
                (REQ_MSGS, &peer, 2.0),
                (RESP_MSGS, &peer, 1.0),
            ],
        );
        let s = envoy.prometheus().unwrap();
        assert_eq!(
            s.series(REQUESTS).len(),
            2,
            "{}: {:?}",
            envoy.name(),
            describe(&s)
        );
        assert_eq!(
            (s.series(REQ_MSGS).len(), s.series(RESP_MSGS).len()),
            message_series(),
            "{}: {:?}",
            envoy.name(),
            describe(&s)
        );
    }
}

#[test]
fn server_stream_messages_move_while_open_and_settle_at_exact_totals() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = start_server(&rt);
    let mesh = grpc_sidecars(app, r#"{"tcp_reporting_duration": "0.1s"}"#);
    let mut stream: tonic::Streaming<Reply> = rt.block_on(async {
        let mut c = client(mesh.entry).await;
        c.ready().await.unwrap();
        let ask = Ask {
            name: "watch".into(),
            count: 5,
        };
        let path = PathAndQuery::from_static("/test.Ratings/Watch");
        let codec = tonic::codec::ProstCodec::<Ask, Reply>::default();
        c.server_streaming(tonic::Request::new(ask), path, codec)
            .await
            .unwrap()
            .into_inner()
    });
    let first = rt.block_on(stream.message()).unwrap().unwrap();
    assert_eq!(first.text, "update 0");
    // While the stream is open (the last reply comes 4 s after the first), the tick's
    // reports show progress on both sides, and no stream has ended yet. The native build has
    // no message counts ([`wait_exact`]) and no worker timer in Envoy 1.40's HTTP ABI
    // (docs/native.md): nothing while open.
    if meshstats_integration::build() == meshstats_integration::Build::Native {
        std::thread::sleep(Duration::from_millis(500));
        for envoy in [&mesh.client, &mesh.server] {
            assert_eq!(
                (values(envoy, RESP_MSGS), values(envoy, REQUESTS)),
                (Vec::new(), Vec::new()),
                "{}: native reports at stream end only",
                envoy.name()
            );
        }
    }
    for envoy in [&mesh.client, &mesh.server]
        .into_iter()
        .filter(|_| meshstats_integration::build() == meshstats_integration::Build::Wasm)
    {
        let open = envoy.wait_for(Duration::from_secs(1), |s| {
            let v: f64 = s.series(RESP_MSGS).iter().map(|x| x.value).sum();
            (v > 0.0).then_some(v)
        });
        let open = open.unwrap_or_else(|e| {
            panic!(
                "{}: {e}; no progress while open: {:?}",
                envoy.name(),
                values(envoy, RESP_MSGS)
            )
        });
        assert!(
            open < 5.0,
            "{}: {open} response messages before the stream ended",
            envoy.name()
        );
        assert!(
            values(envoy, REQUESTS).is_empty(),
            "{}: the stream has not ended",
            envoy.name()
        );
    }
    let mut rest = Vec::new();
    while let Some(reply) = rt.block_on(stream.message()).unwrap() {
        rest.push(reply.text);
    }
    assert_eq!(rest, ["update 1", "update 2", "update 3", "update 4"]);
    for (envoy, reporter) in [(&mesh.client, "source"), (&mesh.server, "destination")] {
        let peer = peer_labels(reporter);
        wait_exact(
            envoy,
            &[
                (REQUESTS, &request_labels(reporter, "0"), 1.0),
                (REQ_MSGS, &peer, 1.0),
                (RESP_MSGS, &peer, 5.0),
            ],
        );
        let s = envoy.prometheus().unwrap();
        assert_eq!(
            (s.series(REQ_MSGS).len(), s.series(RESP_MSGS).len()),
            message_series(),
            "{}: {:?}",
            envoy.name(),
            describe(&s)
        );
    }
}
