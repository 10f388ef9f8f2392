use super::*;
use crate::attributes::vocabulary::Vocabulary;
use crate::expr::{Resolver, Seg};
use crate::host::fake::FakeHost;
use crate::labels::{Context, Reporter};
use crate::peer::PeerNode;

fn node(workload: &str, app: &str) -> PeerNode {
    let mut n = PeerNode {
        workload_name: workload.into(),
        namespace: "default".into(),
        name: format!("{workload}-1"),
        ..Default::default()
    };
    n.set_label("app", app);
    n
}

/// Resolves `names` (dotted, keys as fields) and fills them for one request.
fn fill_for(
    direction: Direction,
    names: &[&str],
    host: &FakeHost,
    req: &RequestAttributes,
) -> Vec<Option<Attr>> {
    let mut vocab = Vocabulary::default();
    for n in names {
        let chain: Vec<Seg<'_>> = n.split('.').map(Seg::Field).collect();
        vocab.resolve(&chain).unwrap();
    }
    let (local, peer) = (
        node("productpage-v1", "productpage"),
        node("ratings-v1", "ratings"),
    );
    let (local, peer) = (NodeView::with_labels(&local), Some(NodeView::peer(&peer)));
    let mut dims = Dimensions::default();
    let reporter = if direction == Direction::Outbound {
        Reporter::Source
    } else {
        Reporter::Destination
    };
    dims.fill(
        &Context {
            reporter,
            direction,
            local,
            peer,
            use_host_header: true,
        },
        req,
    );
    let mut values = Vec::new();
    fill(
        vocab.slots(),
        &mut values,
        &Inputs {
            host,
            direction,
            local,
            peer,
            req,
            dims: &dims,
        },
    );
    values
}

fn s(v: &str) -> Option<Attr> {
    Some(Attr::Str(v.into()))
}

#[test]
fn sides_follow_the_direction() {
    let h = FakeHost::default();
    let req = RequestAttributes {
        source_principal: "spiffe://a".into(),
        ..Default::default()
    };
    let names = [
        "source.workload.name",
        "destination.workload.name",
        "upstream_peer.app",
        "downstream_peer.app",
        "source.principal",
        "destination.principal",
        "context.reporter.kind",
        "source.uid",
        "destination.workload.uid",
    ];
    assert_eq!(
        fill_for(Direction::Outbound, &names, &h, &req),
        vec![
            s("productpage-v1"),
            s("ratings-v1"),
            s("ratings"),
            None,
            s("spiffe://a"),
            None,
            s("outbound"),
            s("kubernetes://productpage-v1-1.default"),
            s("istio://default/workloads/ratings-v1")
        ]
    );
    assert_eq!(
        fill_for(Direction::Inbound, &names, &h, &req),
        vec![
            s("ratings-v1"),
            s("productpage-v1"),
            None,
            s("ratings"),
            s("spiffe://a"),
            None,
            s("inbound"),
            s("kubernetes://ratings-v1-1.default"),
            s("istio://default/workloads/productpage-v1")
        ]
    );
}

#[test]
fn properties_are_read_once_and_standard_ones_not_again() {
    let h = FakeHost::default();
    h.set(&["request", "useragent"], "kube-probe/1.28");
    h.set_int(&["request", "size"], 77);
    h.request_headers
        .borrow_mut()
        .insert("x-user".into(), "alice".into());
    let req = RequestAttributes {
        response_code: 503,
        duration_ns: 1_500_000,
        cluster_name: "c".into(),
        ..Default::default()
    };
    h.reads.borrow_mut().clear();
    let got = fill_for(
        Direction::Inbound,
        &[
            "request.useragent",
            "request.size",
            "request.headers.x-user",
            "response.code",
            "response.duration",
            "xds.cluster_name",
            "request.referer",
            "destination.service.name",
        ],
        &h,
        &req,
    );
    assert_eq!(
        got,
        vec![
            s("kube-probe/1.28"),
            Some(Attr::Int(77)),
            s("alice"),
            Some(Attr::Int(503)),
            Some(Attr::Duration(1_500_000)),
            s("c"),
            None,
            None
        ]
    );
    assert_eq!(
        *h.reads.borrow(),
        ["request.useragent", "request.size", "request.referer"],
        "standard attributes come from RequestAttributes"
    );
}

#[test]
fn response_flags_short_reuses_the_standard_read_or_reads_once() {
    let h = FakeHost::default();
    h.set_int(&["response", "flags"], (1 << 5) | (1 << 15));
    // The standard labels read the flags already: no second read.
    let req = RequestAttributes {
        response_flags: 1 << 1,
        ..Default::default()
    };
    assert_eq!(
        fill_for(Direction::Inbound, &["response.flags_short"], &h, &req),
        vec![s("UH")]
    );
    assert!(h.reads.borrow().is_empty());
    let req = RequestAttributes {
        needs: crate::attributes::Needs::NONE,
        ..Default::default()
    };
    assert_eq!(
        fill_for(
            Direction::Inbound,
            &["response.flags_short", "upstream.local_address"],
            &h,
            &req
        ),
        vec![s("UF,URX"), None]
    );
    assert_eq!(
        *h.reads.borrow(),
        ["response.flags", "upstream.local_address"]
    );
}

#[test]
fn fill_some_reads_only_the_listed_slots() {
    let h = FakeHost::default();
    h.set(&["request", "method"], "GET");
    h.set(&["request", "path"], "/x");
    let mut vocab = Vocabulary::default();
    for n in ["request.method", "request.path"] {
        let chain: Vec<Seg<'_>> = n.split('.').map(Seg::Field).collect();
        vocab.resolve(&chain).unwrap();
    }
    let (req, dims, local) = (
        RequestAttributes::default(),
        Dimensions::default(),
        node("a", "a"),
    );
    let inputs = Inputs {
        host: &h,
        direction: Direction::Inbound,
        local: NodeView::with_labels(&local),
        peer: None,
        req: &req,
        dims: &dims,
    };
    let mut values = vec![s("stale")];
    reset(vocab.slots(), &mut values);
    assert_eq!(values, vec![None, None]);
    fill_some(vocab.slots(), &mut values, &[1], &inputs);
    assert_eq!(values, vec![None, s("/x")]);
    assert_eq!(*h.reads.borrow(), ["request.path"]);
}

#[test]
fn mixer_ip_attributes_are_the_address_without_its_port() {
    let req = RequestAttributes::default();
    let names = [
        "source.ip",
        "source.address",
        "destination.ip",
        "destination.address",
    ];
    let h = FakeHost::default();
    h.set(&["source", "address"], "10.1.2.3:41362");
    h.set(&["destination", "address"], "[2001:db8::1]:9080");
    h.reads.borrow_mut().clear();
    assert_eq!(
        fill_for(Direction::Inbound, &names, &h, &req),
        vec![
            s("10.1.2.3"),
            s("10.1.2.3:41362"),
            s("2001:db8::1"),
            s("[2001:db8::1]:9080")
        ]
    );
    assert_eq!(
        h.reads.borrow().len(),
        4,
        "one read per slot, no extra host call: {:?}",
        h.reads.borrow()
    );
    // Not an `ip:port`: kept as it is, and an absent address stays absent.
    let h = FakeHost::default();
    h.set(&["source", "address"], "/var/run/app.sock");
    assert_eq!(
        fill_for(Direction::Inbound, &names, &h, &req),
        vec![s("/var/run/app.sock"), s("/var/run/app.sock"), None, None]
    );
}
