use super::*;
use crate::host::decode;
use crate::host::fake::FakeHost;
use crate::stat_name;

fn sidecar(direction: i64, workload: &str, config: &str) -> (FakeHost, Root) {
    let h = FakeHost::default();
    h.set(&["xds", "node", "metadata", "NAMESPACE"], "default");
    h.set(&["xds", "node", "metadata", "WORKLOAD_NAME"], workload);
    h.set(&["xds", "node", "metadata", "CLUSTER_ID"], "Kubernetes");
    h.set(
        &["xds", "node", "metadata", "LABELS"],
        decode::encode_pairs(&[("app", "x"), ("version", "v1")]),
    );
    h.set_int(&["xds", "listener_direction"], direction);
    let root = Root::configure(&h, config);
    *h.stats_tags.borrow_mut() = root.metrics().stats_tags();
    (h, root)
}

type Labels = Vec<(String, String)>;

/// Every `istio_tcp_*` series: (metric, labels) → value.
fn tcp_series(h: &FakeHost) -> Vec<(String, Labels, i64)> {
    let values = h.values.borrow();
    values
        .iter()
        .filter(|(n, _)| n.contains("istio_tcp_"))
        .map(|(n, v)| {
            let (rest, labels) = stat_name::extract(n, &h.stats_tags.borrow());
            (rest, labels, *v)
        })
        .collect()
}

fn value(h: &FakeHost, metric: &str) -> i64 {
    tcp_series(h)
        .iter()
        .filter(|(m, _, _)| m == metric)
        .map(|(_, _, v)| v)
        .sum()
}

#[test]
fn data_chunks_make_no_host_call_and_reports_carry_deltas() {
    let (h, mut root) = sidecar(1, "ratings-v1", r#"{"tcp_reporting_duration": "1s"}"#);
    h.set_bool(&["connection", "mtls"], false);
    let mut s = Stream::default();
    h.calls.borrow_mut().clear();
    root.on_new_connection(&mut s);
    for _ in 0..100 {
        root.on_downstream_data(&mut s, 10);
        root.on_upstream_data(&mut s, 7);
    }
    assert!(h.calls.borrow().is_empty(), "{:?}", h.calls.borrow());
    assert!(s.tcp_open());
    // A tick every 1 s reports; the first report counts the connection as opened.
    assert_eq!(root.tick_period_ms(), 1000);
    assert!(root.tick());
    root.report_tcp(&h, &mut s, false);
    root.flush(&h);
    assert_eq!(value(&h, "istio_tcp_connections_opened_total"), 1);
    assert_eq!(value(&h, "istio_tcp_received_bytes_total"), 1000);
    assert_eq!(value(&h, "istio_tcp_sent_bytes_total"), 700);
    assert_eq!(value(&h, "istio_tcp_connections_closed_total"), 0);
    // Nothing new: no host call at all.
    h.calls.borrow_mut().clear();
    root.report_tcp(&h, &mut s, false);
    assert!(h.calls.borrow().is_empty(), "{:?}", h.calls.borrow());
    root.on_downstream_data(&mut s, 5);
    root.report_tcp(&h, &mut s, true);
    assert!(!s.tcp_open());
    // Reported once more only: the close is final.
    root.report_tcp(&h, &mut s, true);
    root.flush(&h);
    assert_eq!(value(&h, "istio_tcp_connections_opened_total"), 1);
    assert_eq!(value(&h, "istio_tcp_connections_closed_total"), 1);
    assert_eq!(value(&h, "istio_tcp_received_bytes_total"), 1005);
    assert_eq!(value(&h, "istio_tcp_sent_bytes_total"), 700);
    // TCP reports never record the HTTP metrics.
    assert!(
        h.values
            .borrow()
            .keys()
            .all(|k| !k.contains("istio_request")),
        "{:?}",
        h.values.borrow()
    );
}

#[test]
fn server_side_labels_follow_istio_tcp_rules() {
    let (h, mut root) = sidecar(1, "ratings-v1", "{}");
    h.set_bool(&["connection", "mtls"], true);
    h.set(
        &["connection", "uri_san_peer_certificate"],
        "spiffe://cluster.local/ns/prod/sa/productpage",
    );
    h.set(
        &["connection", "uri_san_local_certificate"],
        "spiffe://cluster.local/ns/default/sa/ratings",
    );
    h.set(&["xds", "cluster_name"], "inbound|9080||");
    h.set(
        &[
            "xds",
            "cluster_metadata",
            "filter_metadata",
            "istio",
            "services",
            "0",
        ],
        decode::encode_pairs(&[
            ("host", "ratings.default.svc.cluster.local"),
            ("name", "ratings"),
            ("namespace", "default"),
        ]),
    );
    let mut s = Stream::default();
    root.on_new_connection(&mut s);
    root.on_downstream_data(&mut s, 3);
    root.report_tcp(&h, &mut s, true);
    root.flush(&h);
    let series = tcp_series(&h);
    assert_eq!(series.len(), 3, "opened, closed, received: {series:?}");
    let labels = &series[0].1;
    let get = |k: &str| {
        labels
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap()
    };
    assert_eq!(
        labels.len(),
        23,
        "no response_code / grpc_response_status on TCP metrics"
    );
    assert_eq!(get("reporter"), "destination");
    assert_eq!(get("request_protocol"), "tcp");
    assert_eq!(get("connection_security_policy"), "mutual_tls");
    assert_eq!(
        get("source_principal"),
        "spiffe://cluster.local/ns/prod/sa/productpage"
    );
    // The namespace comes from the peer's SPIFFE id (no exchanged metadata on TCP).
    assert_eq!(get("source_workload_namespace"), "prod");
    assert_eq!(get("source_workload"), "unknown");
    assert_eq!(
        get("destination_principal"),
        "spiffe://cluster.local/ns/default/sa/ratings"
    );
    assert_eq!(get("destination_workload"), "ratings-v1");
    assert_eq!(
        get("destination_service"),
        "ratings.default.svc.cluster.local"
    );
    assert_eq!(get("response_flags"), "-");
    // No header, body or response reads on a TCP stream.
    assert!(
        h.calls
            .borrow()
            .iter()
            .all(|c| !c.starts_with("header") && !c.contains("response.code")),
        "{:?}",
        h.calls.borrow()
    );
}

#[test]
fn client_side_uses_endpoint_metadata_and_overrides_apply() {
    let config = r#"{"metrics": [{"name": "tcp_sent_bytes_total", "drop": true},
        {"dimensions": {"tcp_note": "'x'"}, "tags_to_remove": ["source_cluster"]}]}"#;
    let (h, mut root) = sidecar(2, "productpage-v1", config);
    assert!(root.problems().is_empty(), "{:?}", root.problems());
    h.set(
        &[
            "xds",
            "upstream_host_metadata",
            "filter_metadata",
            "istio",
            "workload",
        ],
        "ratings-v1;default;ratings;v2;east",
    );
    let mut s = Stream::default();
    root.on_new_connection(&mut s);
    root.on_upstream_data(&mut s, 9);
    root.on_downstream_data(&mut s, 4);
    root.report_tcp(&h, &mut s, true);
    root.flush(&h);
    assert_eq!(value(&h, "istio_tcp_sent_bytes_total"), 0, "dropped");
    let values = h.values.borrow();
    let (name, _) = values
        .iter()
        .find(|(n, _)| n.ends_with("istio_tcp_received_bytes_total"))
        .unwrap();
    let (_, labels) = stat_name::extract(name, &h.stats_tags.borrow());
    assert!(
        labels.contains(&("tcp_note".into(), "x".into())),
        "{labels:?}"
    );
    assert!(
        !labels.iter().any(|(k, _)| k == "source_cluster"),
        "{labels:?}"
    );
    let get = |k: &str| {
        labels
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap()
    };
    assert_eq!(get("reporter"), "source");
    assert_eq!(get("destination_workload"), "ratings-v1");
    assert_eq!(get("destination_canonical_revision"), "v2");
    assert_eq!(get("connection_security_policy"), "unknown");
    assert_eq!(get("destination_service"), "unknown");
}

#[test]
fn ticks_serve_cache_expiry_and_tcp_reports() {
    let (_, mut root) = sidecar(1, "r", r#"{"tcp_reporting_duration": "0.2s"}"#);
    assert_eq!(root.tick_period_ms(), 200);
    assert!((0..10).all(|_| root.tick()));
    let (_, root) = sidecar(1, "r", "{}");
    assert_eq!(root.tick_period_ms(), 5000, "Istio's default period");
    let (_, mut root) = sidecar(1, "r", r#"{"tcp_reporting_duration": "60s"}"#);
    assert_eq!(
        root.tick_period_ms(),
        30_000,
        "the cache's period bounds the tick"
    );
    assert_eq!(
        (0..4).map(|_| root.tick()).collect::<Vec<_>>(),
        [false, true, false, true]
    );
}

#[test]
fn http_streams_are_not_tcp() {
    let (h, mut root) = sidecar(1, "r", "{}");
    let mut s = Stream::default();
    root.on_downstream_data(&mut s, 10);
    root.report_tcp(&h, &mut s, true);
    assert!(!s.is_tcp() && !s.tcp_open());
    root.flush(&h);
    assert!(tcp_series(&h).is_empty());
}

/// `meshstats mixer import`'s shape of Istio 1.0's `tcpbytesent`: the standard metric with
/// Mixer's labels, each a Mixer expression evaluated per TCP report; no metric keeps a
/// standard service label, yet `destination.service.*` are the resolved service.
#[test]
fn mixer_shaped_tcp_metric_evaluates_its_expressions_per_report() {
    let config = r#"{"metrics": [{"name": "tcp_sent_bytes_total",
        "tags_to_remove": ["source_canonical_service", "source_canonical_revision",
          "source_cluster", "destination_canonical_service", "destination_canonical_revision",
          "destination_cluster", "request_protocol", "response_flags", "source_principal",
          "destination_principal", "destination_service_namespace",
          "source_app", "destination_app", "source_version", "destination_version",
          "source_workload_namespace", "destination_workload_namespace"],
        "dimensions": {
          "reporter": "conditional((context.reporter.kind | \"inbound\") == \"outbound\", \"source\", \"destination\")",
          "source_workload": "source.workload.name | \"unknown\"",
          "destination_workload": "destination.workload.name | \"unknown\"",
          "destination_service_name": "destination.service.name | \"unknown\"",
          "destination_service": "destination.service.host | \"unknown\"",
          "conn_protocol": "context.protocol",
          "connection_security_policy": "conditional((context.reporter.kind | \"inbound\") == \"outbound\", \"unknown\", conditional(connection.mtls | false, \"mutual_tls\", \"none\"))",
          "source_ip": "source.ip | \"0.0.0.0\""}},
        {"name": "tcp_received_bytes_total", "drop": true},
        {"name": "tcp_connections_opened_total", "drop": true},
        {"name": "tcp_connections_closed_total", "drop": true}]}"#;
    let (h, mut root) = sidecar(2, "productpage-v1", config);
    assert!(root.problems().is_empty(), "{:?}", root.problems());
    h.set(
        &[
            "xds",
            "upstream_host_metadata",
            "filter_metadata",
            "istio",
            "workload",
        ],
        "ratings-v1;default;ratings;v2;east",
    );
    h.set(&["source", "address"], "10.0.0.7:41362");
    h.set(
        &["xds", "cluster_name"],
        "outbound|9080||ratings.default.svc.cluster.local",
    );
    h.set(
        &[
            "xds",
            "cluster_metadata",
            "filter_metadata",
            "istio",
            "services",
            "0",
        ],
        decode::encode_pairs(&[
            ("host", "ratings.default.svc.cluster.local"),
            ("name", "ratings"),
            ("namespace", "default"),
        ]),
    );
    let mut s = Stream::default();
    root.on_new_connection(&mut s);
    root.on_upstream_data(&mut s, 9);
    root.report_tcp(&h, &mut s, false);
    root.on_upstream_data(&mut s, 5);
    root.report_tcp(&h, &mut s, true);
    root.flush(&h);
    let sent: Vec<_> = tcp_series(&h)
        .into_iter()
        .filter(|(m, _, _)| m == "istio_tcp_sent_bytes_total")
        .collect();
    assert_eq!(sent.len(), 1, "one series for both reports: {sent:?}");
    let mut labels = sent[0].1.clone();
    labels.sort();
    let want: Labels = [
        ("conn_protocol", "tcp"),
        ("connection_security_policy", "unknown"),
        // From the service the standard labels resolve, though no label here is theirs.
        ("destination_service", "ratings.default.svc.cluster.local"),
        ("destination_service_name", "ratings"),
        ("destination_workload", "ratings-v1"),
        ("reporter", "source"),
        ("source_ip", "10.0.0.7"),
        ("source_workload", "productpage-v1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(labels, want);
    assert_eq!(sent[0].2, 14);
}
