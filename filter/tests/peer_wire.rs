//! Wire compatibility of `x-envoy-peer-metadata`: our hand-written `google.protobuf.Struct`
//! codec against prost, an independent protobuf implementation. Istio proxies serialize
//! deterministically (map keys sorted), as prost does for its BTreeMap-backed Struct.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use meshstats_filter::peer::PeerNode;
use proptest::prelude::*;
use prost::Message;
use prost_types::{value::Kind, ListValue, Struct, Value};
use std::collections::BTreeMap;

fn string(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.to_string())),
    }
}

fn number(n: f64) -> Value {
    Value {
        kind: Some(Kind::NumberValue(n)),
    }
}

fn string_map(pairs: &[(String, String)]) -> Value {
    let fields = pairs.iter().map(|(k, v)| (k.clone(), string(v))).collect();
    Value {
        kind: Some(Kind::StructValue(Struct { fields })),
    }
}

/// The Struct an Istio proxy sends for `node` (istio/proxy `extractStructFromNodeFlatBuffer`).
fn istio_struct(node: &PeerNode) -> Struct {
    let mut fields = BTreeMap::new();
    for (key, value) in [
        ("NAME", &node.name),
        ("NAMESPACE", &node.namespace),
        ("OWNER", &node.owner),
        ("WORKLOAD_NAME", &node.workload_name),
        ("ISTIO_VERSION", &node.istio_version),
        ("MESH_ID", &node.mesh_id),
        ("CLUSTER_ID", &node.cluster_id),
        ("SERVICE_ACCOUNT", &node.service_account),
        ("APP_CONTAINERS", &node.app_containers),
        ("INSTANCE_IPS", &node.instance_ips),
    ] {
        if !value.is_empty() {
            fields.insert(key.to_string(), string(value));
        }
    }
    if !node.labels.is_empty() {
        fields.insert("LABELS".into(), string_map(&node.labels));
    }
    if !node.platform_metadata.is_empty() {
        fields.insert(
            "PLATFORM_METADATA".into(),
            string_map(&node.platform_metadata),
        );
    }
    Struct { fields }
}

fn bookinfo() -> PeerNode {
    let mut n = PeerNode {
        name: "ratings-v1-5d8f9c7b6-x2x4z".into(),
        namespace: "default".into(),
        owner: "kubernetes://apis/apps/v1/namespaces/default/deployments/ratings-v1".into(),
        workload_name: "ratings-v1".into(),
        istio_version: "1.17.2".into(),
        mesh_id: "cluster.local".into(),
        cluster_id: "Kubernetes".into(),
        app_containers: "ratings".into(),
        instance_ips: "10.0.0.7,fe80::1".into(),
        service_account: "bookinfo-ratings".into(),
        ..Default::default()
    };
    for (k, v) in [
        ("app", "ratings"),
        ("version", "v1"),
        ("service.istio.io/canonical-name", "ratings"),
        ("pod-template-hash", "5d8f9c7b6"),
    ] {
        n.set_label(k, v);
    }
    n.platform_metadata = vec![("gcp_project".into(), "p".into())];
    n
}

#[test]
fn our_bytes_equal_an_independent_deterministic_encoding() {
    let node = bookinfo();
    assert_eq!(node.to_struct_bytes(), istio_struct(&node).encode_to_vec());
}

#[test]
fn we_decode_what_another_implementation_encodes_including_keys_we_do_not_know() {
    let node = bookinfo();
    let mut s = istio_struct(&node);
    // Newer Istio sends more keys, not all strings; they must not disturb the rest.
    s.fields
        .insert("ENVOY_PROMETHEUS_PORT".into(), number(15090.0));
    s.fields.insert(
        "SIDECAR_INJECT".into(),
        Value {
            kind: Some(Kind::BoolValue(true)),
        },
    );
    let proxy_config = Struct {
        fields: [("concurrency".to_string(), number(2.0))].into(),
    };
    s.fields.insert(
        "PROXY_CONFIG".into(),
        Value {
            kind: Some(Kind::StructValue(proxy_config)),
        },
    );
    let keys = ListValue {
        values: vec![string("NAME"), string("NAMESPACE")],
    };
    s.fields.insert(
        "EXCHANGE_KEYS".into(),
        Value {
            kind: Some(Kind::ListValue(keys)),
        },
    );
    assert_eq!(
        PeerNode::from_struct_bytes(&s.encode_to_vec()).unwrap(),
        node
    );
}

#[test]
fn header_value_is_padded_standard_base64_of_the_struct() {
    let node = bookinfo();
    let header = node.to_header_value();
    assert_eq!(PeerNode::from_header_value(&header).unwrap(), node);
    assert!(
        header
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)),
        "{header}"
    );
    assert_eq!(header.len() % 4, 0, "padded");
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z0-9./:-]{1,40}", "\\PC{1,20}", "[a-z]{200,300}"]
}

proptest! {
    #[test]
    fn encodings_agree_for_any_node(
        strings in proptest::collection::vec(proptest::option::of(text()), 9),
        labels in proptest::collection::btree_map(text(), text(), 0..6),
    ) {
        let mut node = PeerNode::default();
        let fields = [
            &mut node.name, &mut node.namespace, &mut node.owner, &mut node.workload_name,
            &mut node.istio_version, &mut node.mesh_id, &mut node.cluster_id,
            &mut node.app_containers, &mut node.instance_ips,
        ];
        for (field, value) in fields.into_iter().zip(strings) {
            *field = value.unwrap_or_default();
        }
        for (k, v) in &labels {
            node.set_label(k, v);
        }
        let theirs = istio_struct(&node).encode_to_vec();
        prop_assert_eq!(node.to_struct_bytes(), theirs.clone());
        prop_assert_eq!(PeerNode::from_struct_bytes(&theirs).unwrap(), node.clone());
        prop_assert_eq!(Struct::decode(node.to_struct_bytes().as_slice()).unwrap(), istio_struct(&node));
    }
}
