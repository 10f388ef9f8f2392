//! The Wasm build reads stream-end attributes with Envoy's `expr_evaluate` foreign function
//! (one host call for all of them, `filter/src/attributes/batch.rs`). This checks that Envoy
//! 1.40 really takes that path (the filter's one log line per configuration says which path
//! it uses) and that it yields exactly what the per-property path does
//! (`batch_reads` off), over mTLS so booleans, SANs, durations and sizes all cross.

use meshstats_integration::mesh::{Bookinfo, Sidecar};
use meshstats_integration::pki::bookinfo_pki;
use meshstats_integration::{Backend, Envoy, Requests};
use std::collections::BTreeMap;
use std::time::Duration;

const BATCH_LINE: &str = "request attributes are read with expr_evaluate";
const FALLBACK_LINE: &str = "expr_create failed";
const FAILED_LINE: &str = "expr_evaluate failed";
const METRICS: [&str; 4] = [
    "istio_requests_total",
    "istio_request_duration_milliseconds",
    "istio_request_bytes",
    "istio_response_bytes",
];

/// Per metric, each series' labels and its count (the value, or the histogram's count).
type Report = BTreeMap<String, Vec<(BTreeMap<String, String>, f64)>>;

/// Waits until every metric has its `n` requests (histograms arrive at a stats flush).
fn report(envoy: &Envoy, n: f64) -> Report {
    let scrape = envoy
        .wait_for(Duration::from_secs(10), |s| {
            METRICS
                .iter()
                .all(|m| {
                    let series = s.series(m);
                    let total: f64 = series
                        .iter()
                        .map(|x| x.histogram.as_ref().map_or(x.value, |h| h.count))
                        .sum();
                    total == n
                })
                .then(|| s.clone())
        })
        .unwrap_or_else(|e| panic!("{e}: not all of {METRICS:?} reached {n}"));
    METRICS
        .iter()
        .map(|m| {
            let series = scrape
                .series(m)
                .into_iter()
                .map(|x| {
                    let v = x.histogram.as_ref().map_or(x.value, |h| h.count);
                    (x.labels, v)
                })
                .collect();
            (m.to_string(), series)
        })
        .collect()
}

/// Both sidecars' reports for 5 requests over mTLS, Istio's root ids, with `config`.
fn run(config: &str, dir: &std::path::Path) -> (Report, Report, String) {
    let pki = bookinfo_pki(dir).unwrap();
    let app = Backend::start();
    let mesh = Bookinfo::start_with(
        app.addr(),
        |c| Sidecar {
            upstream_tls: Some(pki.client.clone()),
            root_id: "stats_outbound".into(),
            ..c.config(config)
        },
        |s| Sidecar {
            downstream_tls: Some(pki.server.clone()),
            root_id: "stats_inbound".into(),
            ..s.config(config)
        },
    )
    .unwrap();
    Requests::get(mesh.entry, "/ratings/0").send(5);
    let (client, server) = (report(&mesh.client, 5.0), report(&mesh.server, 5.0));
    (client, server, mesh.server.log() + &mesh.client.log())
}

#[test]
fn envoy_takes_the_batch_path_and_it_agrees_with_per_property_reads() {
    if !meshstats_integration::runs_under(
        meshstats_integration::Build::Wasm,
        "expr_evaluate is a Wasm foreign function; the native module reads attributes directly",
    ) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("meshstats-batch-{}", std::process::id()));
    let (client, server, log) = run(r#"{"batch_reads": true}"#, &dir);
    assert!(log.contains(BATCH_LINE), "no batch line in the log:\n{log}");
    assert!(!log.contains(FALLBACK_LINE), "{log}");
    // No request fell back: every stream end's one call succeeded.
    assert!(!log.contains(FAILED_LINE), "{log}");
    // One line per configuration (one per worker VM and the main thread's, per sidecar).
    for line in log.lines().filter(|l| l.contains(BATCH_LINE)) {
        // Server: stream end and the caller's certificate; client: stream end only.
        assert!(
            line.contains("(2 expressions, 13 attributes)")
                || line.contains("(1 expressions, 10 attributes)"),
            "{line}"
        );
    }

    let (plain_client, plain_server, plain_log) = run("{}", &dir);
    assert!(!plain_log.contains(BATCH_LINE), "{plain_log}");
    assert_eq!(server, plain_server);
    assert_eq!(client, plain_client);

    // And the values are the real ones, not defaults both paths could share.
    let requests = &server["istio_requests_total"];
    assert_eq!(requests.len(), 1, "{requests:?}");
    let (labels, n) = &requests[0];
    assert_eq!(*n, 5.0);
    let expect = [
        ("connection_security_policy", "mutual_tls"),
        (
            "source_principal",
            meshstats_integration::pki::PRODUCTPAGE_ID,
        ),
        (
            "destination_principal",
            meshstats_integration::pki::RATINGS_ID,
        ),
        ("response_code", "200"),
        ("response_flags", "-"),
        ("destination_service", "ratings.default.svc.cluster.local"),
        ("source_workload", "productpage-v1"),
    ];
    for (k, v) in expect {
        assert_eq!(
            labels.get(k).map(String::as_str),
            Some(v),
            "{k}: {labels:?}"
        );
    }
    let client_labels = &client["istio_requests_total"][0].0;
    assert_eq!(
        client_labels
            .get("destination_principal")
            .map(String::as_str),
        Some(meshstats_integration::pki::RATINGS_ID)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
