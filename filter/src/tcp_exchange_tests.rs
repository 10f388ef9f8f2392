use super::*;
use crate::host::fake::FakeHost;
use crate::peer::frame::encode_frame;
use crate::peer::PeerNode;
use crate::stat_name;

const ON: &str = r#"{"tcp_metadata_exchange": true}"#;
const CLIENT_SAN: &str = "spiffe://cluster.local/ns/default/sa/productpage";
const SERVER_SAN: &str = "spiffe://cluster.local/ns/default/sa/ratings";

/// A sidecar that edits data; direction 1 inbound (server), 2 outbound (client). Both see an
/// mTLS connection between the two SPIFFE ids.
fn sidecar(direction: i64, workload: &str, app: &str, config: &str) -> (FakeHost, Root) {
    let h = FakeHost::editing_data();
    h.set(&["xds", "node", "id"], format!("sidecar~{workload}"));
    h.set(&["xds", "node", "metadata", "NAMESPACE"], "default");
    h.set(&["xds", "node", "metadata", "WORKLOAD_NAME"], workload);
    h.set(&["xds", "node", "metadata", "CLUSTER_ID"], "Kubernetes");
    h.set(
        &["xds", "node", "metadata", "LABELS"],
        decode::encode_pairs(&[("app", app), ("version", "v1")]),
    );
    h.set_int(&["xds", "listener_direction"], direction);
    h.set_bool(&["connection", "mtls"], true);
    let (peer, local) = if direction == 1 {
        (CLIENT_SAN, SERVER_SAN)
    } else {
        (SERVER_SAN, CLIENT_SAN)
    };
    h.set(&["connection", "uri_san_peer_certificate"], peer);
    h.set(&["connection", "uri_san_local_certificate"], local);
    h.set(&["upstream", "uri_san_peer_certificate"], peer);
    h.set(&["upstream", "uri_san_local_certificate"], local);
    let root = Root::configure(&h, config);
    assert!(root.problems().is_empty(), "{:?}", root.problems());
    *h.stats_tags.borrow_mut() = root.metrics().stats_tags();
    (h, root)
}

/// Bytes arriving on `which`: the callback runs; what it let through (if it continued).
fn feed(
    h: &FakeHost,
    root: &mut Root,
    s: &mut Stream,
    which: Data,
    bytes: &[u8],
) -> Option<Vec<u8>> {
    let size = h.arrive(which, bytes);
    match root.on_data(h, s, which, size, false) {
        DataAction::Continue => Some(h.pass(which)),
        DataAction::Pause => None,
    }
}

type Labels = Vec<(String, String)>;

/// The connection's last report; every `istio_tcp_*` series with its labels.
fn report(h: &FakeHost, root: &mut Root, s: &mut Stream) -> Vec<(String, Labels, i64)> {
    root.report_tcp(h, s, true);
    root.flush(h);
    let tags = h.stats_tags.borrow();
    h.values
        .borrow()
        .iter()
        .filter(|(n, _)| n.contains("istio_tcp_"))
        .map(|(n, v)| {
            let (rest, labels) = stat_name::extract(n, &tags);
            (rest, labels, *v)
        })
        .collect()
}

fn label<'a>(series: &'a [(String, Labels, i64)], key: &str) -> &'a str {
    let labels = &series.first().expect("a series").1;
    labels
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .expect("label")
}

fn bytes(series: &[(String, Labels, i64)], metric: &str) -> i64 {
    series
        .iter()
        .filter(|(m, _, _)| m == metric)
        .map(|(_, _, v)| v)
        .sum()
}

#[test]
fn both_sides_learn_each_other_and_count_only_the_apps_bytes() {
    let (ch, mut client) = sidecar(2, "productpage-v1", "productpage", ON);
    let (sh, mut server) = sidecar(1, "ratings-v1", "ratings", ON);
    let (mut cs, mut ss) = (Stream::default(), Stream::default());
    client.on_new_connection(&mut cs);
    server.on_new_connection(&mut ss);
    let wire = feed(&ch, &mut client, &mut cs, Data::Downstream, b"ping").unwrap();
    let client_frame = encode_frame(&client.local, "sidecar~productpage-v1");
    assert_eq!(wire, [client_frame.as_slice(), b"ping"].concat());
    assert_eq!(
        feed(&sh, &mut server, &mut ss, Data::Downstream, &wire).unwrap(),
        b"ping"
    );
    let wire = feed(&sh, &mut server, &mut ss, Data::Upstream, b"pong!").unwrap();
    let server_frame = encode_frame(&server.local, "sidecar~ratings-v1");
    assert_eq!(wire, [server_frame.as_slice(), b"pong!"].concat());
    assert_eq!(
        feed(&ch, &mut client, &mut cs, Data::Upstream, &wire).unwrap(),
        b"pong!"
    );
    // Later data is not looked at.
    assert_eq!(
        feed(&sh, &mut server, &mut ss, Data::Downstream, b"again").unwrap(),
        b"again"
    );

    let dest = report(&sh, &mut server, &mut ss);
    assert_eq!(label(&dest, "reporter"), "destination");
    assert_eq!(label(&dest, "source_workload"), "productpage-v1");
    assert_eq!(label(&dest, "source_app"), "productpage");
    assert_eq!(label(&dest, "source_version"), "v1");
    assert_eq!(label(&dest, "source_cluster"), "Kubernetes");
    assert_eq!(label(&dest, "source_principal"), CLIENT_SAN);
    assert_eq!(bytes(&dest, "istio_tcp_received_bytes_total"), 9);
    assert_eq!(bytes(&dest, "istio_tcp_sent_bytes_total"), 5);
    let src = report(&ch, &mut client, &mut cs);
    assert_eq!(label(&src, "reporter"), "source");
    assert_eq!(label(&src, "destination_workload"), "ratings-v1");
    assert_eq!(label(&src, "destination_app"), "ratings");
    assert_eq!(label(&src, "destination_version"), "v1");
    assert_eq!(bytes(&src, "istio_tcp_received_bytes_total"), 4);
    assert_eq!(bytes(&src, "istio_tcp_sent_bytes_total"), 5);
}

/// A tick before the peer's frame reports nothing (its labels would be the fallback's); the
/// connection's reports then carry the peer, and `opened` is counted once.
#[test]
fn periodic_reports_wait_for_the_peers_frame() {
    let (ch, mut client) = sidecar(2, "productpage-v1", "productpage", ON);
    let mut cs = Stream::default();
    client.on_new_connection(&mut cs);
    let tick = |h: &FakeHost, root: &mut Root, s: &mut Stream| {
        root.report_tcp(h, s, false);
        root.flush(h);
        h.values
            .borrow()
            .keys()
            .filter(|n| n.contains("istio_tcp_"))
            .count()
    };
    assert_eq!(tick(&ch, &mut client, &mut cs), 0, "no data yet");
    feed(&ch, &mut client, &mut cs, Data::Downstream, b"ping").unwrap();
    assert_eq!(
        tick(&ch, &mut client, &mut cs),
        0,
        "our frame is out, the peer's is not in"
    );
    let (_, server) = sidecar(1, "ratings-v1", "ratings", ON);
    let wire = [
        encode_frame(&server.local, "sidecar~ratings-v1").as_slice(),
        b"po",
    ]
    .concat();
    assert_eq!(
        feed(&ch, &mut client, &mut cs, Data::Upstream, &wire).unwrap(),
        b"po"
    );
    assert!(
        tick(&ch, &mut client, &mut cs) > 0,
        "decided: the tick reports"
    );
    feed(&ch, &mut client, &mut cs, Data::Upstream, b"ng!").unwrap();
    let src = report(&ch, &mut client, &mut cs);
    assert!(src.iter().all(|(_, labels, _)| labels
        .iter()
        .any(|(k, v)| k == "destination_workload" && v == "ratings-v1")));
    assert_eq!(bytes(&src, "istio_tcp_connections_opened_total"), 1);
    assert_eq!(bytes(&src, "istio_tcp_sent_bytes_total"), 5);
    assert_eq!(bytes(&src, "istio_tcp_received_bytes_total"), 4);
}

/// Without the peer ever answering, the last report still comes, with the fallback labels.
#[test]
fn the_last_report_does_not_wait() {
    let (ch, mut client) = sidecar(2, "productpage-v1", "productpage", ON);
    let mut cs = Stream::default();
    client.on_new_connection(&mut cs);
    feed(&ch, &mut client, &mut cs, Data::Downstream, b"ping").unwrap();
    let src = report(&ch, &mut client, &mut cs);
    assert_eq!(bytes(&src, "istio_tcp_connections_opened_total"), 1);
    assert_eq!(bytes(&src, "istio_tcp_connections_closed_total"), 1);
    assert_eq!(bytes(&src, "istio_tcp_received_bytes_total"), 4);
}

#[test]
fn a_frame_split_across_chunks_pauses_with_at_most_four_reads() {
    let (ch, client) = sidecar(2, "productpage-v1", "productpage", ON);
    let (sh, mut server) = sidecar(1, "ratings-v1", "ratings", ON);
    let mut ss = Stream::default();
    server.on_new_connection(&mut ss);
    let frame = encode_frame(&client.local, "c");
    drop(ch);
    sh.calls.borrow_mut().clear();
    let mut out = None;
    for (i, b) in frame.iter().enumerate() {
        out = feed(&sh, &mut server, &mut ss, Data::Downstream, &[*b]);
        assert_eq!(out.is_some(), i + 1 == frame.len(), "byte {i}");
    }
    assert_eq!(out.unwrap(), b"");
    let calls = sh.calls.borrow().clone();
    let reads = calls.iter().filter(|c| c.starts_with("data ")).count();
    assert_eq!(
        reads, 4,
        "one read at the first byte, at 4 (magic), at 8 (length), at the end: {calls:?}"
    );
    assert_eq!(
        ss.downstream_peer.as_ref().unwrap().workload_name,
        "productpage-v1"
    );
    // Partial bytes paused are not counted; the frame is not counted at all.
    assert_eq!(
        bytes(
            &report(&sh, &mut server, &mut ss),
            "istio_tcp_received_bytes_total"
        ),
        0
    );
}

#[test]
fn the_server_side_host_calls_are_pinned() {
    let (_, client) = sidecar(2, "productpage-v1", "productpage", ON);
    let (sh, mut server) = sidecar(1, "ratings-v1", "ratings", ON);
    let mut ss = Stream::default();
    server.on_new_connection(&mut ss);
    let frame = encode_frame(&client.local, "c");
    sh.calls.borrow_mut().clear();
    feed(
        &sh,
        &mut server,
        &mut ss,
        Data::Downstream,
        &[frame.as_slice(), b"x"].concat(),
    )
    .unwrap();
    feed(&sh, &mut server, &mut ss, Data::Upstream, b"y").unwrap();
    for _ in 0..10 {
        feed(&sh, &mut server, &mut ss, Data::Downstream, b"more").unwrap();
        feed(&sh, &mut server, &mut ss, Data::Upstream, b"more").unwrap();
    }
    let n = frame.len();
    let ours = server.local_frame.len();
    assert_eq!(
        *sh.calls.borrow(),
        vec![
            "property xds.listener_direction".to_string(),
            "property connection.mtls".into(),
            format!("data Downstream {}", n + 1),
            format!("replace_data_start Downstream {n} 0"),
            "property connection.uri_san_peer_certificate".into(),
            format!("replace_data_start Upstream 0 {ours}"),
        ]
    );
}

#[test]
fn without_the_option_mtls_or_a_mesh_upstream_nothing_is_touched() {
    let frame = encode_frame(&PeerNode::default(), "x");
    type Breaks = fn(&FakeHost);
    let cases: [(&str, Breaks); 3] = [
        ("{}", |_| {}),
        (ON, |h| h.set_bool(&["connection", "mtls"], false)),
        (ON, |h| {
            h.set(
                &["upstream", "uri_san_peer_certificate"],
                "spiffe://x/not-istio",
            )
        }),
    ];
    for (i, (config, break_it)) in cases.into_iter().enumerate() {
        // Case 2 is the client side (its check is the upstream's certificate).
        let dir = if i == 2 { 2 } else { 1 };
        let (h, mut root) = sidecar(dir, "ratings-v1", "ratings", config);
        break_it(&h);
        let mut s = Stream::default();
        root.on_new_connection(&mut s);
        let first = [frame.as_slice(), b"abc"].concat();
        assert_eq!(
            feed(&h, &mut root, &mut s, Data::Downstream, &first).unwrap(),
            first,
            "case {i}"
        );
        assert_eq!(
            feed(&h, &mut root, &mut s, Data::Upstream, b"de").unwrap(),
            b"de",
            "case {i}"
        );
        let series = report(&h, &mut root, &mut s);
        assert_eq!(
            bytes(&series, "istio_tcp_received_bytes_total"),
            first.len() as i64
        );
        assert_eq!(bytes(&series, "istio_tcp_sent_bytes_total"), 2);
        assert!(
            s.downstream_peer.is_none() && s.upstream_peer.is_none(),
            "case {i}"
        );
    }
}

#[test]
fn a_caller_that_does_not_speak_it_is_passed_through_and_gets_no_frame() {
    let (h, mut root) = sidecar(1, "ratings-v1", "ratings", ON);
    let mut s = Stream::default();
    root.on_new_connection(&mut s);
    // Shorter than a frame header, not the magic: decided at once, never paused.
    assert_eq!(
        feed(&h, &mut root, &mut s, Data::Downstream, b"hi").unwrap(),
        b"hi"
    );
    assert_eq!(
        feed(&h, &mut root, &mut s, Data::Upstream, b"hello").unwrap(),
        b"hello"
    );
    let series = report(&h, &mut root, &mut s);
    assert_eq!(label(&series, "source_workload"), "unknown");
    assert_eq!(label(&series, "source_workload_namespace"), "default");
    assert_eq!(bytes(&series, "istio_tcp_received_bytes_total"), 2);
}

#[test]
fn oversized_malformed_and_forged_frames_are_dropped_and_traffic_flows() {
    // Oversized: its declared length is skipped as it streams by, never buffered.
    let (h, mut root) = sidecar(1, "ratings-v1", "ratings", ON);
    let mut s = Stream::default();
    root.on_new_connection(&mut s);
    let body = MAX_FRAME_BODY + 10;
    let mut head = frame::FRAME_MAGIC.to_be_bytes().to_vec();
    head.extend_from_slice(&(body as u32).to_be_bytes());
    assert_eq!(
        feed(&h, &mut root, &mut s, Data::Downstream, &head).unwrap(),
        b""
    );
    let junk = vec![7u8; body - 3];
    assert_eq!(
        feed(&h, &mut root, &mut s, Data::Downstream, &junk).unwrap(),
        b""
    );
    assert_eq!(
        feed(&h, &mut root, &mut s, Data::Downstream, b"123app").unwrap(),
        b"app"
    );
    // No answer to a caller not believed.
    assert_eq!(
        feed(&h, &mut root, &mut s, Data::Upstream, b"ok").unwrap(),
        b"ok"
    );
    let series = report(&h, &mut root, &mut s);
    assert_eq!(bytes(&series, "istio_tcp_received_bytes_total"), 3);
    assert_eq!(label(&series, "source_workload"), "unknown");
    assert_eq!(h.value(crate::metrics::PEER_REJECTED_METRIC), Some(1));

    // Forged: a namespace its certificate contradicts.
    let (h, mut root) = sidecar(1, "ratings-v1", "ratings", ON);
    let mut s = Stream::default();
    root.on_new_connection(&mut s);
    let liar = PeerNode {
        namespace: "kube-system".into(),
        workload_name: "admin".into(),
        ..PeerNode::default()
    };
    let first = [encode_frame(&liar, "l").as_slice(), b"data"].concat();
    assert_eq!(
        feed(&h, &mut root, &mut s, Data::Downstream, &first).unwrap(),
        b"data"
    );
    assert_eq!(
        feed(&h, &mut root, &mut s, Data::Upstream, b"ok").unwrap(),
        b"ok"
    );
    let series = report(&h, &mut root, &mut s);
    assert_eq!(label(&series, "source_workload"), "unknown");
    assert_eq!(label(&series, "source_workload_namespace"), "default");
    assert_eq!(h.value(crate::metrics::PEER_REJECTED_METRIC), Some(1));
    let logs = h.logs.borrow();
    assert!(
        logs.iter()
            .any(|(_, m)| m.contains("claims namespace \"kube-system\"")),
        "{logs:?}"
    );
}

#[test]
fn a_connection_closed_inside_a_frame_passes_nothing_of_it() {
    let (h, mut root) = sidecar(1, "ratings-v1", "ratings", ON);
    let mut s = Stream::default();
    root.on_new_connection(&mut s);
    let frame = encode_frame(&PeerNode::default(), "x");
    let size = h.arrive(Data::Downstream, &frame[..6]);
    assert_eq!(
        root.on_data(&h, &mut s, Data::Downstream, size, true),
        DataAction::Continue
    );
    assert_eq!(h.pass(Data::Downstream), b"");
}
