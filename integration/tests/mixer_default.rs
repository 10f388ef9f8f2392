//! Istio 1.0's default Mixer telemetry, imported by `meshstats mixer import`, on both sidecars
//! of a productpage → ratings pair in real Envoy: the scrape has Mixer's metric names and,
//! per metric, exactly the label names Mixer's prometheus handler exported; the access log
//! lines carry Mixer's `sourceIp` (an IP, no port); and in front of a `tcp_proxy` the same
//! configuration gives exactly Mixer's two TCP metrics with Mixer's labels.

use meshstats_cli::mixer;
use meshstats_integration::mesh::{plaintext_tcp_labels, Bookinfo};
use meshstats_integration::tcp_echo::{round_trips, TcpEcho};
use meshstats_integration::{Backend, Envoy, Requests, Scrape};
use meshstats_testkit::{shared_dir, MIXER_HTTP_LABELS};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// `../shared/mixer-configs/istio-1.0-default-telemetry.yaml`, imported.
fn imported_default() -> String {
    let path = shared_dir("mixer-configs").join("istio-1.0-default-telemetry.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let imported = mixer::import(&[(path.display().to_string(), text)]).unwrap();
    serde_json::to_string_pretty(&imported.config.expect("a configuration")).unwrap()
}

#[test]
fn imported_istio_1_0_default_telemetry_in_envoy() {
    let config = imported_default();
    let app = Backend::start();
    let mesh = Bookinfo::start(app.addr(), &config, &config).unwrap();
    Requests::get(mesh.entry, "/ratings/7").send(3);
    let want_labels: BTreeSet<String> = MIXER_HTTP_LABELS.iter().map(|s| s.to_string()).collect();
    for (envoy, reporter, peer) in [
        (&mesh.client, "source", "ratings-v1"),
        (&mesh.server, "destination", "productpage-v1"),
    ] {
        let s: Scrape = envoy
            .wait_for(Duration::from_secs(10), |s| {
                let done = s.sum("istio_requests_total", &[]) == 3.0
                    && s.series("istio_request_duration_seconds")
                        .first()
                        .and_then(|x| x.histogram.as_ref())
                        .is_some_and(|h| h.count == 3.0)
                    && s.series("istio_response_bytes")
                        .first()
                        .and_then(|x| x.histogram.as_ref())
                        .is_some_and(|h| h.count == 3.0);
                done.then(|| s.clone())
            })
            .unwrap_or_else(|e| {
                panic!(
                    "{e}: {reporter}; scrape:\n{}",
                    envoy
                        .prometheus()
                        .map(|s| s.text().to_string())
                        .unwrap_or_default()
                )
            });

        // Mixer's metric names, and nothing else of Istio's but istio_build (the proxy's own).
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
            let names: BTreeSet<String> = series[0].labels.keys().cloned().collect();
            assert_eq!(
                names, want_labels,
                "{reporter} {metric}: exactly Mixer's label names"
            );
            let x = &series[0];
            assert_eq!(x.label("reporter"), reporter, "{metric}");
            assert_eq!(x.label("request_protocol"), "http", "{metric}");
            assert_eq!(x.label("response_code"), "200", "{metric}");
            assert_eq!(
                x.label("connection_security_policy"),
                if reporter == "source" {
                    "unknown"
                } else {
                    "none"
                },
                "{metric}"
            );
            let (src, dst) = if reporter == "source" {
                ("productpage-v1", peer)
            } else {
                (peer, "ratings-v1")
            };
            assert_eq!(
                (x.label("source_workload"), x.label("destination_workload")),
                (src, dst),
                "{metric}"
            );
            assert_eq!(
                (x.label("source_app"), x.label("destination_app")),
                ("productpage", "ratings"),
                "{metric}"
            );
        }
        assert_eq!(s.sum("istio_requests_total", &[]), 3.0, "{reporter}");

        // Mixer's `source.ip` was an IP: the loopback client's, without its port.
        let entries = log_lines(envoy, 3);
        assert_eq!(entries.len(), 3, "{reporter}: {entries:?}");
        for e in &entries {
            assert_eq!(
                (&e["sourceIp"], &e["reporter"]),
                (&json!("127.0.0.1"), &json!(reporter))
            );
        }

        // Mixer's buckets: request_duration_seconds in milliseconds (bounds × 1000), the byte
        // histograms 1, 10, … 1e8 (Mixer's 8 finite buckets made 9 bounds).
        let bounds = |metric: &str| -> Vec<f64> {
            let h = s.series(metric)[0].histogram.clone().unwrap();
            h.buckets
                .iter()
                .map(|(le, _)| *le)
                .filter(|le| le.is_finite())
                .collect()
        };
        assert_eq!(
            bounds("istio_request_duration_seconds"),
            [5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0]
        );
        assert_eq!(
            bounds("istio_request_bytes"),
            [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8]
        );
        assert_eq!(
            bounds("istio_response_bytes"),
            [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8]
        );
        // Loopback requests take well under 5 ms; 19-byte responses fall in the 100 bucket.
        let duration = s.series("istio_request_duration_seconds")[0]
            .histogram
            .clone()
            .unwrap();
        assert!(duration.sum < 3.0 * 5000.0, "milliseconds: {duration:?}");
        let bytes = s.series("istio_response_bytes")[0]
            .histogram
            .clone()
            .unwrap();
        assert_eq!(
            bytes
                .buckets
                .iter()
                .find(|(le, _)| *le == 100.0)
                .map(|b| b.1),
            Some(3.0),
            "{bytes:?}"
        );
    }
}

/// The JSON lines `envoy` wrote to stdout once there are `n` complete ones (10 s at most).
fn log_lines(envoy: &Envoy, n: usize) -> Vec<Value> {
    let start = Instant::now();
    let complete = || {
        let text = String::from_utf8_lossy(&envoy.stdout()).to_string();
        let end = text.rfind('\n').map_or(0, |i| i + 1);
        text[..end]
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect::<Vec<Value>>()
    };
    while complete().len() < n && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    complete()
}

/// Each side's exact TCP series for plaintext sidecars: Mixer's 15 labels, 1.0's
/// `destination_service` from `destination.service.name` as its config wrote it.
fn tcp_labels(reporter: &str) -> BTreeMap<String, String> {
    plaintext_tcp_labels(reporter, "ratings")
}

#[test]
fn imported_istio_1_0_tcp_metrics_in_envoy() {
    let config = imported_default();
    let echo = TcpEcho::start().unwrap();
    let mesh = Bookinfo::start_tcp(echo.addr(), &config).unwrap();
    const CONNECTIONS: usize = 3;
    const BYTES: usize = 700;
    round_trips(mesh.entry, CONNECTIONS, BYTES).unwrap();
    let total = (CONNECTIONS * BYTES) as f64;
    let metrics = [
        "istio_tcp_received_bytes_total",
        "istio_tcp_sent_bytes_total",
    ];
    for (envoy, reporter) in [(&mesh.client, "source"), (&mesh.server, "destination")] {
        let s = envoy
            .wait_for(Duration::from_secs(15), |s| {
                let done = metrics.iter().all(|m| s.sum(m, &[]) == total);
                done.then(|| s.clone())
            })
            .unwrap_or_else(|e| {
                let text = envoy.prometheus().map(|s| s.text().to_string());
                panic!("{e}: {reporter}; scrape:\n{}", text.unwrap_or_default())
            });
        // Mixer's two TCP metrics only: the standard opened/closed ones are dropped, and the
        // HTTP definitions record nothing on a TCP connection.
        let istio: Vec<&str> = s
            .names()
            .into_iter()
            .filter(|n| n.starts_with("istio_") && *n != "istio_build")
            .collect();
        assert_eq!(istio, metrics, "{reporter}");
        assert!(
            s.series("meshstats_config_errors_total").is_empty(),
            "{reporter}: nothing left out at load time"
        );
        for metric in metrics {
            let series = s.series(metric);
            assert_eq!(series.len(), 1, "{reporter} {metric}: {series:?}");
            assert_eq!(
                series[0].labels,
                tcp_labels(reporter),
                "{reporter} {metric}"
            );
            assert_eq!(series[0].value, total, "{reporter} {metric}");
        }
    }
}
