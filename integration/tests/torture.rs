//! Hostile and broken traffic through a client and a server sidecar (`Bookinfo`), all of it
//! at once on the same two Envoys: header values that are not UTF-8, headers just under and
//! far over Envoy's 60 KiB limit, an app that resets before and during its response, upstream
//! timeouts, clients that vanish while waiting and in the middle of their body, and an HTTP/2
//! flood of short streams, some reset by the client at once. Afterwards every request that
//! reached the HTTP filter chain is counted exactly once, by response code and flags, on
//! both sides; what Envoy rejected before the filter chain is counted by Envoy alone; and no
//! Wasm VM failed or was reloaded.
//!
//! Every load loop is bounded in count and each request by a timeout; the whole test takes a
//! few seconds.

use meshstats_integration::mesh::{bookinfo_peer_labels, Bookinfo, Sidecar};
use meshstats_integration::{Backend, Envoy, Requests, Scrape};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// The client sidecar's route timeout (a `VirtualService` `timeout` in Istio): requests the
/// app answers after 1 s time out; the slowest other answer, 500 ms, is abandoned at 100 ms.
const ROUTE_TIMEOUT: Duration = Duration::from_millis(400);

/// (response_code, response_flags, destination_workload) → count: what tells the scenarios
/// apart (`destination_workload` is `unknown` on the client side when no response brought
/// the server's peer metadata back).
type Outcomes = BTreeMap<(String, String, String), u64>;

fn outcomes(s: &Scrape) -> Outcomes {
    let mut out = Outcomes::new();
    for series in s.series("istio_requests_total") {
        let key = (
            series.label("response_code").to_string(),
            series.label("response_flags").to_string(),
            series.label("destination_workload").to_string(),
        );
        *out.entry(key).or_default() += series.value as u64;
    }
    out
}

fn connect(addr: SocketAddr) -> TcpStream {
    let conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    conn.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    conn
}

/// Sends `head` (the request line and headers, without the final CRLF) and returns the
/// status line of the answer, or the I/O error.
fn raw(addr: SocketAddr, head: &[u8]) -> String {
    let mut conn = connect(addr);
    let mut request = head.to_vec();
    request.extend_from_slice(b"connection: close\r\n\r\n");
    // Envoy answers an oversized head before reading all of it: a failed write is expected.
    let _ = conn.write_all(&request);
    let mut status = String::new();
    match BufReader::new(conn).read_line(&mut status) {
        Ok(_) => status.trim_end().to_string(),
        Err(e) => format!("error: {e}"),
    }
}

fn get_head(extra: &[u8]) -> Vec<u8> {
    let mut head = b"GET /ratings/7 HTTP/1.1\r\nhost: ratings:9080\r\n".to_vec();
    head.extend_from_slice(extra);
    head
}

fn header(name: &str, value_len: usize) -> Vec<u8> {
    let mut h = format!("{name}: ").into_bytes();
    h.resize(h.len() + value_len, b'a');
    h.extend_from_slice(b"\r\n");
    h
}

/// A request the client abandons: `body_sent` of a 10 000-byte body (`None`: a GET waiting
/// for a slow answer), then the connection closed.
fn vanish(addr: SocketAddr, body_sent: Option<usize>) {
    let mut conn = connect(addr);
    let request = match body_sent {
        Some(n) => {
            let mut r =
                b"POST /ratings/7 HTTP/1.1\r\nhost: ratings:9080\r\ncontent-length: 10000\r\n\r\n"
                    .to_vec();
            r.resize(r.len() + n, b'x');
            r
        }
        None => get_head(b"x-backend-delay-ms: 500\r\n\r\n"),
    };
    conn.write_all(&request).unwrap();
    // Long enough for the sidecars to forward what they got.
    std::thread::sleep(Duration::from_millis(250));
    drop(conn);
}

/// The status and the number of body bytes of a response whose body the app cuts off.
fn truncated(addr: SocketAddr) -> (String, usize) {
    let mut conn = connect(addr);
    conn.write_all(&get_head(b"x-backend-reset: mid-body\r\n\r\n"))
        .unwrap();
    let mut all = Vec::new();
    let _ = conn.read_to_end(&mut all);
    let text = String::from_utf8_lossy(&all);
    let status = text.lines().next().unwrap_or("").to_string();
    let body = text.split_once("\r\n\r\n").map_or(0, |(_, b)| b.len());
    (status, body)
}

/// What the HTTP/2 flood got back.
#[derive(Debug, Default, PartialEq, Eq)]
struct Flood {
    ok: u64,
    other: u64,
    errors: u64,
}

/// `streams` GETs on one h2c connection, `concurrency` at a time, then `resets` GETs of a slow
/// answer reset by the client right after their headers, and `mid_body_resets` POSTs reset
/// after part of their body.
fn h2_flood(
    addr: SocketAddr,
    streams: usize,
    concurrency: usize,
    resets: usize,
    mid_body_resets: usize,
) -> Flood {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (client, connection) = h2::client::handshake(tcp).await.unwrap();
        let driver = tokio::spawn(connection);
        let mut client = client.ready().await.unwrap();
        let request = |path: &str, delay: Option<&str>| {
            let mut b = http::Request::get(format!("http://ratings:9080{path}"));
            if let Some(ms) = delay {
                b = b.header("x-backend-delay-ms", ms);
            }
            b.body(()).unwrap()
        };
        let mut flood = Flood::default();
        let mut sent = 0;
        while sent < streams {
            let batch = concurrency.min(streams - sent);
            let mut pending = Vec::with_capacity(batch);
            for _ in 0..batch {
                client = client.ready().await.unwrap();
                let (response, _) = client
                    .send_request(request("/ratings/7", None), true)
                    .unwrap();
                pending.push(response);
            }
            sent += batch;
            for response in pending {
                let done = tokio::time::timeout(IO_TIMEOUT, async {
                    let response = response.await?;
                    let status = response.status();
                    let mut body = response.into_body();
                    while let Some(chunk) = body.data().await {
                        let chunk = chunk?;
                        let _ = body.flow_control().release_capacity(chunk.len());
                    }
                    Ok::<_, h2::Error>(status)
                })
                .await;
                match done {
                    Ok(Ok(s)) if s == 200 => flood.ok += 1,
                    Ok(Ok(_)) => flood.other += 1,
                    _ => flood.errors += 1,
                }
            }
        }
        for _ in 0..resets {
            client = client.ready().await.unwrap();
            let (_, mut stream) = client
                .send_request(request("/ratings/7", Some("1000")), true)
                .unwrap();
            stream.send_reset(h2::Reason::CANCEL);
        }
        for _ in 0..mid_body_resets {
            client = client.ready().await.unwrap();
            let post = http::Request::post("http://ratings:9080/ratings/7")
                .header("content-length", "10000")
                .body(())
                .unwrap();
            let (_, mut stream) = client.send_request(post, false).unwrap();
            let _ = stream.send_data(bytes_of(100), false);
            tokio::time::sleep(Duration::from_millis(50)).await;
            stream.send_reset(h2::Reason::CANCEL);
        }
        // Let the resets leave before the connection goes.
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(client);
        driver.abort();
        flood
    })
}

fn bytes_of(n: usize) -> bytes::Bytes {
    bytes::Bytes::from(vec![b'x'; n])
}

/// Envoy's own counter `name` (`/stats` text).
fn envoy_stat(envoy: &Envoy, name: &str) -> u64 {
    let text = envoy.stats_text().unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("envoy {}: no stat {name}", envoy.name()))
}

const VM_RELOAD_STATS: [&str; 3] = [
    "wasm.meshstats.vm_reload_success",
    "wasm.meshstats.vm_reload_backoff",
    "wasm.meshstats.vm_reload_failure",
];

fn wasm_stats(envoy: &Envoy) -> Vec<(String, u64)> {
    let text = envoy.stats_text().unwrap();
    text.lines()
        .filter(|l| l.starts_with("wasm."))
        .filter_map(|l| {
            let (k, v) = l.split_once(": ")?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

#[test]
fn hostile_traffic_is_counted_exactly_and_no_vm_fails() {
    let app = Backend::start();
    let mesh = Bookinfo::start_with(
        app.addr(),
        |c| Sidecar {
            route_timeout: Some(ROUTE_TIMEOUT),
            ..c
        },
        |s| s,
    )
    .unwrap();
    let wasm_before = [wasm_stats(&mesh.client), wasm_stats(&mesh.server)];

    Requests::get(mesh.entry, "/ratings/7").send(10);
    for _ in 0..5 {
        let mut evil = b"x-evil: latin1 \xe4\xf6 lone \xff and \xc0\xaf overlong\r\n".to_vec();
        evil.extend_from_slice(b"x-evil-2: \x80\x81\xfe\r\n");
        assert_eq!(raw(mesh.entry, &get_head(&evil)), "HTTP/1.1 200 OK");
    }
    for _ in 0..3 {
        let big = header("x-big", 50 * 1024);
        assert_eq!(raw(mesh.entry, &get_head(&big)), "HTTP/1.1 200 OK");
    }
    // Over Envoy's 60 KiB (Istio keeps the default): Envoy's own 431, which still runs the
    // filter chain (`DPE`, no upstream, so no peer and no service).
    for _ in 0..2 {
        let huge = header("x-huge", 1024 * 1024);
        assert_eq!(
            raw(mesh.entry, &get_head(&huge)),
            "HTTP/1.1 431 Request Header Fields Too Large"
        );
    }
    Requests::get(mesh.entry, "/ratings/7")
        .headers(&[("x-backend-reset", "before")])
        .status(503)
        .send(3);
    // The server sidecar passes the head on and sees the app cut the body (`UPE`); the client
    // sidecar gets the head and 7 bytes, and the rest never comes: its route timeout (`UT`).
    for _ in 0..2 {
        assert_eq!(truncated(mesh.entry), ("HTTP/1.1 200 OK".to_string(), 7));
    }
    Requests::get(mesh.entry, "/ratings/7")
        .headers(&[("x-backend-delay-ms", "1000")])
        .status(504)
        .send(3);
    for _ in 0..3 {
        vanish(mesh.entry, None);
        vanish(mesh.entry, Some(100));
    }
    let flood = h2_flood(mesh.entry, 400, 100, 40, 10);
    assert_eq!(
        flood,
        Flood {
            ok: 400,
            other: 0,
            errors: 0
        }
    );

    let client = settled(&mesh.client, "http.outbound_http.");
    let known = |code, flags| labels("source", code, flags, Peer::Known);
    let no_peer = |code, flags| labels("source", code, flags, Peer::None);
    let want: BTreeMap<Labels, u64> = [
        // 10 plain, 5 with bytes that are not UTF-8, 3 with 50 KiB headers, 400 over HTTP/2.
        (known("200", "-"), 418),
        (known("503", "-"), 3),
        (known("200", "UT"), 2),
        (no_peer("504", "UT"), 3),
        // 3 that vanished waiting, 3 in the middle of their body.
        (no_peer("0", "DC"), 6),
        // HTTP/2 streams reset by the client (RST_STREAM): 40 at once, 10 mid-body.
        (no_peer("0", "DR"), 50),
        (labels("source", "431", "DPE", Peer::NoService), 2),
    ]
    .into_iter()
    .collect();
    assert_eq!(client.series, want, "client sidecar");
    // What Envoy itself served: every request it saw reached the filter chain.
    assert_eq!(client.total(), client.envoy_total);
    assert_eq!(client.unanswered(), client.envoy_unanswered);

    let server = settled(&mesh.server, "http.inbound_http.");
    let at_server = |code, flags| labels("destination", code, flags, Peer::Known);
    let mut want: BTreeMap<Labels, u64> = [
        (at_server("200", "-"), 418),
        (at_server("503", "UC"), 3),
        (at_server("200", "UPE"), 2),
    ]
    .into_iter()
    .collect();
    // The requests the client side abandoned or timed out (3 + 6 + 50 = 59 in every run so
    // far) reach the server only if the client sidecar had forwarded them before the reset,
    // which is timing: compared with what the server's Envoy counted instead.
    assert!(
        (9..=59).contains(&server.envoy_unanswered),
        "{}",
        server.envoy_unanswered
    );
    want.insert(at_server("0", "DC"), server.envoy_unanswered);
    assert_eq!(server.series, want, "server sidecar");
    assert_eq!(server.total(), server.envoy_total);

    // No VM trapped, failed or was replaced: the wasm stats are as they were at the start.
    for (envoy, before) in [&mesh.client, &mesh.server].into_iter().zip(wasm_before) {
        let after = wasm_stats(envoy);
        assert_eq!(after, before, "envoy {}", envoy.name());
        // The native build has no VM (and no `wasm.*` stats): a crash ends the Envoy, which
        // the exact counts above would show.
        let vm_names: &[&str] = match meshstats_integration::build() {
            meshstats_integration::Build::Wasm => &VM_RELOAD_STATS,
            meshstats_integration::Build::Native => &[],
        };
        for name in vm_names {
            assert_eq!(
                after.iter().find(|(k, _)| k == name).map(|(_, v)| *v),
                Some(0),
                "envoy {} {name}",
                envoy.name()
            );
        }
        let log = envoy.log();
        assert!(
            !log.contains("RuntimeError"),
            "envoy {}: {log}",
            envoy.name()
        );
    }
}

type Labels = BTreeMap<String, String>;

enum Peer {
    /// Metadata exchange worked (both sides' workloads known).
    Known,
    /// No response came back from the server sidecar: only the cluster's service is known.
    None,
    /// Not even routed: Envoy answered before picking a cluster.
    NoService,
}

fn labels(reporter: &str, code: &str, flags: &str, peer: Peer) -> Labels {
    let mut l = bookinfo_peer_labels(reporter);
    let policy = if reporter == "source" {
        "unknown"
    } else {
        "none"
    };
    for (k, v) in [
        ("request_protocol", "http"),
        ("response_flags", flags),
        ("connection_security_policy", policy),
        ("response_code", code),
        ("grpc_response_status", ""),
    ] {
        l.insert(k.into(), v.into());
    }
    let mut unknown = match peer {
        Peer::Known => vec![],
        Peer::None | Peer::NoService => vec![
            "destination_workload",
            "destination_workload_namespace",
            "destination_app",
            "destination_version",
            "destination_canonical_service",
            "destination_cluster",
        ],
    };
    if let Peer::NoService = peer {
        unknown.extend([
            "destination_service",
            "destination_service_name",
            "destination_service_namespace",
        ]);
    }
    for k in unknown {
        l.insert(k.into(), "unknown".into());
    }
    if !matches!(peer, Peer::Known) {
        l.insert("destination_canonical_revision".into(), "latest".into());
    }
    l
}

/// One sidecar's `istio_requests_total` next to Envoy's own request counters.
struct Counted {
    series: BTreeMap<Labels, u64>,
    envoy_total: u64,
    envoy_unanswered: u64,
}

impl Counted {
    fn total(&self) -> u64 {
        self.series.values().sum()
    }

    fn unanswered(&self) -> u64 {
        self.series
            .iter()
            .filter(|(l, _)| l["response_code"] == "0")
            .map(|(_, v)| v)
            .sum()
    }
}

/// Waits (up to 10 s) until no request is active on the sidecar and the filter has counted as
/// many requests as Envoy (`<prefix>downstream_rq_total`), then reads both.
fn settled(envoy: &Envoy, prefix: &str) -> Counted {
    let mut last = None;
    for _ in 0..200 {
        let active = envoy_stat(envoy, &format!("{prefix}downstream_rq_active"));
        let total = envoy_stat(envoy, &format!("{prefix}downstream_rq_total"));
        let completed = envoy_stat(envoy, &format!("{prefix}downstream_rq_completed"));
        let scrape = envoy.prometheus().unwrap();
        let mut series = BTreeMap::new();
        for s in scrape.series("istio_requests_total") {
            *series.entry(s.labels).or_default() += s.value as u64;
        }
        let counted = Counted {
            series,
            envoy_total: total,
            envoy_unanswered: total - completed,
        };
        if active == 0 && counted.total() == total {
            return counted;
        }
        last = Some(outcomes(&scrape));
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("envoy {}: never settled; last: {last:?}", envoy.name())
}
