//! Counters are summed inside the VM and reach Envoy on the root's tick or when the
//! configuration goes away (`Root::flush`). Never lost: a configuration change in the middle
//! of the traffic hands over what the old root counted, long before its own tick, and the
//! tick delivers the rest at most one tick after the last request.

use meshstats_integration::lds::{wait_lds_updates, with_filter, Lds};
use meshstats_integration::load::{self, LoadOptions};
use meshstats_integration::mesh::{Bookinfo, Sidecar};
use meshstats_integration::{Backend, Envoy, Scrape};
use serde_json::Value;
use std::time::{Duration, Instant};

const HOST: &str = "ratings:9080";
/// The first configuration's tick: longer than this test runs up to the change, so only the
/// flush at the change can deliver its counts.
const SLOW: &str = r#"{"tcp_reporting_duration": "30s"}"#;
const SLOW_TICK: Duration = Duration::from_secs(30);
/// The configuration pushed in the middle of the traffic.
const FAST: &str = r#"{"tcp_reporting_duration": "1s"}"#;
const FAST_TICK: Duration = Duration::from_secs(1);
/// Histograms and counters reach `/stats/prometheus` at Envoy's stats flush (100 ms here).
const STATS_FLUSH: Duration = Duration::from_millis(100);
const REQUESTS: u64 = 200;

/// `REQUESTS` requests on two keep-alive connections; every one must succeed.
fn send(entry: std::net::SocketAddr) -> u64 {
    let options = LoadOptions {
        max_requests: Some(REQUESTS),
        ..LoadOptions::new(2, Duration::from_secs(10), "/ratings/7", HOST)
    };
    let result = load::run(entry, &options);
    assert_eq!(result.failures(), 0, "{:?}", result.errors);
    assert_eq!(result.completed, REQUESTS);
    result.completed
}

fn requests_total(s: &Scrape) -> f64 {
    s.sum("istio_requests_total", &[("reporter", "destination")])
}

fn duration_count(s: &Scrape) -> f64 {
    s.matching(
        "istio_request_duration_milliseconds",
        &[("reporter", "destination")],
    )
    .iter()
    .filter_map(|x| x.histogram.as_ref())
    .map(|h| h.count)
    .sum()
}

fn vm_id(listener: &Value) -> String {
    listener
        .pointer("/filter_chains/0/filters/0/typed_config/http_filters")
        .and_then(Value::as_array)
        .and_then(|f| f.iter().find(|f| f["name"] == "envoy.filters.http.wasm"))
        .and_then(|f| f["typed_config"]["config"]["vm_config"]["vm_id"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// Waits up to `timeout` for the server's `istio_requests_total` to be `want`; returns
/// the last value seen.
fn wait_requests(server: &Envoy, want: f64, timeout: Duration) -> f64 {
    let mut last = f64::NAN;
    let _ = server.wait_for(timeout, |s| {
        last = requests_total(s);
        (last == want).then_some(())
    });
    last
}

#[test]
fn a_config_change_and_the_tick_deliver_every_counted_request() {
    if !meshstats_integration::runs_under(
        meshstats_integration::Build::Wasm,
        "counters are summed in the VM and flushed; the native module writes each request to Envoy",
    ) {
        return;
    }
    let dir = meshstats_integration::scratch_dir("counter-flush");
    let app = Backend::start();
    let lds_file = dir.join("server-lds.json");
    let started = Instant::now();
    let mesh = Bookinfo::start_with(
        app.addr(),
        |c| c,
        |s| Sidecar {
            lds: Some(lds_file.clone()),
            // The replaced filter chain, and with it the old root, goes away at once.
            envoy_args: ["--drain-strategy", "immediate", "--drain-time-s", "1"]
                .map(String::from)
                .to_vec(),
            ..s.config(SLOW)
        },
    )
    .unwrap();
    let server = &mesh.server;
    let mut lds = Lds::open(&lds_file).unwrap();

    let first = send(mesh.entry);
    // Between ticks Prometheus sees the histograms (one record per sample) but not yet the
    // counter the VM holds.
    let between = server
        .wait_for(Duration::from_secs(5), |s| {
            (duration_count(s) == first as f64).then(|| requests_total(s))
        })
        .unwrap();
    assert_eq!(
        between, 0.0,
        "istio_requests_total before any tick or flush"
    );

    // The change: a new root context for the new configuration in the same VM; the old one
    // flushes before it goes.
    let vm = vm_id(lds.listener());
    assert!(!vm.is_empty());
    let next = with_filter(lds.listener(), &vm, FAST).unwrap();
    lds.push(&next).unwrap();
    wait_lds_updates(server, 2, Duration::from_secs(5)).unwrap();
    let seen = wait_requests(server, first as f64, Duration::from_secs(10));
    assert_eq!(seen, first as f64, "what the old configuration counted");
    assert!(
        started.elapsed() < SLOW_TICK,
        "delivered by the flush, not by the old root's tick"
    );

    // Under the new configuration the tick delivers: at most one tick after the last request.
    let second = send(mesh.entry);
    let last_request = Instant::now();
    let total = (first + second) as f64;
    let seen = wait_requests(server, total, FAST_TICK + 4 * STATS_FLUSH);
    assert_eq!(seen, total, "every request, one tick after the last");
    assert!(last_request.elapsed() < FAST_TICK + 10 * STATS_FLUSH);
    assert_eq!(app.request_count(), first + second);
    // Exactly once: nothing is flushed twice.
    std::thread::sleep(FAST_TICK + 2 * STATS_FLUSH);
    let scrape = server.prometheus().unwrap();
    assert_eq!(requests_total(&scrape), total);
    assert_eq!(duration_count(&scrape), total);
    assert!(!server.log().contains("panicked"));
}
