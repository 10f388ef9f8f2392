use super::*;
use crate::host::decode;
use crate::host::fake::FakeHost;
use crate::peer::{METADATA_HEADER, METADATA_ID_HEADER};
use crate::plugin::{Root, Stream};
use crate::stat_name;

const PRODUCTPAGE_ID: &str = "spiffe://cluster.local/ns/default/sa/productpage";

/// The ratings-v1 sidecar's server side (or client side: `direction` 2).
fn sidecar(direction: i64, config: &str) -> (FakeHost, Root) {
    let h = FakeHost::default();
    h.set(
        &["xds", "node", "id"],
        "sidecar~127.0.0.1~ratings-v1-0.default",
    );
    h.set(&["xds", "node", "metadata", "NAMESPACE"], "default");
    h.set(&["xds", "node", "metadata", "WORKLOAD_NAME"], "ratings-v1");
    h.set(&["xds", "node", "metadata", "SERVICE_ACCOUNT"], "ratings");
    h.set(
        &["xds", "node", "metadata", "LABELS"],
        decode::encode_pairs(&[("app", "ratings"), ("version", "v1")]),
    );
    h.set_int(&["xds", "listener_direction"], direction);
    let root = Root::configure(&h, config);
    *h.stats_tags.borrow_mut() = root.metrics().stats_tags();
    (h, root)
}

fn node(workload: &str, namespace: &str, account: &str) -> PeerNode {
    let mut n = PeerNode {
        name: format!("{workload}-0"),
        workload_name: workload.into(),
        namespace: namespace.into(),
        service_account: account.into(),
        cluster_id: "Kubernetes".into(),
        ..PeerNode::default()
    };
    n.set_label("app", workload);
    n
}

fn admin_console() -> PeerNode {
    node("admin-console", "kube-system", "admin")
}

/// The connection: plaintext, or mTLS with a client certificate for `principal`.
fn connection(h: &FakeHost, principal: Option<&str>) {
    h.set_bool(&["connection", "mtls"], principal.is_some());
    if let Some(p) = principal {
        h.set(&["connection", "uri_san_peer_certificate"], p);
    }
}

/// What one request through the server side did: the request headers the app got and the
/// response headers the caller got.
struct Seen {
    app: Vec<String>,
    caller: Vec<String>,
}

/// One request carrying `value` as its `x-envoy-peer-metadata`.
fn request_with(h: &FakeHost, root: &mut Root, value: &str) -> Seen {
    let mut s = Stream::default();
    {
        let mut headers = h.request_headers.borrow_mut();
        headers.clear();
        headers.insert(":authority".into(), "ratings:9080".into());
        headers.insert(METADATA_HEADER.into(), value.into());
        headers.insert(METADATA_ID_HEADER.into(), "forged-id".into());
    }
    h.response_headers.borrow_mut().clear();
    h.response_headers
        .borrow_mut()
        .insert(":status".into(), "200".into());
    root.on_request_headers(h, &mut s);
    root.on_response_headers(h, &mut s);
    root.on_log(h, &mut s);
    let names = |m: &std::collections::BTreeMap<String, String>| m.keys().cloned().collect();
    Seen {
        app: names(&h.request_headers.borrow()),
        caller: names(&h.response_headers.borrow()),
    }
}

fn request(h: &FakeHost, root: &mut Root, claim: &PeerNode) -> Seen {
    request_with(h, root, &claim.to_header_value())
}

/// Every `istio_requests_total` series: labels → value.
fn requests_total(h: &FakeHost) -> Vec<(Vec<(String, String)>, i64)> {
    h.values
        .borrow()
        .iter()
        .filter(|(n, _)| n.ends_with("istio_requests_total"))
        .map(|(n, v)| (stat_name::extract(n, &h.stats_tags.borrow()).1, *v))
        .collect()
}

/// The source labels of the only `istio_requests_total` series, and its value.
fn source_labels(h: &FakeHost) -> (Vec<(String, String)>, i64) {
    let series = requests_total(h);
    assert_eq!(series.len(), 1, "{series:?}");
    let (labels, n) = series.into_iter().next().unwrap();
    let source = labels
        .into_iter()
        .filter(|(k, _)| k.starts_with("source_") || k == "connection_security_policy")
        .collect();
    (source, n)
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

fn warnings(h: &FakeHost) -> Vec<String> {
    h.logs
        .borrow()
        .iter()
        .filter(|(l, _)| *l == LogLevel::Warn)
        .map(|(_, m)| m.clone())
        .collect()
}

#[test]
fn any_believes_a_plaintext_caller_as_istio_does() {
    let (h, mut root) = sidecar(1, "{}");
    connection(&h, None);
    for _ in 0..3 {
        let seen = request(&h, &mut root, &admin_console());
        assert_eq!(seen.app, [":authority"]);
        assert_eq!(
            seen.caller,
            [":status", METADATA_HEADER, METADATA_ID_HEADER]
        );
    }
    root.flush(&h);
    let (source, n) = source_labels(&h);
    assert_eq!(n, 3);
    assert_eq!(
        source,
        labels(&[
            ("source_workload", "admin-console"),
            ("source_workload_namespace", "kube-system"),
            ("source_principal", "unknown"),
            ("source_app", "admin-console"),
            ("source_version", "unknown"),
            ("source_canonical_service", "admin-console"),
            ("source_canonical_revision", "latest"),
            ("source_cluster", "Kubernetes"),
            ("connection_security_policy", "none"),
        ])
    );
    assert_eq!(h.value(PEER_REJECTED_METRIC), None);
    assert!(warnings(&h).is_empty());
    // What the caller got back is who this proxy is.
    let back = h.response_headers.borrow()[METADATA_HEADER].clone();
    let local = PeerNode::from_header_value(&back).unwrap();
    assert_eq!(
        (local.workload_name.as_str(), local.service_account.as_str()),
        ("ratings-v1", "ratings")
    );
}

#[test]
fn mtls_only_ignores_a_plaintext_caller_counts_and_logs_once() {
    let (h, mut root) = sidecar(1, r#"{"peer_metadata_trust": "MTLS_ONLY"}"#);
    connection(&h, None);
    for _ in 0..4 {
        let seen = request(&h, &mut root, &admin_console());
        assert_eq!(
            seen.app,
            [":authority"],
            "the app never sees exchange headers"
        );
        assert_eq!(seen.caller, [":status"], "a stranger learns nothing");
    }
    root.flush(&h);
    let (source, n) = source_labels(&h);
    assert_eq!(n, 4);
    assert_eq!(
        source,
        labels(&[
            ("source_workload", "unknown"),
            ("source_workload_namespace", "unknown"),
            ("source_principal", "unknown"),
            ("source_app", "unknown"),
            ("source_version", "unknown"),
            ("source_canonical_service", "unknown"),
            ("source_canonical_revision", "latest"),
            ("source_cluster", "unknown"),
            ("connection_security_policy", "none"),
        ])
    );
    assert_eq!(h.value(PEER_REJECTED_METRIC), Some(4));
    assert_eq!(
        warnings(&h),
        [
            "meshstats: x-envoy-peer-metadata from a caller without a client certificate \
          (`peer_metadata_trust`: MTLS_ONLY) is not believed: the caller is labelled from its \
          certificate alone and gets no exchange headers back; further rejections are counted \
          in meshstats_peer_metadata_rejected_total, not logged"
        ]
    );
    // Never decoded, so never cached.
    assert_eq!(root.peers.len(), 0);
}

#[test]
fn a_header_consistent_with_the_certificate_is_believed_in_both_modes() {
    for config in ["{}", r#"{"peer_metadata_trust": "MTLS_ONLY"}"#] {
        let (h, mut root) = sidecar(1, config);
        connection(&h, Some(PRODUCTPAGE_ID));
        // A header may leave out the service account (Istio's proxies do): not a contradiction.
        for claim in [
            node("productpage-v1", "default", "productpage"),
            node("productpage-v1", "default", ""),
        ] {
            let seen = request(&h, &mut root, &claim);
            assert_eq!(seen.app, [":authority"]);
            assert_eq!(
                seen.caller,
                [":status", METADATA_HEADER, METADATA_ID_HEADER]
            );
        }
        root.flush(&h);
        let (source, n) = source_labels(&h);
        assert_eq!(n, 2, "{config}");
        assert_eq!(
            source,
            labels(&[
                ("source_workload", "productpage-v1"),
                ("source_workload_namespace", "default"),
                ("source_principal", PRODUCTPAGE_ID),
                ("source_app", "productpage-v1"),
                ("source_version", "unknown"),
                ("source_canonical_service", "productpage-v1"),
                ("source_canonical_revision", "latest"),
                ("source_cluster", "Kubernetes"),
                ("connection_security_policy", "mutual_tls"),
            ]),
            "{config}"
        );
        assert_eq!(h.value(PEER_REJECTED_METRIC), None, "{config}");
        assert!(warnings(&h).is_empty(), "{config}");
    }
}

#[test]
fn a_header_contradicting_the_certificate_is_not_believed_in_both_modes() {
    for config in ["{}", r#"{"peer_metadata_trust": "MTLS_ONLY"}"#] {
        let (h, mut root) = sidecar(1, config);
        connection(&h, Some(PRODUCTPAGE_ID));
        for claim in [
            admin_console(),
            admin_console(),
            // Only the service account is wrong.
            node("productpage-v1", "default", "admin"),
        ] {
            let seen = request(&h, &mut root, &claim);
            assert_eq!(seen.app, [":authority"]);
            assert_eq!(seen.caller, [":status"], "{config}");
        }
        root.flush(&h);
        let (source, n) = source_labels(&h);
        assert_eq!(n, 3, "{config}");
        // The certificate's identity only.
        assert_eq!(
            source,
            labels(&[
                ("source_workload", "unknown"),
                ("source_workload_namespace", "default"),
                ("source_principal", PRODUCTPAGE_ID),
                ("source_app", "unknown"),
                ("source_version", "unknown"),
                ("source_canonical_service", "unknown"),
                ("source_canonical_revision", "latest"),
                ("source_cluster", "unknown"),
                ("connection_security_policy", "mutual_tls"),
            ]),
            "{config}"
        );
        assert_eq!(h.value(PEER_REJECTED_METRIC), Some(3), "{config}");
        assert_eq!(
            warnings(&h),
            [format!(
                "meshstats: x-envoy-peer-metadata claims namespace \"kube-system\", but the \
                 caller's certificate \"{PRODUCTPAGE_ID}\" says \"default\" is not believed: \
                 the caller is labelled from its certificate alone and gets no exchange headers \
                 back; further rejections are counted in \
                 meshstats_peer_metadata_rejected_total, not logged"
            )],
            "{config}"
        );
    }
}

#[test]
fn only_a_service_account_contradiction_names_the_service_account() {
    let (h, mut root) = sidecar(1, "{}");
    connection(&h, Some(PRODUCTPAGE_ID));
    request(&h, &mut root, &node("productpage-v1", "default", "admin"));
    let w = warnings(&h);
    assert_eq!(w.len(), 1);
    assert!(
        w[0].starts_with(&format!(
            "meshstats: x-envoy-peer-metadata claims service account \"admin\", but the \
             caller's certificate \"{PRODUCTPAGE_ID}\" says \"productpage\" is not believed"
        )),
        "{w:?}"
    );
}

#[test]
fn contradiction_rules() {
    let ns_only = |ns: &str| node("w", ns, "");
    let check = |peer: &PeerNode, principal: &str| contradiction(peer, principal).map(|c| c.what);
    assert_eq!(check(&ns_only("default"), PRODUCTPAGE_ID), None);
    assert_eq!(check(&ns_only(""), PRODUCTPAGE_ID), None);
    assert_eq!(check(&ns_only("prod"), PRODUCTPAGE_ID), Some("namespace"));
    assert_eq!(
        check(&node("w", "", "x"), PRODUCTPAGE_ID),
        Some("service account")
    );
    // Namespace first when both are wrong.
    assert_eq!(
        check(&node("w", "prod", "x"), PRODUCTPAGE_ID),
        Some("namespace")
    );
    // A certificate without an Istio SPIFFE id (or no certificate) says nothing to contradict.
    assert_eq!(check(&ns_only("prod"), "spiffe://td/workload/x"), None);
    assert_eq!(check(&ns_only("prod"), ""), None);
    assert_eq!(
        check(&node("w", "default", "x"), "spiffe://td/ns/default/sa/"),
        None
    );
}

#[test]
fn long_or_hostile_claims_are_quoted_short_and_escaped() {
    let (h, mut root) = sidecar(1, "{}");
    connection(&h, Some(PRODUCTPAGE_ID));
    let claim = node("w", &format!("evil\n{}", "n".repeat(50_000)), "");
    request(&h, &mut root, &claim);
    let w = warnings(&h);
    assert_eq!(w.len(), 1);
    assert!(!w[0].contains('\n'), "{}", w[0]);
    assert!(
        w[0].contains(&format!(
            "claims namespace \"evil\\n{}\", but",
            "n".repeat(59)
        )),
        "{}",
        w[0]
    );
    assert!(w[0].len() < 500, "{}", w[0].len());
    assert_eq!(quoted("ünï"), "ünï");
    assert_eq!(quoted(&"é".repeat(100)), "é".repeat(64));
}

#[test]
fn undecodable_headers_are_stripped_and_not_answered_or_counted() {
    let (h, mut root) = sidecar(1, "{}");
    connection(&h, Some(PRODUCTPAGE_ID));
    for value in ["!!not base64!!", "CikK", &"A".repeat(60_000), ""] {
        let seen = request_with(&h, &mut root, value);
        assert_eq!(seen.app, [":authority"], "{value:.20}");
        assert_eq!(seen.caller, [":status"], "{value:.20}");
    }
    root.flush(&h);
    let (source, n) = source_labels(&h);
    assert_eq!(n, 4);
    assert_eq!(
        source
            .iter()
            .find(|(k, _)| k == "source_workload")
            .unwrap()
            .1,
        "unknown"
    );
    assert_eq!(
        source
            .iter()
            .find(|(k, _)| k == "source_principal")
            .unwrap()
            .1,
        PRODUCTPAGE_ID
    );
    assert_eq!(h.value(PEER_REJECTED_METRIC), None);
}

#[test]
fn the_client_side_replaces_a_callers_headers_without_reading_them() {
    let (h, mut root) = sidecar(2, r#"{"peer_metadata_trust": "MTLS_ONLY"}"#);
    let mut s = Stream::default();
    {
        let mut headers = h.request_headers.borrow_mut();
        headers.insert(METADATA_HEADER.into(), admin_console().to_header_value());
        headers.insert(METADATA_ID_HEADER.into(), "forged-id".into());
    }
    root.on_request_headers(&h, &mut s);
    let sent = h.request_headers.borrow().clone();
    let ours = PeerNode::from_header_value(&sent[METADATA_HEADER]).unwrap();
    assert_eq!(ours.workload_name, "ratings-v1");
    assert_eq!(
        sent[METADATA_ID_HEADER],
        "sidecar~127.0.0.1~ratings-v1-0.default"
    );
    assert_eq!(root.peers.len(), 0, "a caller's header is not even decoded");
    assert!(!h
        .calls
        .borrow()
        .iter()
        .any(|c| c.starts_with("property connection.")));
    // The upstream's, on the way back, are read and removed.
    h.response_headers
        .borrow_mut()
        .insert(METADATA_HEADER.into(), admin_console().to_header_value());
    root.on_response_headers(&h, &mut s);
    assert!(h.response_headers.borrow().is_empty());
    assert_eq!(root.peers.len(), 1);
    assert_eq!(h.value(PEER_REJECTED_METRIC), None);
}

/// The certificate is read once per request, at request-header time, and stream end reuses it.
#[test]
fn the_certificate_is_read_once_per_request() {
    for principal in [None, Some(PRODUCTPAGE_ID)] {
        let (h, mut root) = sidecar(1, "{}");
        connection(&h, principal);
        h.reads.borrow_mut().clear();
        request(&h, &mut root, &node("productpage-v1", "default", ""));
        let reads = h.reads.borrow().clone();
        let connection: Vec<&str> = reads
            .iter()
            .filter(|r| r.starts_with("connection."))
            .map(String::as_str)
            .collect();
        let expected: &[&str] = match principal {
            None => &["connection.mtls", "connection.uri_san_local_certificate"],
            Some(_) => &[
                "connection.mtls",
                "connection.uri_san_peer_certificate",
                "connection.uri_san_local_certificate",
            ],
        };
        assert_eq!(connection, expected);
    }
}
