//! Istio's TCP metrics from real Envoy sidecars: a productpage-v1 client sidecar (OUTBOUND,
//! `tcp_proxy`) → a ratings-v1 server sidecar (INBOUND, `tcp_proxy`) → a TCP echo server, in
//! plaintext and with mTLS between the sidecars (SPIFFE certificates made at run time), where
//! they exchange metadata as Istio's do (ALPN `istio-peer-exchange`, docs/tcp.md). Every
//! assertion is on an exact label set and value scraped from `/stats/prometheus`.

use meshstats_cli::render::envoy::Protocol;
use meshstats_filter::peer::frame::{encode_frame, FRAME_MAGIC, MAX_FRAME_BODY};
use meshstats_filter::peer::PeerNode;
use meshstats_integration::mesh::{Bookinfo, Sidecar};
use meshstats_integration::pki::{bookinfo_pki, Pki, PRODUCTPAGE_ID, RATINGS_ID};
use meshstats_integration::tcp_echo::TcpEcho;
use meshstats_integration::{Envoy, Scrape};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

type Labels = BTreeMap<String, String>;

const OPENED: &str = "istio_tcp_connections_opened_total";
const CLOSED: &str = "istio_tcp_connections_closed_total";
const SENT: &str = "istio_tcp_sent_bytes_total";
const RECEIVED: &str = "istio_tcp_received_bytes_total";

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// How the two sidecars are linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Plain,
    /// mTLS, both sidecars exchanging metadata (what the renderer does with mTLS).
    Mtls,
    /// mTLS, but the client does not speak the exchange (`tcp_metadata_exchange: false`).
    MtlsWithoutExchange,
}

/// What the client sidecar reports: the peer from the server's exchange frame with
/// [`Link::Mtls`], else from the endpoint's `istio.workload` metadata.
fn client_labels(link: Link) -> Labels {
    let (src, dst) = match link {
        Link::Plain => ("unknown", "unknown"),
        _ => (PRODUCTPAGE_ID, RATINGS_ID),
    };
    // The endpoint metadata has no app/version labels; the exchanged metadata has.
    let (app, version) = match link {
        Link::Mtls => ("ratings", "v1"),
        _ => ("unknown", "unknown"),
    };
    labels(&[
        ("reporter", "source"),
        ("source_workload", "productpage-v1"),
        ("source_workload_namespace", "default"),
        ("source_principal", src),
        ("source_app", "productpage"),
        ("source_version", "v1"),
        ("source_canonical_service", "productpage"),
        ("source_canonical_revision", "v1"),
        ("source_cluster", "Kubernetes"),
        ("destination_workload", "ratings-v1"),
        ("destination_workload_namespace", "default"),
        ("destination_principal", dst),
        ("destination_app", app),
        ("destination_version", version),
        ("destination_service", "ratings.default.svc.cluster.local"),
        ("destination_service_name", "ratings"),
        ("destination_service_namespace", "default"),
        ("destination_canonical_service", "ratings"),
        ("destination_canonical_revision", "v1"),
        ("destination_cluster", "Kubernetes"),
        ("request_protocol", "tcp"),
        ("response_flags", "-"),
        ("connection_security_policy", "unknown"),
    ])
}

/// What the server sidecar reports: with [`Link::Mtls`] the client's workload from its
/// exchange frame; without the exchange the source is known only by its certificate
/// (principal, and the namespace in its SPIFFE id), and not at all in plaintext.
fn server_labels(link: Link) -> Labels {
    let (src, dst, policy) = match link {
        Link::Plain => ("unknown", "unknown", "none"),
        _ => (PRODUCTPAGE_ID, RATINGS_ID, "mutual_tls"),
    };
    let source: [(&str, &str); 7] = match link {
        Link::Mtls => [
            ("source_workload", "productpage-v1"),
            ("source_workload_namespace", "default"),
            ("source_app", "productpage"),
            ("source_version", "v1"),
            ("source_canonical_service", "productpage"),
            ("source_canonical_revision", "v1"),
            ("source_cluster", "Kubernetes"),
        ],
        _ => [
            ("source_workload", "unknown"),
            (
                "source_workload_namespace",
                if link == Link::Plain {
                    "unknown"
                } else {
                    "default"
                },
            ),
            ("source_app", "unknown"),
            ("source_version", "unknown"),
            ("source_canonical_service", "unknown"),
            ("source_canonical_revision", "latest"),
            ("source_cluster", "unknown"),
        ],
    };
    let mut out = labels(&source);
    out.extend(labels(&[
        ("reporter", "destination"),
        ("source_principal", src),
        ("destination_workload", "ratings-v1"),
        ("destination_workload_namespace", "default"),
        ("destination_principal", dst),
        ("destination_app", "ratings"),
        ("destination_version", "v1"),
        ("destination_service", "ratings.default.svc.cluster.local"),
        ("destination_service_name", "ratings"),
        ("destination_service_namespace", "default"),
        ("destination_canonical_service", "ratings"),
        ("destination_canonical_revision", "v1"),
        ("destination_cluster", "Kubernetes"),
        ("request_protocol", "tcp"),
        ("response_flags", "-"),
        ("connection_security_policy", policy),
    ]));
    out
}

fn scratch(test: &str) -> PathBuf {
    std::env::temp_dir().join(format!("meshstats-tcp-{}-{test}", std::process::id()))
}

/// Two TCP sidecars in front of `echo`; mTLS between them when `pki` is given.
fn start(echo: &TcpEcho, config: &str, pki: Option<&Pki>) -> Bookinfo {
    start_with_client(echo, config, config, pki)
}

fn start_with_client(
    echo: &TcpEcho,
    client_config: &str,
    config: &str,
    pki: Option<&Pki>,
) -> Bookinfo {
    let workload = json!({"istio": {"workload": "ratings-v1;default;ratings;v1;Kubernetes"}});
    Bookinfo::start_with(
        echo.addr(),
        |c| Sidecar {
            protocol: Protocol::Tcp,
            endpoint_metadata: Some(workload),
            upstream_tls: pki.map(|p| p.client.clone()),
            ..c.config(client_config)
        },
        |s| Sidecar {
            protocol: Protocol::Tcp,
            downstream_tls: pki.map(|p| p.server.clone()),
            ..s.config(config)
        },
    )
    .unwrap()
}

/// Sends `n` bytes on `conn` and reads the echo back.
fn round_trip(conn: &mut TcpStream, n: usize, fill: u8) {
    let payload = vec![fill; n];
    conn.write_all(&payload).unwrap();
    let mut back = vec![0u8; n];
    conn.read_exact(&mut back).unwrap();
    assert_eq!(back, payload);
}

fn connect(entry: SocketAddr) -> TcpStream {
    let conn = TcpStream::connect(entry).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn
}

/// Waits until each metric has exactly one series with the expected value, and returns the
/// labels of each (all must be equal: one label set per side).
fn wait_exact(envoy: &Envoy, expected: &[(&str, f64)]) -> Labels {
    let found = envoy.wait_for(Duration::from_secs(15), |s| {
        let mut labels = None;
        for (metric, n) in expected {
            let series = s.series(metric);
            if series.len() != 1 || series[0].value != *n {
                return None;
            }
            labels = Some(series[0].labels.clone());
        }
        labels
    });
    found.unwrap_or_else(|e| {
        let scrape = envoy.prometheus().ok();
        panic!(
            "{}: {e}; tcp series: {:?}",
            envoy.name(),
            scrape.as_ref().map(describe)
        )
    })
}

fn describe(s: &Scrape) -> Vec<String> {
    [OPENED, CLOSED, SENT, RECEIVED]
        .iter()
        .flat_map(|m| {
            s.series(m)
                .into_iter()
                .map(move |x| format!("{m}{:?} = {}", x.labels, x.value))
        })
        .collect()
}

fn same_labels(envoy: &Envoy, want: &Labels) {
    let s = envoy.prometheus().unwrap();
    for metric in [OPENED, CLOSED, SENT, RECEIVED] {
        let series = s.series(metric);
        assert_eq!(
            series.len(),
            1,
            "{} {metric}: {:?}",
            envoy.name(),
            describe(&s)
        );
        assert_eq!(&series[0].labels, want, "{} {metric}", envoy.name());
    }
}

fn ten_connections(link: Link) {
    let echo = TcpEcho::start().unwrap();
    let dir = scratch(&format!("{link:?}"));
    let pki = (link != Link::Plain).then(|| bookinfo_pki(&dir).unwrap());
    let client_config = match link {
        Link::MtlsWithoutExchange => r#"{"tcp_metadata_exchange": false}"#,
        _ => "{}",
    };
    let mesh = start_with_client(&echo, client_config, "{}", pki.as_ref());
    const N: usize = 10;
    const BYTES: usize = 1234;
    for i in 0..N {
        let mut conn = connect(mesh.entry);
        round_trip(&mut conn, BYTES, b'a' + i as u8);
        drop(conn);
    }
    // The exchange frames are not the app's bytes: not counted (as Istio's filter, which
    // removes them before its stats filter sees them).
    let total = (N * BYTES) as f64;
    let expected = [
        (OPENED, N as f64),
        (CLOSED, N as f64),
        (SENT, total),
        (RECEIVED, total),
    ];
    let client = wait_exact(&mesh.client, &expected);
    assert_eq!(client, client_labels(link));
    same_labels(&mesh.client, &client);
    let server = wait_exact(&mesh.server, &expected);
    assert_eq!(server, server_labels(link));
    same_labels(&mesh.server, &server);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn plain_tcp_connections_are_counted_on_both_sides() {
    ten_connections(Link::Plain);
}

#[test]
fn mtls_sidecars_exchange_metadata_and_carry_spiffe_principals() {
    ten_connections(Link::Mtls);
}

#[test]
fn a_client_without_the_exchange_still_works_with_an_unknown_source() {
    ten_connections(Link::MtlsWithoutExchange);
}

/// A client that writes frames itself, through a bare Envoy presenting productpage's
/// certificate: a forged frame (a namespace its certificate contradicts) and an oversized
/// one are taken off the stream and not believed; the app gets the bytes after them.
#[test]
fn forged_and_oversized_frames_are_refused_and_traffic_flows() {
    let echo = TcpEcho::start().unwrap();
    let dir = scratch("forged");
    let pki = bookinfo_pki(&dir).unwrap();
    let mesh = Bookinfo::start_with(
        echo.addr(),
        |c| Sidecar {
            protocol: Protocol::Tcp,
            with_filter: false,
            upstream_tls: Some(pki.client.clone()),
            ..c
        },
        |s| Sidecar {
            protocol: Protocol::Tcp,
            downstream_tls: Some(pki.server.clone()),
            ..s
        },
    )
    .unwrap();
    let liar = PeerNode {
        namespace: "kube-system".into(),
        workload_name: "admin".into(),
        ..PeerNode::default()
    };
    let forged = encode_frame(&liar, "liar");
    let mut oversized = FRAME_MAGIC.to_be_bytes().to_vec();
    oversized.extend_from_slice(&((MAX_FRAME_BODY + 100) as u32).to_be_bytes());
    oversized.extend(vec![0u8; MAX_FRAME_BODY + 100]);
    for frame in [forged, oversized] {
        let mut conn = connect(mesh.entry);
        conn.write_all(&frame).unwrap();
        // The echo sends back what reached the app: nothing of the frame, and no frame of
        // the server's (a caller not believed learns nothing).
        round_trip(&mut conn, 500, b'z');
        drop(conn);
    }
    let want = server_labels(Link::MtlsWithoutExchange);
    let got = wait_exact(
        &mesh.server,
        &[
            (OPENED, 2.0),
            (CLOSED, 2.0),
            (SENT, 1000.0),
            (RECEIVED, 1000.0),
        ],
    );
    assert_eq!(got, want);
    let rejected = mesh
        .server
        .prometheus()
        .unwrap()
        .series("meshstats_peer_metadata_rejected_total");
    assert_eq!(
        rejected.iter().map(|s| s.value).collect::<Vec<_>>(),
        vec![2.0]
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// With `tcp_reporting_duration: 0.2s` an open connection's bytes show while it is open, and
/// settle at the exact totals after it closes, counted opened and closed once.
#[test]
fn long_lived_connection_reports_progress() {
    let echo = TcpEcho::start().unwrap();
    let mesh = start(&echo, r#"{"tcp_reporting_duration": "0.2s"}"#, None);
    let mut conn = connect(mesh.entry);
    round_trip(&mut conn, 100, b'x');
    for envoy in [&mesh.client, &mesh.server] {
        wait_exact(envoy, &[(OPENED, 1.0), (SENT, 100.0), (RECEIVED, 100.0)]);
        // Defined with the connection's first report, so present, but at 0 while open.
        let closed = envoy.prometheus().unwrap().series(CLOSED);
        assert!(
            closed.iter().all(|s| s.value == 0.0),
            "still open: {:?}",
            closed.iter().map(|s| s.value).collect::<Vec<_>>()
        );
    }
    round_trip(&mut conn, 250, b'y');
    for envoy in [&mesh.client, &mesh.server] {
        wait_exact(envoy, &[(OPENED, 1.0), (SENT, 350.0), (RECEIVED, 350.0)]);
    }
    drop(conn);
    for envoy in [&mesh.client, &mesh.server] {
        wait_exact(
            envoy,
            &[
                (OPENED, 1.0),
                (CLOSED, 1.0),
                (SENT, 350.0),
                (RECEIVED, 350.0),
            ],
        );
    }
    let client = wait_exact(&mesh.client, &[(CLOSED, 1.0)]);
    assert_eq!(client, client_labels(Link::Plain));
}
