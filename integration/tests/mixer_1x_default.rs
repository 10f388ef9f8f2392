//! The Istio 1.2–1.4 default Mixer telemetry in its 1.x shape (`instance`/`handler` kinds,
//! short references; `envoyfilter/tests/mixer/istio-1.4-default-telemetry.yaml`), imported by
//! `meshstats mixer import`, on both sidecars of a productpage → ratings pair in real Envoy:
//! Mixer's metric names with exactly the labels its prometheus handler exported, and the
//! `accesslog` entry as JSON lines; in front of a `tcp_proxy`, Mixer's four TCP metrics with
//! Mixer's labels.

use meshstats_cli::mixer;
use meshstats_integration::mesh::{
    plaintext_tcp_labels, server_service_labels, Bookinfo, RATINGS_SERVICE,
};
use meshstats_integration::tcp_echo::{round_trips, TcpEcho};
use meshstats_integration::{Backend, Envoy, Requests, Scrape};
use meshstats_testkit::workspace_root;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const REQUESTS: usize = 3;

fn imported() -> String {
    let path = workspace_root().join("envoyfilter/tests/mixer/istio-1.4-default-telemetry.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let imported = mixer::import(&[(path.display().to_string(), text)]).unwrap();
    serde_json::to_string_pretty(&imported.config.expect("a configuration")).unwrap()
}

/// Mixer's `destination.service.host` and `.name`: the service the cluster metadata names
/// (on the server side only where the build reads it, else the Host header, as the standard
/// labels).
fn destination_service(reporter: &str) -> [(&'static str, String); 2] {
    if reporter == "source" {
        [
            ("destination_service", RATINGS_SERVICE.to_string()),
            ("destination_service_name", "ratings".to_string()),
        ]
    } else {
        server_service_labels("ratings:9080")
    }
}

/// The label set Mixer's handler exported for each HTTP metric, with this pair's values.
fn want_labels(reporter: &str) -> BTreeMap<String, String> {
    let source = reporter == "source";
    let service = destination_service(reporter);
    let (src, dst) = ("productpage-v1", "ratings-v1");
    [
        ("reporter", reporter),
        ("source_app", "productpage"),
        ("source_principal", "unknown"),
        ("source_workload", src),
        ("source_workload_namespace", "default"),
        ("source_version", "v1"),
        ("destination_app", "ratings"),
        ("destination_principal", "unknown"),
        ("destination_workload", dst),
        ("destination_workload_namespace", "default"),
        ("destination_version", "v1"),
        ("destination_service", &service[0].1),
        ("destination_service_name", &service[1].1),
        ("destination_service_namespace", "default"),
        ("request_protocol", "http"),
        ("response_code", "200"),
        ("response_flags", "-"),
        ("permissive_response_policyid", "none"),
        (
            "connection_security_policy",
            if source { "unknown" } else { "none" },
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn lines(envoy: &Envoy, n: usize) -> Vec<Map<String, Value>> {
    let start = Instant::now();
    let complete = || {
        let text = String::from_utf8_lossy(&envoy.stdout()).to_string();
        let end = text.rfind('\n').map_or(0, |i| i + 1);
        text[..end]
            .split_terminator('\n')
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    while complete().len() < n && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    complete()
        .iter()
        .map(|l| match serde_json::from_str(l) {
            Ok(Value::Object(m)) => m,
            other => panic!("{}: not a JSON object ({other:?}): {l}", envoy.name()),
        })
        .collect()
}

#[test]
fn imported_istio_1_4_default_telemetry_in_envoy() {
    let config = imported();
    let app = Backend::start();
    let mesh = Bookinfo::start(app.addr(), &config, &config).unwrap();
    Requests::get(mesh.entry, "/ratings/7").send(REQUESTS);
    let n = REQUESTS as f64;
    for (envoy, reporter) in [(&mesh.client, "source"), (&mesh.server, "destination")] {
        let s: Scrape = envoy
            .wait_for(Duration::from_secs(10), |s| {
                let h = |m: &str| {
                    s.series(m)
                        .first()
                        .and_then(|x| x.histogram.as_ref())
                        .is_some_and(|h| h.count == n)
                };
                let done = s.sum("istio_requests_total", &[]) == n
                    && h("istio_request_duration_seconds")
                    && h("istio_request_bytes")
                    && h("istio_response_bytes");
                done.then(|| s.clone())
            })
            .unwrap_or_else(|e| {
                let text = envoy.prometheus().map(|s| s.text().to_string());
                panic!("{e}: {reporter}; scrape:\n{}", text.unwrap_or_default())
            });
        let istio: Vec<&str> = s
            .names()
            .into_iter()
            .filter(|n| n.starts_with("istio_") && *n != "istio_build")
            .collect();
        assert_eq!(
            istio,
            [
                "istio_request_bytes",
                "istio_request_duration_seconds",
                "istio_requests_total",
                "istio_response_bytes"
            ],
            "{reporter}"
        );
        assert!(
            s.series("meshstats_config_errors_total").is_empty(),
            "{reporter}: nothing left out at load time"
        );
        for metric in istio {
            let series = s.series(metric);
            assert_eq!(series.len(), 1, "{reporter} {metric}: {series:?}");
            let labels = series[0].labels.clone();
            assert_eq!(labels, want_labels(reporter), "{reporter} {metric}");
        }
        assert_eq!(s.sum("istio_requests_total", &[]), n, "{reporter}");

        let entries = lines(envoy, REQUESTS);
        assert_eq!(entries.len(), REQUESTS, "{reporter}: {entries:?}");
        for e in &entries {
            let keys: Vec<&str> = e.keys().map(String::as_str).collect();
            assert_eq!(
                keys,
                [
                    "apiKey",
                    "connection_security_policy",
                    "destinationServiceHost",
                    "destinationWorkload",
                    "instance",
                    "latency",
                    "level",
                    "method",
                    "protocol",
                    "reporter",
                    "requestSize",
                    "responseCode",
                    "responseFlags",
                    "responseSize",
                    "sourceIp",
                    "sourceWorkload",
                    "time",
                    "url",
                    "userAgent"
                ],
                "{reporter}"
            );
            assert_eq!(
                e["destinationServiceHost"],
                destination_service(reporter)[0].1
            );
            assert_eq!(e["responseSize"], 19);
            assert_eq!(e["instance"], "accesslog.instance.istio-system");
            assert_eq!(e["level"], "info");
            assert_eq!(e["reporter"], reporter);
            assert_eq!(e["responseCode"], 200);
            assert_eq!(e["responseFlags"], "-");
            assert_eq!(e["method"], "GET");
            assert_eq!(e["url"], "/ratings/7");
            assert_eq!(e["protocol"], "http");
            assert_eq!(e["sourceWorkload"], "productpage-v1");
            assert_eq!(e["destinationWorkload"], "ratings-v1");
            // Mixer's `source.ip` was an IP: the loopback client's, without its port.
            assert_eq!(e["sourceIp"], "127.0.0.1");
            assert_eq!(
                e["connection_security_policy"],
                if reporter == "source" {
                    "unknown"
                } else {
                    "none"
                }
            );
        }
    }
}

/// Each side's exact TCP series for plaintext sidecars: Mixer's 16 labels.
fn tcp_labels(reporter: &str) -> BTreeMap<String, String> {
    let mut labels = plaintext_tcp_labels(reporter, RATINGS_SERVICE);
    labels.insert("response_flags".into(), "-".into());
    labels
}

#[test]
fn imported_istio_1_4_tcp_metrics_in_envoy() {
    let config = imported();
    let echo = TcpEcho::start().unwrap();
    let mesh = Bookinfo::start_tcp(echo.addr(), &config).unwrap();
    const CONNECTIONS: usize = 3;
    const BYTES: usize = 500;
    round_trips(mesh.entry, CONNECTIONS, BYTES).unwrap();
    let (n, total) = (CONNECTIONS as f64, (CONNECTIONS * BYTES) as f64);
    let want = [
        ("istio_tcp_connections_closed_total", n),
        ("istio_tcp_connections_opened_total", n),
        ("istio_tcp_received_bytes_total", total),
        ("istio_tcp_sent_bytes_total", total),
    ];
    for (envoy, reporter) in [(&mesh.client, "source"), (&mesh.server, "destination")] {
        let s = envoy
            .wait_for(Duration::from_secs(15), |s| {
                let done = want.iter().all(|(m, v)| s.sum(m, &[]) == *v);
                done.then(|| s.clone())
            })
            .unwrap_or_else(|e| {
                let text = envoy.prometheus().map(|s| s.text().to_string());
                panic!("{e}: {reporter}; scrape:\n{}", text.unwrap_or_default())
            });
        let istio: Vec<&str> = s
            .names()
            .into_iter()
            .filter(|n| n.starts_with("istio_") && *n != "istio_build")
            .collect();
        let names: Vec<&str> = want.iter().map(|w| w.0).collect();
        assert_eq!(
            istio, names,
            "{reporter}: the HTTP definitions record no TCP"
        );
        assert!(
            s.series("meshstats_config_errors_total").is_empty(),
            "{reporter}: nothing left out at load time"
        );
        for (metric, value) in want {
            let series = s.series(metric);
            assert_eq!(series.len(), 1, "{reporter} {metric}: {series:?}");
            assert_eq!(
                series[0].labels,
                tcp_labels(reporter),
                "{reporter} {metric}"
            );
            assert_eq!(series[0].value, value, "{reporter} {metric}");
        }
    }
}
