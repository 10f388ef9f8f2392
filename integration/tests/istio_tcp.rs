//! Istio's TCP metrics from real Envoy sidecars: a productpage-v1 client sidecar (OUTBOUND,
//! `tcp_proxy`) → a ratings-v1 server sidecar (INBOUND, `tcp_proxy`) → a TCP echo server, in
//! plaintext and with mTLS between the sidecars (SPIFFE certificates made at run time). Every
//! assertion is on an exact label set and value scraped from `/stats/prometheus`.

use meshstats_cli::render::envoy::Protocol;
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

/// What the client sidecar reports: the peer from the endpoint's `istio.workload` metadata.
fn client_labels(mtls: bool) -> Labels {
    let (src, dst) = if mtls {
        (PRODUCTPAGE_ID, RATINGS_ID)
    } else {
        ("unknown", "unknown")
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
        // The endpoint metadata has no app/version labels.
        ("destination_app", "unknown"),
        ("destination_version", "unknown"),
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

/// What the server sidecar reports: no metadata exchange on TCP, so the source is known only
/// by its certificate (principal, and the namespace in its SPIFFE id).
fn server_labels(mtls: bool) -> Labels {
    let (src, src_ns, dst, policy) = if mtls {
        (PRODUCTPAGE_ID, "default", RATINGS_ID, "mutual_tls")
    } else {
        ("unknown", "unknown", "unknown", "none")
    };
    labels(&[
        ("reporter", "destination"),
        ("source_workload", "unknown"),
        ("source_workload_namespace", src_ns),
        ("source_principal", src),
        ("source_app", "unknown"),
        ("source_version", "unknown"),
        ("source_canonical_service", "unknown"),
        ("source_canonical_revision", "latest"),
        ("source_cluster", "unknown"),
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
    ])
}

fn scratch(test: &str) -> PathBuf {
    std::env::temp_dir().join(format!("meshstats-tcp-{}-{test}", std::process::id()))
}

/// Two TCP sidecars in front of `echo`; mTLS between them when `pki` is given.
fn start(echo: &TcpEcho, config: &str, pki: Option<&Pki>) -> Bookinfo {
    let workload = json!({"istio": {"workload": "ratings-v1;default;ratings;v1;Kubernetes"}});
    Bookinfo::start_with(
        echo.addr(),
        |c| Sidecar {
            protocol: Protocol::Tcp,
            endpoint_metadata: Some(workload),
            upstream_tls: pki.map(|p| p.client.clone()),
            ..c.config(config)
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

fn ten_connections(mtls: bool) {
    let echo = TcpEcho::start().unwrap();
    let dir = scratch(if mtls { "mtls" } else { "plain" });
    let pki = mtls.then(|| bookinfo_pki(&dir).unwrap());
    let mesh = start(&echo, "{}", pki.as_ref());
    const N: usize = 10;
    const BYTES: usize = 1234;
    for i in 0..N {
        let mut conn = connect(mesh.entry);
        round_trip(&mut conn, BYTES, b'a' + i as u8);
        drop(conn);
    }
    let total = (N * BYTES) as f64;
    let expected = [
        (OPENED, N as f64),
        (CLOSED, N as f64),
        (SENT, total),
        (RECEIVED, total),
    ];
    let client = wait_exact(&mesh.client, &expected);
    assert_eq!(client, client_labels(mtls));
    same_labels(&mesh.client, &client);
    let server = wait_exact(&mesh.server, &expected);
    assert_eq!(server, server_labels(mtls));
    same_labels(&mesh.server, &server);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn plain_tcp_connections_are_counted_on_both_sides() {
    ten_connections(false);
}

#[test]
fn mtls_connections_carry_spiffe_principals() {
    ten_connections(true);
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
    assert_eq!(client, client_labels(false));
}
