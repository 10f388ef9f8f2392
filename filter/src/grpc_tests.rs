use super::*;
use crate::host::decode;
use crate::host::fake::FakeHost;
use crate::labels::STANDARD_LABELS;
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
    h.set_bool(&["connection", "mtls"], false);
    h.set_int(&["response", "code"], 200);
    let root = Root::configure(&h, config);
    *h.stats_tags.borrow_mut() = root.metrics().stats_tags();
    (h, root)
}

fn grpc_request(h: &FakeHost, root: &mut Root, s: &mut Stream) {
    let mut req = h.request_headers.borrow_mut();
    req.insert("content-type".into(), "application/grpc".into());
    req.insert(":authority".into(), "ratings:9080".into());
    drop(req);
    root.on_request_headers(h, s);
}

/// Sets the filter state `grpc_stats` writes, in its string form.
fn counts(h: &FakeHost, req: u64, resp: u64) {
    h.set(&FILTER_STATE, format!("{req},{resp}"));
}

type Labels = Vec<(String, String)>;

fn series(h: &FakeHost, metric: &str) -> Vec<(Labels, i64)> {
    let values = h.values.borrow();
    values
        .iter()
        .filter(|(n, _)| n.ends_with(metric))
        .map(|(n, v)| {
            let (rest, labels) = stat_name::extract(n, &h.stats_tags.borrow());
            assert_eq!(rest, metric);
            (labels, *v)
        })
        .collect()
}

fn value(h: &FakeHost, metric: &str) -> i64 {
    series(h, metric).iter().map(|(_, v)| v).sum()
}

const REQ: &str = "istio_request_messages_total";
const RESP: &str = "istio_response_messages_total";

#[test]
fn decodes_every_form_envoy_gives_the_filter_state() {
    assert_eq!(decode_counts(b"1,2"), Some((1, 2)));
    assert_eq!(decode_counts(b"0,12345"), Some((0, 12345)));
    // FilterObject{request_message_count=1, response_message_count=2}
    assert_eq!(decode_counts(&[0x08, 0x01, 0x10, 0x02]), Some((1, 2)));
    // Only responses (zero fields are not serialized), a multi-byte varint.
    assert_eq!(decode_counts(&[0x10, 0xac, 0x02]), Some((0, 300)));
    // Inside an Any: type_url (field 1) then value (field 2).
    let url = b"type.googleapis.com/envoy.extensions.filters.http.grpc_stats.v3.FilterObject";
    let mut any = vec![0x0a, url.len() as u8];
    any.extend_from_slice(url);
    any.extend_from_slice(&[0x12, 0x04, 0x08, 0x03, 0x10, 0x05]);
    assert_eq!(decode_counts(&any), Some((3, 5)));
    for bad in [
        &b""[..],
        b",",
        b"1",
        b"1,x",
        b"1,2,3",
        &[0x08],
        &[0x00, 0x01],
        &[0x08, 0xff, 0xff],
        &[0x0a, 0x09, 0x01],
    ] {
        assert_eq!(decode_counts(bad), None, "{bad:?}");
    }
}

#[test]
fn plain_http_streams_never_read_the_filter_state() {
    let (h, mut root) = sidecar(1, "ratings-v1", "{}");
    let mut s = Stream::default();
    root.on_request_headers(&h, &mut s);
    assert!(!s.grpc_open());
    root.report_grpc(&h, &mut s);
    root.on_log(&h, &mut s);
    assert!(
        h.reads
            .borrow()
            .iter()
            .all(|r| !r.starts_with("filter_state")),
        "{:?}",
        h.reads.borrow()
    );
    root.flush(&h);
    assert!(series(&h, REQ).is_empty() && series(&h, RESP).is_empty());
}

#[test]
fn server_stream_reports_deltas_while_open_and_exact_totals_at_end() {
    let (h, mut root) = sidecar(1, "ratings-v1", r#"{"tcp_reporting_duration": "0.1s"}"#);
    let mut s = Stream::default();
    grpc_request(&h, &mut root, &mut s);
    assert!(s.grpc_open());
    // No filter state yet (no message): one read, nothing recorded.
    h.calls.borrow_mut().clear();
    root.report_grpc(&h, &mut s);
    assert_eq!(
        *h.calls.borrow(),
        ["property filter_state.envoy.filters.http.grpc_stats"]
    );
    counts(&h, 1, 2);
    root.report_grpc(&h, &mut s);
    root.flush(&h);
    assert_eq!((value(&h, REQ), value(&h, RESP)), (1, 2));
    // Nothing moved: one read, no increment.
    h.calls.borrow_mut().clear();
    root.report_grpc(&h, &mut s);
    assert_eq!(h.calls.borrow().len(), 1, "{:?}", h.calls.borrow());
    counts(&h, 1, 4);
    root.report_grpc(&h, &mut s);
    root.flush(&h);
    assert_eq!((value(&h, REQ), value(&h, RESP)), (1, 4));
    counts(&h, 1, 5);
    h.set_int(&["response", "grpc_status"], 0);
    root.on_log(&h, &mut s);
    assert!(!s.grpc_open());
    root.report_grpc(&h, &mut s);
    root.flush(&h);
    assert_eq!((value(&h, REQ), value(&h, RESP)), (1, 5));
    // One series each, Istio's 20 peer labels.
    root.flush(&h);
    let resp = series(&h, RESP);
    assert_eq!(resp.len(), 1, "{resp:?}");
    let labels = &resp[0].0;
    assert_eq!(
        labels.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        STANDARD_LABELS[..20]
    );
    let get = |k: &str| {
        labels
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap()
    };
    assert_eq!(get("reporter"), "destination");
    assert_eq!(get("destination_workload"), "ratings-v1");
    assert_eq!(get("destination_service"), "ratings:9080");
    root.flush(&h);
    assert_eq!(value(&h, "istio_requests_total"), 1);
}

#[test]
fn client_side_waits_for_response_headers_before_reporting() {
    let (h, mut root) = sidecar(2, "productpage-v1", "{}");
    let mut s = Stream::default();
    grpc_request(&h, &mut root, &mut s);
    counts(&h, 1, 0);
    h.calls.borrow_mut().clear();
    root.report_grpc(&h, &mut s);
    assert!(
        h.calls.borrow().iter().all(|c| !c.contains("filter_state")),
        "{:?}",
        h.calls.borrow()
    );
    h.response_headers
        .borrow_mut()
        .insert(":status".into(), "200".into());
    root.on_response_headers(&h, &mut s);
    counts(&h, 1, 3);
    root.report_grpc(&h, &mut s);
    root.flush(&h);
    assert_eq!((value(&h, REQ), value(&h, RESP)), (1, 3));
    root.on_log(&h, &mut s);
    root.flush(&h);
    assert_eq!((value(&h, REQ), value(&h, RESP)), (1, 3));
    assert_eq!(
        series(&h, RESP)[0]
            .0
            .iter()
            .find(|(k, _)| k == "reporter")
            .unwrap()
            .1,
        "source"
    );
}

#[test]
fn overrides_apply_by_name_and_dropping_both_turns_grpc_work_off() {
    let config = r#"{"metrics": [{"name": "request_messages_total", "drop": true},
        {"name": "response_messages_total", "dimensions": {"grpc_note": "'x'"}, "tags_to_remove": ["source_cluster"]}]}"#;
    let (h, mut root) = sidecar(1, "ratings-v1", config);
    assert!(root.problems().is_empty(), "{:?}", root.problems());
    let mut s = Stream::default();
    grpc_request(&h, &mut root, &mut s);
    counts(&h, 2, 3);
    root.on_log(&h, &mut s);
    root.flush(&h);
    assert_eq!(value(&h, REQ), 0, "dropped");
    let values = h.values.borrow();
    let (name, v) = values.iter().find(|(n, _)| n.ends_with(RESP)).unwrap();
    assert_eq!(*v, 3);
    let (_, labels) = stat_name::extract(name, &h.stats_tags.borrow());
    assert!(
        labels.contains(&("grpc_note".into(), "x".into()))
            && !labels.iter().any(|(k, _)| k == "source_cluster"),
        "{labels:?}"
    );
    drop(values);

    let config = r#"{"metrics": [{"name": "request_messages_total", "drop": true}, {"name": "response_messages_total", "drop": true}]}"#;
    let (h, mut root) = sidecar(1, "ratings-v1", config);
    let mut s = Stream::default();
    grpc_request(&h, &mut root, &mut s);
    counts(&h, 2, 3);
    assert!(!s.grpc_open());
    root.on_log(&h, &mut s);
    assert!(h
        .reads
        .borrow()
        .iter()
        .all(|r| !r.starts_with("filter_state")));
}
