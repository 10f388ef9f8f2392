//! The two stat-name encodings are an inside matter of the proxy: a sidecar on `COMPACT` (the
//! plain-Envoy default) and one on `ISTIO` serve byte-identical `istio_*` lines on
//! `/stats/prometheus`, label order included, for the same traffic.

use meshstats_cli::Direction;
use meshstats_integration::mesh::{workload_metadata, Sidecar};
use meshstats_integration::{http_get, runs_under, Backend, Build, Envoy};
use std::net::SocketAddr;
use std::time::Duration;

/// Hosts become `destination_service` (the cluster has no `istio` metadata): one short, one
/// long, one that tries to inject a label through both encodings' separators.
const HOSTS: [&str; 3] = [
    "a.example",
    "a-much-longer-hostname.example.svc.cluster.local",
    "x;.;reporter=.=forged;.;a",
];

fn sidecar(encoding: &str, backend: SocketAddr) -> (Envoy, SocketAddr) {
    Sidecar::new(
        &format!("encoding-{}", encoding.to_ascii_lowercase()),
        Direction::Outbound,
        backend,
        workload_metadata("productpage", "v1"),
    )
    .config(&format!(r#"{{"stat_name_encoding": "{encoding}"}}"#))
    .start()
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The sorted `istio_*` lines once every request is counted. Durations are timing, not
/// encoding: their samples' values are blanked, their series (name and labels) kept.
fn istio_lines(envoy: &Envoy, requests: f64) -> Vec<String> {
    envoy
        .wait_for(Duration::from_secs(20), |s| {
            (s.sum("istio_requests_total", &[]) == requests).then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let text = envoy
        .admin_get("/stats/prometheus")
        .unwrap_or_else(|e| panic!("{e}"))
        .body;
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("istio_"))
        .map(|l| match l.rsplit_once(' ') {
            Some((series, _)) if l.starts_with("istio_request_duration_") => format!("{series} _"),
            _ => l.to_owned(),
        })
        .collect();
    lines.sort_unstable();
    lines
}

#[test]
fn compact_and_istio_encodings_serve_identical_prometheus_text() {
    if !runs_under(
        Build::Wasm,
        "stat-name encodings exist only for Wasm's stats_tags; native labels are Envoy's tags",
    ) {
        return;
    }
    let backend = Backend::start();
    let (compact, compact_listen) = sidecar("COMPACT", backend.addr());
    let (istio, istio_listen) = sidecar("ISTIO", backend.addr());
    let mut sent = 0.0;
    for (i, host) in HOSTS.iter().enumerate() {
        for _ in 0..=i {
            for listen in [compact_listen, istio_listen] {
                let r = http_get(listen, "/", &[("host", host)]).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(r.status, 200, "{host}: {r:?}");
            }
            sent += 1.0;
        }
    }

    let compact_lines = istio_lines(&compact, sent);
    let istio_lines = istio_lines(&istio, sent);
    assert!(
        compact_lines
            .iter()
            .any(|l| l.starts_with("istio_requests_total{reporter=\"source\",")),
        "label order starts with reporter: {compact_lines:#?}"
    );
    let requests: Vec<&String> = compact_lines
        .iter()
        .filter(|l| l.starts_with("istio_requests_total{"))
        .collect();
    assert_eq!(
        requests.len(),
        HOSTS.len(),
        "one series per host: {requests:#?}"
    );
    let only_compact: Vec<&String> = compact_lines
        .iter()
        .filter(|l| !istio_lines.contains(l))
        .collect();
    let only_istio: Vec<&String> = istio_lines
        .iter()
        .filter(|l| !compact_lines.contains(l))
        .collect();
    assert!(
        only_compact.is_empty() && only_istio.is_empty(),
        "COMPACT only: {only_compact:#?}\nISTIO only: {only_istio:#?}"
    );
    assert_eq!(compact_lines, istio_lines);

    // Both encodings really were in use: only the Istio one writes tag names into stat names.
    let compact_names = compact.stats_text().unwrap_or_else(|e| panic!("{e}"));
    let istio_names = istio.stats_text().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        istio_names.contains("reporter=.=source;.;"),
        "{istio_names}"
    );
    assert!(!compact_names.contains("reporter=.="), "{compact_names}");
}
