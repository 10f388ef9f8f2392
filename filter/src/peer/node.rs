//! Mapping between [`PeerNode`] and Istio's node-metadata Struct keys
//! (istio/proxy `extensions/common/proto_util.cc`).

use super::proto::{self, ProtoValue, Struct};
use super::{DecodeError, PeerNode, CANONICAL_NAME_LABEL, CANONICAL_REVISION_LABEL};

pub(crate) const LABELS: &str = "LABELS";
pub(crate) const PLATFORM_METADATA: &str = "PLATFORM_METADATA";

/// One node-metadata key that holds a plain string, and the [`PeerNode`] field it fills.
pub(crate) struct StringField {
    pub key: &'static str,
    get: fn(&PeerNode) -> &String,
    pub get_mut: fn(&mut PeerNode) -> &mut String,
}

/// Names each field once per row, so a row's two accessors cannot point at different fields.
macro_rules! string_fields {
    ($($key:literal => $field:ident),* $(,)?) => {
        [$(StringField { key: $key, get: |n| &n.$field, get_mut: |n| &mut n.$field }),*]
    };
}

/// The plain string keys. Encoding, decoding and reading the local node all walk this one
/// table, so a key cannot be written under one name and read under another. (Row order does
/// not reach the wire: `encode_struct` sorts keys.)
pub(crate) const STRING_FIELDS: [StringField; 10] = string_fields![
    "NAME" => name,
    "NAMESPACE" => namespace,
    "OWNER" => owner,
    "WORKLOAD_NAME" => workload_name,
    "ISTIO_VERSION" => istio_version,
    "MESH_ID" => mesh_id,
    "CLUSTER_ID" => cluster_id,
    "SERVICE_ACCOUNT" => service_account,
    "APP_CONTAINERS" => app_containers,
    "INSTANCE_IPS" => instance_ips,
];

fn string_map(pairs: &[(String, String)]) -> ProtoValue<'_> {
    ProtoValue::Struct(Struct {
        fields: pairs
            .iter()
            .map(|(k, v)| (k.as_str(), ProtoValue::Str(v)))
            .collect(),
    })
}

/// Keeps only string values (anything else is not a label) and restores the
/// sorted, unique-key invariant, with protobuf's last-key-wins rule.
fn sorted_string_pairs(s: &Struct<'_>) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = s
        .fields
        .iter()
        .rev()
        .filter_map(|(k, v)| match v {
            ProtoValue::Str(v) => Some(((*k).to_owned(), (*v).to_owned())),
            _ => None,
        })
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs.dedup_by(|later, first| later.0 == first.0);
    pairs
}

impl PeerNode {
    /// Deterministic serialization, byte-identical to an Istio proxy's for the
    /// same metadata. Empty fields are omitted as Istio omits absent ones.
    pub fn to_struct_bytes(&self) -> Vec<u8> {
        let mut fields: Vec<(&str, ProtoValue<'_>)> = STRING_FIELDS
            .iter()
            .map(|f| (f.key, (f.get)(self)))
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k, ProtoValue::Str(v)))
            .collect();
        if !self.labels.is_empty() {
            fields.push((LABELS, string_map(&self.labels)));
        }
        if !self.platform_metadata.is_empty() {
            fields.push((PLATFORM_METADATA, string_map(&self.platform_metadata)));
        }
        let mut out = Vec::new();
        proto::encode_struct(&Struct { fields }, &mut out);
        out
    }

    /// Unknown keys and known keys of an unexpected type are ignored, so
    /// newer Istio versions that add metadata still interoperate.
    pub fn from_struct_bytes(bytes: &[u8]) -> Result<PeerNode, DecodeError> {
        Ok(PeerNode::from_struct(&proto::decode_struct(bytes)?))
    }

    /// A node from its decoded Struct: the HTTP header's and the TCP frame's one mapping.
    pub(crate) fn from_struct(root: &Struct<'_>) -> PeerNode {
        let mut node = PeerNode::default();
        for (key, value) in &root.fields {
            match (*key, value) {
                (LABELS, ProtoValue::Struct(s)) => node.labels = sorted_string_pairs(s),
                (PLATFORM_METADATA, ProtoValue::Struct(s)) => {
                    node.platform_metadata = sorted_string_pairs(s);
                }
                (key, ProtoValue::Str(v)) => {
                    if let Some(f) = STRING_FIELDS.iter().find(|f| f.key == key) {
                        (*v).clone_into((f.get_mut)(&mut node));
                    }
                }
                _ => {}
            }
        }
        node
    }

    /// Istio's fallback when a peer sent no metadata header: the upstream
    /// host's `filter_metadata.istio.workload` endpoint metadata, formatted
    /// `workload_name;namespace;canonical_service;canonical_revision;cluster_id`.
    pub fn from_istio_workload(value: &str) -> Option<PeerNode> {
        let mut parts = value.split(';');
        let workload_name = parts.next()?;
        let namespace = parts.next()?;
        let canonical_name = parts.next()?;
        let canonical_revision = parts.next()?;
        let cluster_id = parts.next()?;
        let mut node = PeerNode {
            workload_name: workload_name.to_owned(),
            namespace: namespace.to_owned(),
            cluster_id: cluster_id.to_owned(),
            ..PeerNode::default()
        };
        for (label, value) in [
            (CANONICAL_NAME_LABEL, canonical_name),
            (CANONICAL_REVISION_LABEL, canonical_revision),
        ] {
            if !value.is_empty() {
                node.set_label(label, value);
            }
        }
        Some(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Written out from the protobuf encoding of Struct/Value, not produced by
    /// our encoder: `{LABELS: {app: "r", version: "v1"}, NAME: "r1", NAMESPACE: "ns"}`.
    #[rustfmt::skip]
    const GOLDEN: &[u8] = &[
        0x0a, 0x29, // Struct.fields entry, 41 bytes
        0x0a, 0x06, b'L', b'A', b'B', b'E', b'L', b'S', // key
        0x12, 0x1f, // value: ProtoValue, 31 bytes
        0x2a, 0x1d, // struct_value, 29 bytes
        0x0a, 0x0a, 0x0a, 0x03, b'a', b'p', b'p', 0x12, 0x03, 0x1a, 0x01, b'r',
        0x0a, 0x0f, 0x0a, 0x07, b'v', b'e', b'r', b's', b'i', b'o', b'n', 0x12, 0x04, 0x1a, 0x02, b'v', b'1',
        0x0a, 0x0c, 0x0a, 0x04, b'N', b'A', b'M', b'E', 0x12, 0x04, 0x1a, 0x02, b'r', b'1',
        0x0a, 0x11, 0x0a, 0x09, b'N', b'A', b'M', b'E', b'S', b'P', b'A', b'C', b'E', 0x12, 0x04, 0x1a, 0x02,
        b'n', b's',
    ];

    fn golden_node() -> PeerNode {
        PeerNode {
            name: "r1".into(),
            namespace: "ns".into(),
            labels: labels(&[("app", "r"), ("version", "v1")]),
            ..PeerNode::default()
        }
    }

    #[test]
    fn golden_vector() {
        assert_eq!(golden_node().to_struct_bytes(), GOLDEN);
        assert_eq!(PeerNode::from_struct_bytes(GOLDEN).unwrap(), golden_node());
        let header = golden_node().to_header_value();
        assert!(header.starts_with("CikKBkxBQkVMUxIf"), "{header}");
        assert_eq!(PeerNode::from_header_value(&header).unwrap(), golden_node());
    }

    fn full_node() -> PeerNode {
        let mut node = PeerNode {
            name: "reviews-v2-7bf8c9648f-xk2qx".into(),
            namespace: "bookinfo".into(),
            owner: "kubernetes://apis/apps/v1/namespaces/bookinfo/deployments/reviews-v2".into(),
            workload_name: "reviews-v2".into(),
            istio_version: "1.17.2".into(),
            mesh_id: "cluster.local".into(),
            cluster_id: "Kubernetes".into(),
            service_account: "bookinfo-reviews".into(),
            labels: Vec::new(),
            platform_metadata: labels(&[("gcp_project", "p"), ("gcp_zone", "us-central1-a")]),
            app_containers: "reviews,sidecar".into(),
            instance_ips: "10.0.0.7,fd00::7".into(),
        };
        for (k, v) in [
            ("version", "v2"),
            ("app", "reviews"),
            ("zone", "ünïcødé ☃"),
            ("empty", ""),
            ("long", &"l".repeat(200)),
        ] {
            node.set_label(k, v);
        }
        node
    }

    #[test]
    fn full_node_round_trips() {
        let node = full_node();
        let keys: Vec<&str> = node.labels.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["app", "empty", "long", "version", "zone"]);
        let bytes = node.to_struct_bytes();
        assert_eq!(PeerNode::from_struct_bytes(&bytes).unwrap(), node);
        assert_eq!(
            PeerNode::from_header_value(&node.to_header_value()).unwrap(),
            node
        );
        // Multi-byte lengths: the 200-byte label value is written as c8 01.
        assert!(bytes.windows(3).any(|w| w == [0x1a, 0xc8, 0x01]));
    }

    #[test]
    fn each_string_key_has_its_own_field() {
        let mut node = PeerNode::default();
        for f in &STRING_FIELDS {
            *(f.get_mut)(&mut node) = f.key.to_owned();
        }
        for f in &STRING_FIELDS {
            assert_eq!((f.get)(&node), f.key);
        }
    }

    #[test]
    fn empty_fields_are_omitted() {
        assert!(PeerNode::default().to_struct_bytes().is_empty());
        assert_eq!(
            PeerNode::from_struct_bytes(&[]).unwrap(),
            PeerNode::default()
        );
        let only_ns = PeerNode {
            namespace: "ns".into(),
            ..PeerNode::default()
        };
        assert_eq!(only_ns.to_header_value(), "ChEKCU5BTUVTUEFDRRIEGgJucw==");
    }

    #[test]
    fn ignores_unknown_keys_and_unexpected_types() {
        let nested = Struct {
            fields: vec![(
                "deep",
                ProtoValue::Struct(Struct {
                    fields: vec![("x", ProtoValue::Null)],
                }),
            )],
        };
        let odd_labels = Struct {
            fields: vec![
                ("b", ProtoValue::Str("2")),
                ("n", ProtoValue::Number(3.0)),
                ("a", ProtoValue::Str("1")),
                ("b", ProtoValue::Str("4")),
            ],
        };
        let root = Struct {
            fields: vec![
                ("SERVICE_ACCOUNT", ProtoValue::Str("bookinfo-reviews")),
                ("NAME", ProtoValue::Number(7.0)),
                ("NAMESPACE", ProtoValue::Str("default")),
                ("OWNER", ProtoValue::Bool(true)),
                ("MESH_ID", ProtoValue::Null),
                (
                    "INSTANCE_IPS",
                    ProtoValue::List(vec![ProtoValue::Str("10.0.0.1")]),
                ),
                ("PLATFORM_METADATA", ProtoValue::Str("not a struct")),
                ("EXTRA", ProtoValue::Struct(nested)),
                ("LABELS", ProtoValue::Struct(odd_labels)),
            ],
        };
        let mut bytes = Vec::new();
        proto::encode_struct(&root, &mut bytes);
        let node = PeerNode::from_struct_bytes(&bytes).unwrap();
        let expected = PeerNode {
            namespace: "default".into(),
            service_account: "bookinfo-reviews".into(),
            labels: labels(&[("a", "1"), ("b", "4")]),
            ..PeerNode::default()
        };
        assert_eq!(node, expected);
    }

    #[test]
    fn header_errors_are_reported() {
        let err = PeerNode::from_header_value("CikKBk!x").unwrap_err();
        assert_eq!(err.to_string(), "invalid base64 at byte 6");
        assert_eq!(
            PeerNode::from_header_value("CikK").unwrap_err().to_string(),
            "truncated length-delimited field"
        );
        let padded = format!(" {}\t", golden_node().to_header_value());
        assert_eq!(PeerNode::from_header_value(&padded).unwrap(), golden_node());
    }

    #[test]
    fn labels_are_looked_up_and_replaced() {
        let mut node = golden_node();
        assert_eq!(node.label("app"), Some("r"));
        assert_eq!(node.label("missing"), None);
        node.set_label("app", "ratings");
        node.set_label("a", "first");
        assert_eq!(
            node.labels,
            labels(&[("a", "first"), ("app", "ratings"), ("version", "v1")])
        );
    }

    #[test]
    fn istio_workload_fallback() {
        let node =
            PeerNode::from_istio_workload("ratings-v1;default;ratings;v1;Kubernetes").unwrap();
        let expected = PeerNode {
            workload_name: "ratings-v1".into(),
            namespace: "default".into(),
            cluster_id: "Kubernetes".into(),
            labels: labels(&[
                (CANONICAL_NAME_LABEL, "ratings"),
                (CANONICAL_REVISION_LABEL, "v1"),
            ]),
            ..PeerNode::default()
        };
        assert_eq!(node, expected);
        assert_eq!(
            PeerNode::from_istio_workload("ratings-v1;default;ratings;v1"),
            None
        );
        assert_eq!(PeerNode::from_istio_workload(""), None);
        let bare = PeerNode::from_istio_workload("w;ns;;;c").unwrap();
        assert!(bare.labels.is_empty());
        assert_eq!(
            (
                bare.workload_name.as_str(),
                bare.namespace.as_str(),
                bare.cluster_id.as_str()
            ),
            ("w", "ns", "c")
        );
        let extra = PeerNode::from_istio_workload("w;ns;svc;;c;ignored").unwrap();
        assert_eq!(extra.labels, labels(&[(CANONICAL_NAME_LABEL, "svc")]));
        assert_eq!(extra.cluster_id, "c");
    }

    fn arb_pairs() -> impl Strategy<Value = Vec<(String, String)>> {
        proptest::collection::btree_map(".{0,12}", ".{0,12}", 0..6)
            .prop_map(|m| m.into_iter().collect())
    }

    proptest! {
        #[test]
        fn any_node_round_trips(
            strings in proptest::collection::vec(".{0,20}", 10),
            labels in arb_pairs(),
            platform_metadata in arb_pairs(),
        ) {
            let node = PeerNode {
                name: strings[0].clone(),
                namespace: strings[1].clone(),
                owner: strings[2].clone(),
                workload_name: strings[3].clone(),
                istio_version: strings[4].clone(),
                mesh_id: strings[5].clone(),
                cluster_id: strings[6].clone(),
                labels,
                platform_metadata,
                app_containers: strings[7].clone(),
                instance_ips: strings[8].clone(),
                service_account: strings[9].clone(),
            };
            prop_assert_eq!(PeerNode::from_header_value(&node.to_header_value()).unwrap(), node);
        }

        #[test]
        fn arbitrary_input_never_panics(text in ".{0,200}", bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = PeerNode::from_header_value(&text);
            let _ = PeerNode::from_struct_bytes(&bytes);
            let _ = PeerNode::from_istio_workload(&text);
        }
    }
}
