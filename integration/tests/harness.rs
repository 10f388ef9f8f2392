//! The harness itself: a bare Envoy (no filter) proxying to the test backend, and the
//! Prometheus parser on a fixed sample.

use meshstats_integration::{free_port, http_get, Backend, Envoy, Kind, Scrape};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn socket(a: SocketAddr) -> Value {
    json!({ "socket_address": { "address": a.ip().to_string(), "port_value": a.port() } })
}

/// listener -> HCM -> router -> one STATIC cluster, nothing else.
fn bare_bootstrap(
    listen: SocketAddr,
    upstream: SocketAddr,
    admin: SocketAddr,
    cluster: &str,
) -> Value {
    json!({
        "node": { "id": "harness", "cluster": "harness" },
        // Histograms reach the admin page at a stats flush (every 5 s by default); with
        // this, a scrape triggers one, so the next scrape shows them.
        "stats_flush_on_admin": true,
        "admin": { "address": socket(admin) },
        "static_resources": {
            "listeners": [{
                "name": "harness",
                "address": socket(listen),
                "filter_chains": [{ "filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "harness",
                        "route_config": { "virtual_hosts": [{
                            "name": "all", "domains": ["*"],
                            "routes": [{ "match": { "prefix": "/" }, "route": { "cluster": cluster } }],
                        }]},
                        "http_filters": [{
                            "name": "envoy.filters.http.router",
                            "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" },
                        }],
                    },
                }]}],
            }],
            "clusters": [{
                "name": cluster,
                "type": "STATIC",
                "connect_timeout": "1s",
                "load_assignment": {
                    "cluster_name": cluster,
                    "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": socket(upstream) } }] }],
                },
            }],
        },
    })
}

#[test]
fn bare_envoy_proxies_and_counts_upstream_requests() {
    let backend = Backend::start();
    let (listen, admin) = (addr(free_port()), addr(free_port()));
    let cluster = "backend";
    let envoy = Envoy::start(
        "bare",
        &bare_bootstrap(listen, backend.addr(), admin, cluster),
        admin,
    )
    .unwrap_or_else(|e| panic!("{e}"));

    for i in 0..5 {
        let r = http_get(listen, &format!("/hello/{i}"), &[("x-test", "harness")]).unwrap();
        assert_eq!(r.status, 200, "request {i}: {r:?}");
        assert_eq!(r.body, "hello from backend\n", "request {i}");
        assert_eq!(r.header("x-saw-peer-metadata"), Some("no"), "request {i}");
    }
    assert_eq!(backend.request_count(), 5);
    let seen = backend.requests();
    assert_eq!(seen.len(), 5);
    assert_eq!(seen[4].path, "/hello/4");
    assert_eq!(
        seen[4].headers.get("x-test").map(String::as_str),
        Some("harness")
    );

    let labels = [("envoy_cluster_name", cluster)];
    let scrape = envoy
        .wait_for_value("envoy_cluster_upstream_rq_total", &labels, 5.0)
        .unwrap();
    assert_eq!(
        scrape.kind("envoy_cluster_upstream_rq_total"),
        Some(Kind::Counter)
    );
    // Per response code, exactly: one series, 200, five requests.
    let by_code = scrape.matching("envoy_cluster_upstream_rq", &labels);
    let codes: Vec<(String, f64)> = by_code
        .iter()
        .map(|s| (s.label("envoy_response_code").to_string(), s.value))
        .collect();
    assert_eq!(codes, vec![("200".to_string(), 5.0)]);
    // A histogram family, through the parser: 5 requests timed (histograms show up one
    // stats flush later than counters, hence the wait).
    let rq_time = "envoy_cluster_upstream_rq_time";
    let scrape = envoy
        .wait_for(Duration::from_secs(10), |s| {
            s.histogram(rq_time, &labels)
                .is_some_and(|h| h.count == 5.0)
                .then(|| s.clone())
        })
        .unwrap();
    let h = scrape.histogram(rq_time, &labels).unwrap();
    assert_eq!(h.buckets.last(), Some(&(f64::INFINITY, 5.0)));
    assert!(
        h.buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
        "{h:?}"
    );
    assert_eq!(
        scrape.counter(&format!("{rq_time}_count"), &labels),
        Some(5.0)
    );
    assert_eq!(
        scrape.counter(
            &format!("{rq_time}_bucket"),
            &[("envoy_cluster_name", cluster), ("le", "+Inf")]
        ),
        Some(5.0)
    );
    // Untagged stats are served as `name{} value`; they must parse too.
    assert_eq!(scrape.counter("envoy_server_live", &[]), Some(1.0));
    assert!(
        envoy.log().contains("starting main dispatch loop"),
        "log:\n{}",
        envoy.log()
    );
}

#[test]
fn envoy_start_failure_reports_the_log() {
    let admin = addr(free_port());
    let bad = json!({ "admin": { "address": socket(admin) }, "static_resources": { "clusters": [{ "name": 7 }] } });
    let err = Envoy::start("broken", &bad, admin)
        .err()
        .expect("a broken bootstrap must not start");
    assert!(err.contains("exited during startup"), "{err}");
    assert!(err.contains("log tail"), "{err}");
}

#[test]
fn envoy_start_rejects_a_mismatched_admin_address() {
    let bootstrap = json!({ "admin": { "address": socket(addr(1)) } });
    let err = Envoy::start("mismatch", &bootstrap, addr(2))
        .err()
        .expect("must refuse");
    assert!(err.contains("admin"), "{err}");
}

const SAMPLE: &str = r#"# HELP istio_requests_total Total requests.
# TYPE istio_requests_total counter
istio_requests_total{reporter="destination",source_workload="productpage-v1",response_code="200"} 7
istio_requests_total{reporter="source",source_workload="we\"ird\\name\nline",response_code="503"} 2
istio_requests_total{reporter="source",source_workload="bücher-v1 ✓",response_code="200"} 1.5e+01
istio_requests_total{reporter="source",source_workload="a,b=c}d",response_code="404"} 3
# TYPE istio_request_duration_milliseconds histogram
istio_request_duration_milliseconds_bucket{reporter="destination",le="0.5"} 0
istio_request_duration_milliseconds_bucket{reporter="destination",le="1"} 2
istio_request_duration_milliseconds_bucket{reporter="destination",le="5"} 6
istio_request_duration_milliseconds_bucket{reporter="destination",le="+Inf"} 7
istio_request_duration_milliseconds_sum{reporter="destination"} 12.25
istio_request_duration_milliseconds_count{reporter="destination"} 7
# TYPE envoy_server_live gauge
envoy_server_live{} 1
"#;

#[test]
fn scrape_parser_resolves_escapes_and_histograms() {
    let s = Scrape::parse(SAMPLE).unwrap();
    let m = "istio_requests_total";
    assert_eq!(s.kind(m), Some(Kind::Counter));
    assert_eq!(s.series(m).len(), 4);
    assert_eq!(
        s.counter(
            m,
            &[
                ("reporter", "destination"),
                ("source_workload", "productpage-v1"),
                ("response_code", "200")
            ]
        ),
        Some(7.0)
    );
    // Label order does not matter, but the set must be exact.
    assert_eq!(
        s.counter(
            m,
            &[
                ("response_code", "200"),
                ("reporter", "destination"),
                ("source_workload", "productpage-v1")
            ]
        ),
        Some(7.0)
    );
    assert_eq!(
        s.counter(m, &[("reporter", "destination"), ("response_code", "200")]),
        None
    );
    // \" \\ \n resolved; non-ASCII kept; , = } inside a quoted value are data.
    assert_eq!(
        s.counter(
            m,
            &[
                ("reporter", "source"),
                ("source_workload", "we\"ird\\name\nline"),
                ("response_code", "503")
            ]
        ),
        Some(2.0)
    );
    assert_eq!(
        s.counter(
            m,
            &[
                ("reporter", "source"),
                ("source_workload", "bücher-v1 ✓"),
                ("response_code", "200")
            ]
        ),
        Some(15.0)
    );
    assert_eq!(
        s.counter(
            m,
            &[
                ("reporter", "source"),
                ("source_workload", "a,b=c}d"),
                ("response_code", "404")
            ]
        ),
        Some(3.0)
    );
    assert_eq!(s.sum(m, &[("reporter", "source")]), 20.0);

    let h = "istio_request_duration_milliseconds";
    assert_eq!(s.kind(h), Some(Kind::Histogram));
    let hist = s.histogram(h, &[("reporter", "destination")]).unwrap();
    assert_eq!(hist.count, 7.0);
    assert_eq!(hist.sum, 12.25);
    assert_eq!(
        hist.buckets,
        vec![(0.5, 0.0), (1.0, 2.0), (5.0, 6.0), (f64::INFINITY, 7.0)]
    );
    assert_eq!(
        s.counter(&format!("{h}_count"), &[("reporter", "destination")]),
        Some(7.0)
    );
    assert_eq!(
        s.counter(&format!("{h}_sum"), &[("reporter", "destination")]),
        Some(12.25)
    );
    assert_eq!(
        s.counter(
            &format!("{h}_bucket"),
            &[("reporter", "destination"), ("le", "+Inf")]
        ),
        Some(7.0)
    );
    assert_eq!(
        s.counter(
            &format!("{h}_bucket"),
            &[("reporter", "destination"), ("le", "5")]
        ),
        Some(6.0)
    );
    assert_eq!(s.kind(&format!("{h}_bucket")), Some(Kind::Histogram));

    assert_eq!(s.counter("envoy_server_live", &[]), Some(1.0));
    assert!(s.series("no_such_metric").is_empty());
    assert_eq!(s.names(), vec!["envoy_server_live", h, m]);
}

#[test]
fn scrape_parser_errors_name_the_family() {
    let text = "# TYPE good counter\ngood 1\n# TYPE bad counter\nbad{a=\"1\"} 1\nbad{b=\"2\"} 2\n";
    let err = Scrape::parse(text).unwrap_err();
    assert!(err.contains("# TYPE bad counter"), "{err}");
    assert!(!err.contains("good"), "{err}");
}

#[test]
fn backend_keeps_connections_alive_and_records_requests() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;

    fn read_response(r: &mut BufReader<TcpStream>) -> (String, Vec<String>, String) {
        let mut status = String::new();
        r.read_line(&mut status).unwrap();
        let mut headers = Vec::new();
        let mut len = 0;
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            let h = h.trim_end().to_string();
            if h.is_empty() {
                break;
            }
            if let Some(v) = h.strip_prefix("content-length: ") {
                len = v.parse().unwrap();
            }
            headers.push(h);
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        (
            status.trim_end().to_string(),
            headers,
            String::from_utf8(body).unwrap(),
        )
    }

    let backend = Backend::start();
    let stream = TcpStream::connect(backend.addr()).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    // Two requests on one connection: a chunked POST the app should fail, then a GET
    // carrying exchange headers.
    writer
        .write_all(b"POST /a HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nx-backend-status: 503\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        .unwrap();
    let (status, headers, body) = read_response(&mut reader);
    assert_eq!(status, "HTTP/1.1 503 Service Unavailable");
    assert!(
        headers.contains(&"x-saw-peer-metadata: no".to_string()),
        "{headers:?}"
    );
    assert_eq!(body, "hello from backend\n");
    writer.write_all(b"GET /b HTTP/1.1\r\nHost: x\r\nX-Envoy-Peer-Metadata: abc\r\nx-dup: 1\r\nx-dup: 2\r\n\r\n").unwrap();
    let (status, headers, _) = read_response(&mut reader);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        headers.contains(&"x-saw-peer-metadata: yes".to_string()),
        "{headers:?}"
    );

    let seen = backend.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        (
            seen[0].method.as_str(),
            seen[0].path.as_str(),
            seen[0].body.as_slice()
        ),
        ("POST", "/a", &b"abcde"[..])
    );
    assert_eq!(
        seen[1]
            .headers
            .get("x-envoy-peer-metadata")
            .map(String::as_str),
        Some("abc")
    );
    assert_eq!(
        seen[1].headers.get("x-dup").map(String::as_str),
        Some("1,2")
    );
    assert_eq!(
        backend.last_request().map(|r| r.path),
        Some("/b".to_string())
    );

    // Dropping the backend closes the still-open keep-alive connection.
    let started = std::time::Instant::now();
    drop(backend);
    assert!(started.elapsed() < Duration::from_secs(2));
    let mut rest = Vec::new();
    assert_eq!(
        reader
            .read_to_end(&mut rest)
            .map(|_| rest.len())
            .unwrap_or(0),
        0
    );
}
