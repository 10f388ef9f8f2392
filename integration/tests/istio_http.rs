//! Istio's standard HTTP metrics from real Envoy sidecars: a productpage-v1 client sidecar
//! (OUTBOUND) → a ratings-v1 server sidecar (INBOUND) → the ratings app, all on loopback.
//! Every assertion is on an exact label set and value scraped from `/stats/prometheus`.

use meshstats_cli::Direction;
use meshstats_integration::mesh::{bookinfo_peer_labels, workload_metadata, Bookinfo, Sidecar};
use meshstats_integration::{free_port, http_get, meshstats_bin, Backend, Envoy, Requests, Scrape};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;

const HOST: &str = "ratings:9080";

type Labels = BTreeMap<String, String>;

/// The labels both sides report for productpage-v1 → ratings-v1 with exchange working.
fn bookinfo_labels(reporter: &str, policy: &str, code: &str) -> Labels {
    let mut labels = bookinfo_peer_labels(reporter);
    for (k, v) in [
        ("request_protocol", "http"),
        ("response_flags", "-"),
        ("connection_security_policy", policy),
        ("response_code", code),
        ("grpc_response_status", ""),
    ] {
        labels.insert(k.to_string(), v.to_string());
    }
    labels
}

fn with(mut labels: Labels, changes: &[(&str, &str)]) -> Labels {
    for (k, v) in changes {
        assert!(labels.contains_key(*k), "no label {k}");
        labels.insert(k.to_string(), v.to_string());
    }
    labels
}

/// Waits until `metric` has exactly one series with a value of `n`, and returns its labels.
/// Exactly one: a second series would mean a label differed between requests.
fn only_series(envoy: &Envoy, metric: &str, n: f64) -> Labels {
    let scrape = envoy
        .wait_for(std::time::Duration::from_secs(10), |s| {
            let series = s.series(metric);
            (series.len() == 1 && series[0].value == n).then(|| s.clone())
        })
        .unwrap_or_else(|e| {
            panic!(
                "{e}; {metric} series: {:?}",
                envoy.prometheus().map(|s| describe(&s, metric))
            )
        });
    let series = scrape.series(metric);
    series[0].labels.clone()
}

fn describe(s: &Scrape, metric: &str) -> Vec<String> {
    s.series(metric)
        .iter()
        .map(|x| format!("{:?} = {}", x.labels, x.value))
        .collect()
}

/// Histograms reach `/stats/prometheus` at Envoy's next stats flush, so wait for them.
fn assert_histograms(envoy: &Envoy, labels: &Labels, n: f64) {
    const HISTOGRAMS: [&str; 3] = [
        "istio_request_duration_milliseconds",
        "istio_request_bytes",
        "istio_response_bytes",
    ];
    let scrape = envoy
        .wait_for(std::time::Duration::from_secs(10), |s| {
            HISTOGRAMS
                .iter()
                .all(|m| {
                    s.series(m)
                        .first()
                        .and_then(|x| x.histogram.as_ref())
                        .is_some_and(|h| h.count == n)
                })
                .then(|| s.clone())
        })
        .unwrap_or_else(|e| panic!("{e}: histograms never reached count {n}"));
    for metric in HISTOGRAMS {
        let series = scrape.series(metric);
        assert_eq!(series.len(), 1, "{metric}: {:?}", describe(&scrape, metric));
        assert_eq!(&series[0].labels, labels, "{metric}");
        let h = series[0].histogram.as_ref().unwrap();
        assert_eq!(
            h.buckets.last().map(|b| b.1),
            Some(n),
            "{metric} +Inf bucket"
        );
        if metric != "istio_request_duration_milliseconds" {
            assert!(h.sum > 0.0, "{metric} sum is {}", h.sum);
        }
    }
}

#[test]
fn both_sidecars_report_all_25_labels_exactly() {
    let app = Backend::start();
    let mesh = Bookinfo::start(app.addr(), "{}", "{}").unwrap();
    Requests::get(mesh.entry, "/ratings/0").send(10);

    let server = only_series(&mesh.server, "istio_requests_total", 10.0);
    assert_eq!(server, bookinfo_labels("destination", "none", "200"));
    let client = only_series(&mesh.client, "istio_requests_total", 10.0);
    assert_eq!(client, bookinfo_labels("source", "unknown", "200"));
    assert_histograms(&mesh.server, &server, 10.0);
    assert_histograms(&mesh.client, &client, 10.0);

    // Exchange headers are between proxies only: the app never saw them.
    assert_eq!(app.request_count(), 10);
    for req in app.requests() {
        assert!(
            !req.headers.contains_key("x-envoy-peer-metadata"),
            "{:?}",
            req.headers
        );
        assert!(
            !req.headers.contains_key("x-envoy-peer-metadata-id"),
            "{:?}",
            req.headers
        );
    }
    // …and neither did the calling app on the response.
    let r = http_get(mesh.entry, "/", &[("host", HOST)]).unwrap();
    assert_eq!(r.header("x-envoy-peer-metadata"), None);
    assert_eq!(r.header("x-envoy-peer-metadata-id"), None);

    let build = mesh.server.prometheus().unwrap();
    let b = build.series("istio_build");
    assert_eq!(b.len(), 1);
    assert_eq!(
        b[0].labels,
        [("component", "proxy"), ("tag", meshstats_filter::VERSION)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Labels>()
    );
    assert_eq!(b[0].value, 1.0);
}

#[test]
fn host_header_fallback_on_and_off() {
    let app = Backend::start();
    // No service metadata on either cluster: destination_service comes from the Host header,
    // unless the fallback is disabled.
    // Also Istio's root ids, which select the direction like the listener does.
    let plain = |s: Sidecar| Sidecar {
        cluster_metadata: None,
        root_id: format!("stats_{}", s.direction),
        ..s
    };
    let mesh = Bookinfo::start_with(app.addr(), plain, plain).unwrap();
    Requests::get(mesh.entry, "/ratings/0").send(3);
    let host_labels = [
        ("destination_service", HOST),
        ("destination_service_name", HOST),
    ];
    assert_eq!(
        only_series(&mesh.client, "istio_requests_total", 3.0),
        with(bookinfo_labels("source", "unknown", "200"), &host_labels)
    );
    assert_eq!(
        only_series(&mesh.server, "istio_requests_total", 3.0),
        with(bookinfo_labels("destination", "none", "200"), &host_labels)
    );

    let off = r#"{"disable_host_header_fallback": true}"#;
    let mesh = Bookinfo::start_with(
        app.addr(),
        |s| plain(s.config(off)),
        |s| plain(s.config(off)),
    )
    .unwrap();
    Requests::get(mesh.entry, "/ratings/0").send(3);
    // Client side: unknown. Server side: its own canonical service name.
    assert_eq!(
        only_series(&mesh.client, "istio_requests_total", 3.0),
        with(
            bookinfo_labels("source", "unknown", "200"),
            &[
                ("destination_service", "unknown"),
                ("destination_service_name", "unknown")
            ]
        )
    );
    assert_eq!(
        only_series(&mesh.server, "istio_requests_total", 3.0),
        with(
            bookinfo_labels("destination", "none", "200"),
            &[
                ("destination_service", "ratings"),
                ("destination_service_name", "ratings")
            ]
        )
    );
}

#[test]
fn server_without_exchange_client_falls_back_to_endpoint_metadata() {
    let app = Backend::start();
    let mesh = Bookinfo::start_with(
        app.addr(),
        |c| Sidecar {
            endpoint_metadata: Some(
                json!({"istio": {"workload": "ratings-v1;default;ratings;v1;Kubernetes"}}),
            ),
            ..c
        },
        |s| s.config(r#"{"disable_metadata_exchange": true}"#),
    )
    .unwrap();
    Requests::get(mesh.entry, "/ratings/0").send(10);
    // The endpoint metadata carries no app/version labels.
    assert_eq!(
        only_series(&mesh.client, "istio_requests_total", 10.0),
        with(
            bookinfo_labels("source", "unknown", "200"),
            &[
                ("destination_app", "unknown"),
                ("destination_version", "unknown")
            ]
        )
    );
    // The server still knows its caller from the request's exchange headers.
    assert_eq!(
        only_series(&mesh.server, "istio_requests_total", 10.0),
        bookinfo_labels("destination", "none", "200")
    );
}

#[test]
fn unreachable_upstream_is_a_503_with_response_flags() {
    let closed: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let (client, entry) = Sidecar::new(
        "client-unreachable",
        Direction::Outbound,
        closed,
        workload_metadata("productpage", "v1"),
    )
    .start()
    .unwrap();
    Requests::get(entry, "/ratings/0").status(503).send(4);
    let labels = only_series(&client, "istio_requests_total", 4.0);
    let flags = labels["response_flags"].clone();
    assert!(
        flags == "UF" || flags == "URX" || flags == "UF,URX",
        "response_flags={flags}"
    );
    let mut want = with(
        bookinfo_labels("source", "unknown", "503"),
        &[
            ("response_flags", &flags),
            ("destination_service", HOST),
            ("destination_service_name", HOST),
        ],
    );
    for k in [
        "destination_workload",
        "destination_workload_namespace",
        "destination_app",
        "destination_version",
        "destination_service_namespace",
        "destination_canonical_service",
        "destination_cluster",
    ] {
        want.insert(k.into(), "unknown".into());
    }
    want.insert("destination_canonical_revision".into(), "latest".into());
    assert_eq!(labels, want);
}

#[test]
fn unusable_config_is_logged_counted_and_traffic_still_flows() {
    let app = Backend::start();
    let bad = r#"{"metrics": [{"name": "requests_total", "nmae": "typo"}]}"#;
    let mesh = Bookinfo::start(app.addr(), "{}", bad).unwrap();
    Requests::get(mesh.entry, "/ratings/0").send(5);
    assert_eq!(
        only_series(&mesh.server, "istio_requests_total", 5.0),
        bookinfo_labels("destination", "none", "200")
    );

    let expected = "invalid meshstats config at `metrics[0].nmae`: unknown field `nmae`, expected one of `name`, `dimensions`, `tagsToRemove`, `tags_to_remove`, `match`, `drop`, `buckets`";
    let log = mesh.server.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("meshstats: invalid"))
        .collect();
    assert!(!lines.is_empty(), "no error line in the server log");
    for line in &lines {
        assert!(
            line.ends_with(&format!(
                "meshstats: {expected}; serving with the defaults of {{}}"
            )),
            "{line}"
        );
    }
    let scrape = mesh.server.prometheus().unwrap();
    let errors = scrape.series("meshstats_config_errors_total");
    assert_eq!(errors.len(), 1);
    // Counted once per Wasm VM that loaded the config (Envoy runs one per worker and one on main).
    assert_eq!(errors[0].value, lines.len() as f64);

    // `meshstats validate` says the same thing and exits 1.
    let dir = std::env::temp_dir().join(format!("meshstats-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.json");
    std::fs::write(&file, bad).unwrap();
    let out = std::process::Command::new(meshstats_bin())
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!("{}: {expected}", file.display())
    );
}

#[test]
fn overrides_drop_metrics_and_remove_tags() {
    let app = Backend::start();
    let cfg = r#"{"metrics": [{"name": "request_bytes", "drop": true},
                              {"tags_to_remove": ["source_principal", "destination_principal"]}]}"#;
    let mesh = Bookinfo::start(app.addr(), cfg, cfg).unwrap();
    Requests::get(mesh.entry, "/ratings/0").send(2);
    let mut want = bookinfo_labels("destination", "none", "200");
    want.remove("source_principal");
    want.remove("destination_principal");
    assert_eq!(only_series(&mesh.server, "istio_requests_total", 2.0), want);
    let scrape = mesh.server.prometheus().unwrap();
    assert!(
        scrape.series("istio_request_bytes").is_empty(),
        "dropped metric is present"
    );
    assert_eq!(scrape.series("istio_response_bytes").len(), 1);
}

/// Label values go through the stat name and Envoy's tag extraction byte for byte: dots, `=`,
/// `;`, spaces, quotes and non-ASCII come out as sent, but for trailing dots (which Envoy
/// drops); separator runs cannot forge labels.
#[test]
fn host_header_values_round_trip_through_envoy() {
    let app = Backend::start();
    let plain = |s: Sidecar| Sidecar {
        cluster_metadata: None,
        ..s
    };
    let mesh = Bookinfo::start_with(app.addr(), plain, plain).unwrap();
    let cases = [
        ("a.b.c:80", "a.b.c:80"),
        ("k=v;x", "k=v;x"),
        ("x;.;response_code=.=999;.;", "x;_;response_code=_=999;_;"),
        ("ends-with;.", "ends-with;"),
        ("dots..and.", "dots..and"),
        ("dots..and", "dots..and"),
    ];
    for (host, _) in cases {
        // Written by hand: HTTP clients refuse to send non-ASCII Host headers; Envoy accepts them.
        let status = raw_get_status(mesh.entry, host);
        assert_eq!(status, "HTTP/1.1 200 OK", "Host {host:?}");
    }
    // Envoy drops trailing dots from tag values; the filter does too, so "dots..and." and
    // "dots..and" are one series (two would be duplicate series to Prometheus).
    let scrape = mesh
        .client
        .wait_for(std::time::Duration::from_secs(10), |s| {
            // The counts arrive at the filter's next tick (counters are summed in the VM);
            // the series exist from the first request.
            let counted = s.sum("istio_requests_total", &[]) == cases.len() as f64;
            (s.series("istio_requests_total").len() == cases.len() - 1 && counted)
                .then(|| s.clone())
        })
        .unwrap_or_else(|e| {
            panic!(
                "{e}: {:?}",
                mesh.client
                    .prometheus()
                    .map(|s| describe(&s, "istio_requests_total"))
            )
        });
    for (sent, want) in cases {
        let count = cases.iter().filter(|(_, w)| *w == want).count() as f64;
        let labels = with(
            bookinfo_labels("source", "unknown", "200"),
            &[
                ("destination_service", want),
                ("destination_service_name", want),
            ],
        );
        let found = scrape
            .series("istio_requests_total")
            .into_iter()
            .find(|s| s.labels == labels);
        assert_eq!(
            found.map(|s| s.value),
            Some(count),
            "Host {sent:?}: {:?}",
            describe(&scrape, "istio_requests_total")
        );
    }

    // Envoy refuses non-ASCII and spaces in Host, so those travel in node metadata instead,
    // through the metadata exchange to the other side.
    let odd = "r\u{e4}tings \"v1\" \\ \u{2713} \u{65e5}\u{672c}";
    let mut meta = workload_metadata("ratings", "v1");
    meta["LABELS"]["app"] = json!(odd);
    let mesh = Bookinfo::start_with(
        app.addr(),
        |c| c,
        |s| Sidecar {
            node_metadata: meta,
            ..s
        },
    )
    .unwrap();
    Requests::get(mesh.entry, "/ratings/0").send(2);
    let want = with(
        bookinfo_labels("source", "unknown", "200"),
        &[("destination_app", odd)],
    );
    assert_eq!(only_series(&mesh.client, "istio_requests_total", 2.0), want);
    let want = with(
        bookinfo_labels("destination", "none", "200"),
        &[("destination_app", odd)],
    );
    assert_eq!(only_series(&mesh.server, "istio_requests_total", 2.0), want);
}

fn raw_get_status(addr: SocketAddr, host: &str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        conn,
        "GET / HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut status = String::new();
    BufReader::new(conn).read_line(&mut status).unwrap();
    status.trim_end().to_string()
}

#[test]
fn server_gateway_reporter_is_waypoint() {
    let app = Backend::start();
    let mesh = Bookinfo::start(app.addr(), "{}", r#"{"reporter": "SERVER_GATEWAY"}"#).unwrap();
    Requests::get(mesh.entry, "/ratings/0").send(3);
    assert_eq!(
        only_series(&mesh.server, "istio_requests_total", 3.0),
        bookinfo_labels("waypoint", "none", "200")
    );
    assert_eq!(
        only_series(&mesh.client, "istio_requests_total", 3.0),
        bookinfo_labels("source", "unknown", "200")
    );
}

/// HTTP over mTLS between the sidecars (SPIFFE certificates made at run time): both sides
/// report the principals from the certificates' URI SANs; the server reports `mutual_tls`.
#[test]
fn mtls_between_sidecars_reports_spiffe_principals() {
    use meshstats_integration::pki::{bookinfo_pki, PRODUCTPAGE_ID, RATINGS_ID};
    let dir = std::env::temp_dir().join(format!("meshstats-http-mtls-{}", std::process::id()));
    let pki = bookinfo_pki(&dir).unwrap();
    let app = Backend::start();
    let mesh = Bookinfo::start_mtls(app.addr(), &pki, "{}").unwrap();
    Requests::get(mesh.entry, "/ratings/0").send(5);
    let principals = [
        ("source_principal", PRODUCTPAGE_ID),
        ("destination_principal", RATINGS_ID),
    ];
    let mut server = principals.to_vec();
    server.push(("connection_security_policy", "mutual_tls"));
    assert_eq!(
        only_series(&mesh.server, "istio_requests_total", 5.0),
        with(bookinfo_labels("destination", "none", "200"), &server)
    );
    assert_eq!(
        only_series(&mesh.client, "istio_requests_total", 5.0),
        with(bookinfo_labels("source", "unknown", "200"), &principals)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
