//! Istio's "customized" stats scenario (istio/proxy `TestStatsPayload/Customized`) on a client
//! sidecar, in Istio's CEL spellings and in Mixer's, in both metric modes: a definition starts
//! with no labels, `metrics[]` entries add and remove tags in order, a dimension that cannot be
//! evaluated is `unknown` and one that does not parse is removed.

use super::*;
use crate::host::fake::{FakeHost, SeriesKey, SeriesValue};
use std::collections::BTreeMap;

const CEL: &str = include_str!("../../../envoyfilter/examples/istio-e2e/customized.cel.json");
const MIXER: &str = include_str!("../../../envoyfilter/examples/istio-e2e/customized.mixer.json");

fn sidecar(
    h: FakeHost,
    direction: i64,
    workload: &str,
    app: &str,
    config: &str,
) -> (FakeHost, Root) {
    h.set(
        &["xds", "node", "id"],
        format!("sidecar~127.0.0.1~{workload}-1.default~default.svc.cluster.local"),
    );
    h.set(&["xds", "node", "metadata", "NAMESPACE"], "default");
    h.set(&["xds", "node", "metadata", "WORKLOAD_NAME"], workload);
    h.set(&["xds", "node", "metadata", "CLUSTER_ID"], "Kubernetes");
    h.set(
        &["xds", "node", "metadata", "LABELS"],
        decode::encode_pairs(&[("app", app), ("version", "v1")]),
    );
    // Envoy answers a path into the map too; the fake host only what it was given.
    h.set(&["xds", "node", "metadata", "LABELS", "app"], app);
    h.set(&["xds", "node", "metadata", "LABELS", "version"], "v1");
    h.set_int(&["xds", "listener_direction"], direction);
    h.set_bool(&["connection", "mtls"], false);
    h.set_int(&["response", "code"], 200);
    h.set(&["request", "protocol"], "HTTP/1.1");
    h.set(&["xds", "route_name"], "client_route");
    h.set(&["xds", "cluster_name"], "outbound|9080||ratings");
    let root = Root::configure(&h, config);
    *h.stats_tags.borrow_mut() = root.metrics().stats_tags();
    (h, root)
}

/// Ten requests from productpage (the configured client) to ratings (defaults); the client's
/// series.
fn scenario(config: &str, labelled: bool) -> BTreeMap<SeriesKey, SeriesValue> {
    let host = || {
        if labelled {
            FakeHost::labelled()
        } else {
            FakeHost::default()
        }
    };
    let (ch, mut client) = sidecar(host(), 2, "productpage-v1", "productpage", config);
    let (sh, mut server) = sidecar(host(), 1, "ratings-v1", "ratings", "{}");
    for _ in 0..10 {
        let (mut cs, mut ss) = (Stream::default(), Stream::default());
        ch.request_headers.borrow_mut().clear();
        client.on_request_headers(&ch, &mut cs);
        *sh.request_headers.borrow_mut() = ch.request_headers.borrow().clone();
        server.on_request_headers(&sh, &mut ss);
        sh.response_headers.borrow_mut().clear();
        server.on_response_headers(&sh, &mut ss);
        *ch.response_headers.borrow_mut() = sh.response_headers.borrow().clone();
        client.on_response_headers(&ch, &mut cs);
        ch.request_headers
            .borrow_mut()
            .insert(":authority".into(), "ratings:9080".into());
        client.on_log(&ch, &mut cs);
    }
    client.flush(&ch);
    ch.series()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = p
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.sort();
    v
}

fn only<'a>(
    series: &'a BTreeMap<SeriesKey, SeriesValue>,
    name: &str,
) -> (&'a [(String, String)], &'a SeriesValue) {
    let mut of = series.iter().filter(|((n, _), _)| n == name);
    let ((_, labels), value) = of
        .next()
        .unwrap_or_else(|| panic!("no {name}: {series:#?}"));
    assert!(of.next().is_none(), "more than one {name}: {series:#?}");
    (labels, value)
}

#[test]
fn istio_customized_scenario_gives_istio_series_in_both_spellings_and_modes() {
    let want_requests = pairs(&[
        ("reporter", "source"),
        ("source_workload", "_productpage-v1"),
        ("source_workload_namespace", "_default"),
        ("source_principal", "malicious"),
        ("source_app", "_productpage"),
        ("source_version", "_productpage"),
        ("source_canonical_service", "productpage-v1"),
        ("source_canonical_revision", "latest"),
        ("source_cluster", "Kubernetes"),
        // `cannot_evaluate` names no attribute: Istio's CEL fails to evaluate it, `unknown`.
        ("destination_workload", "unknown"),
        ("destination_workload_namespace", "default"),
        ("destination_principal", "unknown"),
        ("destination_version", "_v1"),
        ("destination_service", "ratings:9080"),
        ("destination_service_name", "ratings:9080"),
        ("destination_service_namespace", "_ratings"),
        ("destination_canonical_service", "ratings-v1"),
        ("destination_canonical_revision", "latest"),
        ("destination_cluster", "Kubernetes"),
        ("request_protocol", "HTTP/1.1"),
        ("response_code", "200"),
        ("connection_security_policy", "unknown"),
        ("configurable_metric_a", "gateway"),
        // No `istio.services` metadata on this cluster: the whole expression is `unknown`.
        ("route_name", "unknown"),
    ]);
    for (spelling, config) in [("cel", CEL), ("mixer", MIXER)] {
        for labelled in [false, true] {
            let at = format!("{spelling}, labelled {labelled}");
            let series = scenario(config, labelled);
            let (labels, value) = only(&series, "istio_custom");
            assert_eq!(
                labels,
                pairs(&[("reporter", "proxy"), ("source_principal", "malicious")]),
                "{at}"
            );
            assert_eq!(value, &SeriesValue::Value(10), "{at}");
            // `destination_app: "cannot _ parse | 1"` does not parse: the tag is gone, as
            // are `response_flags` and `grpc_response_status`.
            let (labels, value) = only(&series, "istio_requests_total");
            assert_eq!(labels, want_requests, "{at}");
            assert_eq!(value, &SeriesValue::Value(10), "{at}");
            assert!(
                !series
                    .keys()
                    .any(|(n, _)| n == "istio_request_duration_milliseconds"),
                "{at}: dropped"
            );
            // One problem, one warning: both counted.
            assert_eq!(
                series
                    .iter()
                    .find(|((n, _), _)| n == metrics::CONFIG_ERRORS_METRIC)
                    .map(|(_, v)| v),
                Some(&SeriesValue::Value(2)),
                "{at}"
            );
        }
    }
}

#[test]
fn the_filter_logs_the_unevaluable_dimension_and_keeps_it() {
    let (h, root) = sidecar(FakeHost::default(), 2, "productpage-v1", "productpage", CEL);
    let logs: Vec<String> = h
        .logs
        .borrow()
        .iter()
        .map(|(_, l)| l.clone())
        .filter(|l| l.starts_with("meshstats: invalid"))
        .collect();
    assert_eq!(
        logs,
        [
            "meshstats: invalid meshstats config at `metrics[3].dimensions.destination_app`: column 8: expected end of expression, found `_` in `cannot _ parse | 1`; the dimension is left out",
            "meshstats: invalid meshstats config at `metrics[3].dimensions.destination_workload`: column 1: unknown attribute `cannot_evaluate` in `cannot_evaluate`; the label is `unknown`",
        ]
    );
    assert_eq!(root.problems().len(), 2);
}
