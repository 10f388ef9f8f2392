use super::*;
use crate::attributes::ClusterService;

fn node(workload: &str, ns: &str, labels: &[(&str, &str)]) -> PeerNode {
    let mut n = PeerNode {
        workload_name: workload.into(),
        namespace: ns.into(),
        cluster_id: "Kubernetes".into(),
        ..Default::default()
    };
    for (k, v) in labels {
        n.set_label(k, v);
    }
    n
}

fn productpage() -> PeerNode {
    node(
        "productpage-v1",
        "default",
        &[
            ("app", "productpage"),
            ("version", "v1"),
            (CANONICAL_NAME_LABEL, "productpage"),
            (CANONICAL_REVISION_LABEL, "v1"),
        ],
    )
}

fn ratings() -> PeerNode {
    node(
        "ratings-v1",
        "bookinfo",
        &[("app", "ratings"), ("version", "v1")],
    )
}

fn dims(cx: &Context<'_>, req: &RequestAttributes) -> Vec<(&'static str, String)> {
    let mut d = Dimensions::default();
    // Fill twice: the buffers are reused, so stale values must never leak into the next request.
    d.fill(
        cx,
        &RequestAttributes {
            host: "stale".into(),
            response_code: 999,
            grpc: true,
            ..Default::default()
        },
    );
    d.fill(cx, req);
    STANDARD_LABELS
        .iter()
        .copied()
        .zip(d.values.iter().cloned())
        .collect()
}

fn get(d: &[(&str, String)], k: &str) -> String {
    d.iter()
        .find(|(n, _)| *n == k)
        .map(|(_, v)| v.clone())
        .unwrap()
}

#[test]
fn server_side_with_exchanged_client_and_cluster_service() {
    let (local, peer) = (ratings(), productpage());
    let cx = Context {
        reporter: Reporter::Destination,
        direction: Direction::Inbound,
        local: NodeView::with_labels(&local),
        peer: Some(NodeView::peer(&peer)),
        use_host_header: true,
    };
    let req = RequestAttributes {
        host: "ratings:9080".into(),
        service: Some(ClusterService {
            host: "ratings.bookinfo.svc.cluster.local".into(),
            name: "ratings".into(),
            namespace: "bookinfo".into(),
        }),
        response_code: 200,
        mtls: Some(false),
        ..Default::default()
    };
    let want: Vec<(&str, String)> = [
        ("reporter", "destination"),
        ("source_workload", "productpage-v1"),
        ("source_workload_namespace", "default"),
        ("source_principal", "unknown"),
        ("source_app", "productpage"),
        ("source_version", "v1"),
        ("source_canonical_service", "productpage"),
        ("source_canonical_revision", "v1"),
        ("source_cluster", "Kubernetes"),
        ("destination_workload", "ratings-v1"),
        ("destination_workload_namespace", "bookinfo"),
        ("destination_principal", "unknown"),
        ("destination_app", "ratings"),
        ("destination_version", "v1"),
        ("destination_service", "ratings.bookinfo.svc.cluster.local"),
        ("destination_service_name", "ratings"),
        ("destination_service_namespace", "bookinfo"),
        ("destination_canonical_service", "ratings-v1"),
        ("destination_canonical_revision", "latest"),
        ("destination_cluster", "Kubernetes"),
        ("request_protocol", "http"),
        ("response_flags", "-"),
        ("connection_security_policy", "none"),
        ("response_code", "200"),
        ("grpc_response_status", ""),
    ]
    .iter()
    .map(|(k, v)| (*k, v.to_string()))
    .collect();
    assert_eq!(dims(&cx, &req), want);
}

#[test]
fn client_side_without_peer_is_unknown_with_latest_revision() {
    let local = productpage();
    let cx = Context {
        reporter: Reporter::Source,
        direction: Direction::Outbound,
        local: NodeView::with_labels(&local),
        peer: None,
        use_host_header: true,
    };
    let req = RequestAttributes {
        host: "ratings:9080".into(),
        response_flags: 1 << 5,
        response_code: 503,
        ..Default::default()
    };
    let d = dims(&cx, &req);
    assert_eq!(get(&d, "reporter"), "source");
    assert_eq!(get(&d, "source_workload"), "productpage-v1");
    assert_eq!(get(&d, "source_canonical_revision"), "v1");
    for k in [
        "destination_workload",
        "destination_app",
        "destination_canonical_service",
        "destination_service_namespace",
        "destination_cluster",
    ] {
        assert_eq!(get(&d, k), "unknown", "{k}");
    }
    assert_eq!(get(&d, "destination_canonical_revision"), "latest");
    assert_eq!(get(&d, "destination_service"), "ratings:9080");
    assert_eq!(get(&d, "destination_service_name"), "ratings:9080");
    assert_eq!(get(&d, "connection_security_policy"), "unknown");
    assert_eq!(get(&d, "response_flags"), "UF");
    assert_eq!(get(&d, "response_code"), "503");
}

#[test]
fn host_header_fallback_disabled() {
    let local = ratings();
    let mut with_canonical = ratings();
    with_canonical.set_label(CANONICAL_NAME_LABEL, "ratings-svc");
    let req = RequestAttributes {
        host: "evil.example".into(),
        ..Default::default()
    };
    let out = |local: &PeerNode, direction| {
        let cx = Context {
            reporter: Reporter::Source,
            direction,
            local: NodeView::with_labels(local),
            peer: None,
            use_host_header: false,
        };
        let d = dims(&cx, &req);
        (
            get(&d, "destination_service"),
            get(&d, "destination_service_name"),
        )
    };
    assert_eq!(
        out(&local, Direction::Outbound),
        ("unknown".into(), "unknown".into())
    );
    // Server side: the local canonical service name, else unknown.
    assert_eq!(
        out(&local, Direction::Inbound),
        ("unknown".into(), "unknown".into())
    );
    assert_eq!(
        out(&with_canonical, Direction::Inbound),
        ("ratings-svc".into(), "ratings-svc".into())
    );
}

#[test]
fn special_routes_and_clusters_name_the_service() {
    let local = productpage();
    let cx = Context {
        reporter: Reporter::Source,
        direction: Direction::Outbound,
        local: NodeView::with_labels(&local),
        peer: None,
        use_host_header: true,
    };
    for (route, cluster, want) in [
        ("block_all", "x", "BlackHoleCluster"),
        ("allow_any", "x", "PassthroughCluster"),
        ("", "PassthroughCluster", "PassthroughCluster"),
        (
            "",
            "InboundPassthroughClusterIpv6",
            "InboundPassthroughClusterIpv6",
        ),
    ] {
        let req = RequestAttributes {
            host: "h".into(),
            route_name: route.into(),
            cluster_name: cluster.into(),
            service: Some(ClusterService {
                name: "ignored".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let d = dims(&cx, &req);
        assert_eq!(get(&d, "destination_service_name"), want);
        assert_eq!(get(&d, "destination_service"), "h");
    }
}

#[test]
fn peer_without_labels_and_fallback_node_with_labels() {
    let local = productpage();
    let bare = PeerNode {
        workload_name: "w".into(),
        namespace: "n".into(),
        ..Default::default()
    };
    let d = dims(
        &Context {
            reporter: Reporter::Source,
            direction: Direction::Outbound,
            local: NodeView::with_labels(&local),
            peer: Some(NodeView::peer(&bare)),
            use_host_header: true,
        },
        &RequestAttributes::default(),
    );
    // Istio: no labels at all → no canonical service (unknown), revision latest.
    assert_eq!(get(&d, "destination_canonical_service"), "unknown");
    assert_eq!(get(&d, "destination_service_namespace"), "n");
    let fallback = PeerNode::from_istio_workload("ratings-v1;default;;;Kubernetes").unwrap();
    let d = dims(
        &Context {
            reporter: Reporter::Source,
            direction: Direction::Outbound,
            local: NodeView::with_labels(&local),
            peer: Some(NodeView::with_labels(&fallback)),
            use_host_header: true,
        },
        &RequestAttributes::default(),
    );
    // A label set without a canonical name → the workload name.
    assert_eq!(get(&d, "destination_canonical_service"), "ratings-v1");
    assert_eq!(get(&d, "destination_canonical_revision"), "latest");
    assert_eq!(get(&d, "response_code"), "0");
}

#[test]
fn grpc_status_and_waypoint_and_mtls() {
    let local = ratings();
    let cx = Context {
        reporter: Reporter::Waypoint,
        direction: Direction::Inbound,
        local: NodeView::with_labels(&local),
        peer: None,
        use_host_header: true,
    };
    let d = dims(
        &cx,
        &RequestAttributes {
            grpc: true,
            grpc_status: Some(7),
            mtls: Some(true),
            response_code: 200,
            ..Default::default()
        },
    );
    assert_eq!(get(&d, "reporter"), "waypoint");
    assert_eq!(get(&d, "request_protocol"), "grpc");
    assert_eq!(get(&d, "grpc_response_status"), "7");
    assert_eq!(get(&d, "connection_security_policy"), "mutual_tls");
    let d = dims(
        &cx,
        &RequestAttributes {
            grpc: true,
            ..Default::default()
        },
    );
    assert_eq!(get(&d, "grpc_response_status"), "2");
}
