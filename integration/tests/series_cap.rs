//! Hostile traffic against a real Envoy: distinct `Host` headers through an outbound sidecar
//! whose cluster has no `istio` metadata, so every request names a new `destination_service`.
//! The filter's series cap must hold Envoy at exactly `max_series_per_metric` series plus one
//! overflow series per metric, with totals exact and memory flat past the cap.

use meshstats_cli::Direction;
use meshstats_integration::load::rss_bytes;
use meshstats_integration::mesh::{workload_metadata, Sidecar};
use meshstats_integration::{http_get, Backend, Envoy, Scrape, Series};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const CAP: usize = 1_000;
const HOSTS: usize = 3_000;

const HTTP_METRICS: [&str; 4] = [
    "istio_requests_total",
    "istio_request_duration_milliseconds",
    "istio_request_bytes",
    "istio_response_bytes",
];

/// Requests `from..to` with Host `h<i>.example` from 4 threads, within a bounded time.
fn send(listen: SocketAddr, from: usize, to: usize, deadline: Instant) {
    std::thread::scope(|scope| {
        for t in 0..4 {
            scope.spawn(move || {
                for i in (from + t..to).step_by(4) {
                    assert!(
                        Instant::now() < deadline,
                        "load took too long at request {i}"
                    );
                    let host = format!("h{i}.example");
                    let r =
                        http_get(listen, "/", &[("host", &host)]).unwrap_or_else(|e| panic!("{e}"));
                    assert_eq!(r.status, 200, "request {i}: {r:?}");
                }
            });
        }
    });
}

/// The filter's tick (`tcp_reporting_duration`'s default): counters reach Envoy at the tick.
const TICK: Duration = Duration::from_secs(5);

fn counted(envoy: &Envoy, requests: f64) {
    envoy
        // A scrape of ~4,000 series takes seconds on a loaded 2-core machine.
        .wait_for(Duration::from_secs(60) + TICK, |s| {
            (s.sum("istio_requests_total", &[]) == requests).then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A histogram's count, a counter's value.
fn count(s: &Series) -> f64 {
    match &s.histogram {
        Some(h) => h.count,
        None => s.value,
    }
}

/// The scrape once the counter has counted `requests` and a few stats flushes (100 ms each)
/// have passed, so the histograms have been merged too.
fn scrape_when(envoy: &Envoy, requests: f64) -> Scrape {
    counted(envoy, requests);
    std::thread::sleep(Duration::from_millis(1_000));
    envoy.prometheus().unwrap_or_else(|e| panic!("{e}"))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[test]
fn distinct_hosts_stop_at_the_cap_and_overflow_keeps_totals() {
    let backend = Backend::start();
    let sidecar = Sidecar::new(
        "series-cap",
        Direction::Outbound,
        backend.addr(),
        workload_metadata("productpage", "v1"),
    )
    .config(&format!(r#"{{"max_series_per_metric": {CAP}}}"#));
    let (envoy, listen) = sidecar.start().unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + Duration::from_secs(240);

    send(listen, 0, 10, deadline);
    counted(&envoy, 10.0);
    let rss_start = rss_bytes(envoy.pid()).unwrap();
    send(listen, 10, CAP, deadline);
    counted(&envoy, CAP as f64);
    let rss_at_cap = rss_bytes(envoy.pid()).unwrap();
    send(listen, CAP, HOSTS, deadline);
    let scrape = scrape_when(&envoy, HOSTS as f64);
    let rss_end = rss_bytes(envoy.pid()).unwrap();

    for metric in HTTP_METRICS {
        let series = scrape.series(metric);
        assert_eq!(
            series.len(),
            CAP + 1,
            "{metric}: the cap and one overflow series"
        );
        let overflow: Vec<_> = series
            .iter()
            .filter(|s| s.label("destination_service") == "meshstats_overflow")
            .collect();
        assert_eq!(overflow.len(), 1, "{metric}");
        for (k, v) in &overflow[0].labels {
            let want = if k == "reporter" {
                "source"
            } else {
                "meshstats_overflow"
            };
            assert_eq!(v, want, "{metric} overflow label {k}");
        }
        assert_eq!(overflow[0].labels.len(), 25, "{metric}");
        assert_eq!(
            count(overflow[0]),
            (HOSTS - CAP) as f64,
            "{metric} overflow"
        );
        let total: f64 = series.iter().map(count).sum();
        assert_eq!(total, HOSTS as f64, "{metric}: every request counted once");
    }
    // The admitted hosts are the first CAP, each with its one request.
    let admitted = scrape.series("istio_requests_total");
    let mut hosts: Vec<&str> = admitted
        .iter()
        .map(|s| s.label("destination_service"))
        .filter(|h| *h != "meshstats_overflow")
        .collect();
    hosts.sort_unstable();
    let mut want: Vec<String> = (0..CAP).map(|i| format!("h{i}.example")).collect();
    want.sort_unstable();
    assert_eq!(hosts, want);
    assert_eq!(
        scrape.counter("meshstats_series_overflow_total", &[]),
        Some((HOSTS - CAP) as f64)
    );
    let warnings = envoy
        .log()
        .matches("reached max_series_per_metric (1000) distinct label sets")
        .count();
    assert_eq!(warnings, 1, "logged once");

    let before = mib(rss_at_cap.saturating_sub(rss_start));
    let after = mib(rss_end.saturating_sub(rss_at_cap));
    eprintln!(
        "series_cap: RSS {:.1} MiB at start, {:.1} MiB at the cap (+{before:.1} MiB for {} new \
         series), {:.1} MiB after {} more hosts (+{after:.1} MiB)",
        mib(rss_start),
        mib(rss_at_cap),
        CAP - 10,
        mib(rss_end),
        HOSTS - CAP
    );
    // Per host, past the cap Envoy grows by a small fraction of what a new series costs (a
    // series per host would grow it linearly, as before the cap existed).
    let per_series = before / (CAP - 10) as f64;
    let per_overflow = after / (HOSTS - CAP) as f64;
    assert!(
        per_overflow < per_series / 5.0,
        "RSS grew {after:.1} MiB for {} hosts past the cap, {before:.1} MiB for {} series",
        HOSTS - CAP,
        CAP - 10
    );
}
