//! The labelled mode (native build) against the stat-name mode (Wasm build): the same traffic
//! must give the same Prometheus series, name, every label and value.

use crate::host::decode;
use crate::host::fake::{FakeHost, SeriesKey, SeriesValue};
use crate::plugin::{Root, Stream};
use std::collections::BTreeMap;

/// Every feature the metric table has: a series cap that overflows, a length limit, a custom
/// dimension, removed tags, a dropped metric, a `match`, a definition whose value fails for
/// some requests (counted as an evaluation error), TCP and gRPC metrics.
const CONFIG: &str = r#"{
    "max_series_per_metric": 3,
    "max_label_value_length": 12,
    "tcp_reporting_duration": "1s",
    "metrics": [
        {"tags_to_remove": ["source_principal"]},
        {"name": "requests_total", "dimensions": {"user": "request.headers['x-user'] | 'anonymous'"}},
        {"name": "response_bytes", "drop": true},
        {"name": "request_bytes", "match": "response.code >= 500"}
    ],
    "definitions": [
        {"name": "sized_total", "value": "request.size", "dimensions": {"reporter": "'proxy'"}}
    ]
}"#;

/// The filter state Envoy's `grpc_stats` filter writes (`plugin::grpc`).
const GRPC_STATE: [&str; 2] = ["filter_state", "envoy.filters.http.grpc_stats"];

fn sidecar(h: &FakeHost, istio: bool) -> Root {
    h.set(
        &["xds", "node", "id"],
        "sidecar~10.0.0.1~ratings-v1-1.default~x",
    );
    h.set(&["xds", "node", "metadata", "NAMESPACE"], "default");
    h.set(&["xds", "node", "metadata", "WORKLOAD_NAME"], "ratings-v1");
    h.set(&["xds", "node", "metadata", "CLUSTER_ID"], "Kubernetes");
    h.set(
        &["xds", "node", "metadata", "LABELS"],
        decode::encode_pairs(&[("app", "ratings"), ("version", "v1")]),
    );
    if istio {
        h.set(&["xds", "node", "metadata", "ISTIO_VERSION"], "1.17.2");
    }
    h.set_int(&["xds", "listener_direction"], 1);
    h.set_bool(&["connection", "mtls"], false);
    let root = Root::configure(h, CONFIG);
    *h.stats_tags.borrow_mut() = root.metrics().stats_tags();
    root
}

/// HTTP requests to six services (three fit under the cap), some failing, some with a user
/// and a request size; one TCP connection in two reports; one gRPC stream.
fn traffic(h: &FakeHost, root: &mut Root) {
    for i in 0..12i64 {
        let mut s = Stream::default();
        {
            let mut req = h.request_headers.borrow_mut();
            req.clear();
            req.insert(":authority".into(), format!("svc{}.default.svc", i % 6));
            if i % 3 == 0 {
                req.insert("x-user".into(), "a-rather-long-user-name".into());
            }
        }
        root.on_request_headers(h, &mut s);
        let code = if i % 4 == 0 { 503 } else { 200 };
        h.response_headers.borrow_mut().clear();
        h.response_headers
            .borrow_mut()
            .insert(":status".into(), code.to_string());
        root.on_response_headers(h, &mut s);
        h.set_int(&["response", "code"], code);
        h.set_int(&["request", "duration"], 1_000_000 * (i + 1));
        h.set_int(&["request", "total_size"], 100 + i);
        if i % 2 == 0 {
            h.set_int(&["request", "size"], i);
        } else {
            h.properties.borrow_mut().remove("request.size");
        }
        root.on_log(h, &mut s);
    }
    let mut tcp = Stream::default();
    root.on_new_connection(&mut tcp);
    root.on_downstream_data(&mut tcp, 10);
    root.on_upstream_data(&mut tcp, 7);
    root.report_tcp(h, &mut tcp, false);
    root.on_downstream_data(&mut tcp, 5);
    root.report_tcp(h, &mut tcp, true);

    let mut grpc = Stream::default();
    {
        let mut req = h.request_headers.borrow_mut();
        req.clear();
        req.insert("content-type".into(), "application/grpc".into());
        req.insert(":authority".into(), "svc0.default.svc".into());
    }
    root.on_request_headers(h, &mut grpc);
    h.set(&GRPC_STATE, "2,3");
    root.report_grpc(h, &mut grpc);
    h.set(&GRPC_STATE, "2,5");
    h.set_int(&["response", "code"], 200);
    root.on_log(h, &mut grpc);
}

fn run(labelled: bool, istio: bool) -> (FakeHost, BTreeMap<SeriesKey, SeriesValue>) {
    let h = if labelled {
        FakeHost::labelled()
    } else {
        FakeHost::default()
    };
    let mut root = sidecar(&h, istio);
    traffic(&h, &mut root);
    root.flush(&h);
    let series = h.series();
    (h, series)
}

fn value<'a>(
    series: &'a BTreeMap<SeriesKey, SeriesValue>,
    name: &str,
    label: (&str, &str),
) -> Vec<&'a SeriesValue> {
    series
        .iter()
        .filter(|((n, labels), _)| {
            n == name
                && labels
                    .iter()
                    .any(|(k, v)| (k.as_str(), v.as_str()) == label)
        })
        .map(|(_, v)| v)
        .collect()
}

#[test]
fn both_modes_give_the_same_series() {
    for istio in [false, true] {
        let (_, stat_names) = run(false, istio);
        let (_, labelled) = run(true, istio);
        assert_eq!(
            labelled.keys().collect::<Vec<_>>(),
            stat_names.keys().collect::<Vec<_>>()
        );
        assert_eq!(labelled, stat_names, "istio encoding: {istio}");
        // Not two empty maps: what both modes agree on is the traffic's.
        let s = &labelled;
        let requests: i64 = s
            .iter()
            .filter(|((n, _), _)| n == "istio_requests_total")
            .map(|(_, v)| match v {
                SeriesValue::Value(v) => *v,
                SeriesValue::Samples(_) => 0,
            })
            .sum();
        assert_eq!(requests, 13, "12 HTTP requests and the gRPC stream");
        assert_eq!(
            value(
                s,
                "istio_requests_total",
                ("destination_service", "meshstats_overflow")
            ),
            [&SeriesValue::Value(9)],
            "past the cap of 3 tuples: all but requests 0, 1, 2 and 7 (the tuple of 1)"
        );
        assert_eq!(
            s[&("meshstats_series_overflow_total".into(), vec![])],
            SeriesValue::Value(9)
        );
        assert_eq!(
            s[&("meshstats_evaluation_errors_total".into(), vec![])],
            SeriesValue::Value(7),
            "6 odd requests and the gRPC stream have no request.size"
        );
        assert_eq!(
            value(s, "istio_sized_total", ("reporter", "proxy")),
            [&SeriesValue::Value(2 + 4 + 6 + 8 + 10)]
        );
        assert_eq!(
            value(s, "istio_requests_total", ("user", "a-rather-lon")),
            [&SeriesValue::Value(1)],
            "cut to 12 bytes; the other users' requests overflowed"
        );
        let failed: usize = value(s, "istio_request_bytes", ("reporter", "destination"))
            .iter()
            .map(|v| match v {
                SeriesValue::Samples(s) => s.len(),
                SeriesValue::Value(_) => 0,
            })
            .sum();
        assert_eq!(failed, 3, "only the 503s match");
        assert!(s.keys().all(|(n, _)| n != "istio_response_bytes"));
        assert!(s
            .keys()
            .all(|(_, l)| l.iter().all(|(k, _)| k != "source_principal")));
        // `meshstats-0.1.0` cut to 12 bytes, then its trailing dot dropped, as Envoy drops it
        // from a stat name.
        let build = if istio {
            "1.17.2"
        } else {
            crate::stat_name::bounded(crate::VERSION, 12).trim_end_matches('.')
        };
        assert_eq!(
            s[&(
                "istio_build".into(),
                vec![
                    ("component".into(), "proxy".into()),
                    ("tag".into(), build.into())
                ]
            )],
            SeriesValue::Value(1)
        );
        assert_eq!(
            value(
                s,
                "istio_tcp_received_bytes_total",
                ("request_protocol", "tcp")
            ),
            [&SeriesValue::Value(15)]
        );
        assert_eq!(
            value(
                s,
                "istio_response_messages_total",
                ("reporter", "destination")
            ),
            [&SeriesValue::Value(5)]
        );
    }
}

#[test]
fn labelled_mode_defines_each_metric_once_with_its_label_names() {
    let (h, _) = run(true, false);
    let calls = h.calls.borrow();
    let defines: Vec<String> = calls
        .iter()
        .filter(|c| c.starts_with("define_"))
        .cloned()
        .collect();
    let standard = |n: usize, skip: &[&str]| {
        crate::labels::STANDARD_LABELS[..n]
            .iter()
            .filter(|l| !skip.contains(l))
            .copied()
            .collect::<Vec<_>>()
            .join(",")
    };
    let http = standard(25, &["source_principal"]);
    let tcp = standard(23, &["source_principal"]);
    let grpc = standard(20, &["source_principal"]);
    assert_eq!(
        defines,
        [
            "define_metric Counter meshstats_evaluation_errors_total".to_string(),
            "define_metric Counter meshstats_series_overflow_total".into(),
            format!("define_labelled_metric Counter istio_requests_total [{http},user]"),
            format!(
                "define_labelled_metric Histogram istio_request_duration_milliseconds [{http}]"
            ),
            format!("define_labelled_metric Histogram istio_request_bytes [{http}]"),
            format!("define_labelled_metric Counter istio_tcp_connections_opened_total [{tcp}]"),
            format!("define_labelled_metric Counter istio_tcp_connections_closed_total [{tcp}]"),
            format!("define_labelled_metric Counter istio_tcp_sent_bytes_total [{tcp}]"),
            format!("define_labelled_metric Counter istio_tcp_received_bytes_total [{tcp}]"),
            format!("define_labelled_metric Counter istio_request_messages_total [{grpc}]"),
            format!("define_labelled_metric Counter istio_response_messages_total [{grpc}]"),
            "define_labelled_metric Counter istio_sized_total [reporter]".into(),
            "define_labelled_metric Gauge istio_build [component,tag]".into(),
        ]
    );
}

/// Native calls are cheap and the labelled mode sums nothing: a request's counter goes to
/// the host at once, and a flush has nothing left to do.
#[test]
fn labelled_mode_counts_at_once_and_flush_is_empty() {
    let h = FakeHost::labelled();
    let mut root = sidecar(&h, false);
    h.calls.borrow_mut().clear();
    let mut s = Stream::default();
    h.set_int(&["response", "code"], 200);
    root.on_log(&h, &mut s);
    let metric_calls: Vec<String> = h
        .calls
        .borrow()
        .iter()
        .filter(|c| c.contains("metric"))
        .cloned()
        .collect();
    assert_eq!(
        metric_calls,
        [
            "increment_labelled_metric 0",
            "record_labelled_metric 1",
            "increment_metric 0",
        ],
        "the count, the duration, the evaluation error (no request.size)"
    );
    h.calls.borrow_mut().clear();
    root.flush(&h);
    assert!(h.calls.borrow().is_empty(), "{:?}", h.calls.borrow());
}
