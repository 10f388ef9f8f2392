use super::*;

fn node() -> PeerNode {
    let mut n = PeerNode {
        name: "productpage-v1-1".into(),
        namespace: "default".into(),
        workload_name: "productpage-v1".into(),
        ..PeerNode::default()
    };
    n.set_label("app", "productpage");
    n
}

/// The bytes an Istio proxy writes for `NAMESPACE: "ns"` and id `id1`, spelled out by hand
/// from the protobuf wire format (not by our encoder), so encoder and decoder are checked
/// against the format rather than against each other.
fn istio_frame() -> Vec<u8> {
    // Struct{ "NAMESPACE": Value{string "ns"} }
    let inner: &[u8] = &[
        0x0a, 0x11, // fields entry, 17 bytes
        0x0a, 0x09, b'N', b'A', b'M', b'E', b'S', b'P', b'A', b'C', b'E', // key
        0x12, 0x04, 0x1a, 0x02, b'n', b's', // value: string_value "ns"
    ];
    let mut data = Vec::new();
    // entry "x-envoy-peer-metadata" -> Value{struct_value inner}
    let key = b"x-envoy-peer-metadata";
    let mut value = vec![0x2a, inner.len() as u8];
    value.extend_from_slice(inner);
    let mut entry = vec![0x0a, key.len() as u8];
    entry.extend_from_slice(key);
    entry.extend_from_slice(&[0x12, value.len() as u8]);
    entry.extend_from_slice(&value);
    data.extend_from_slice(&[0x0a, entry.len() as u8]);
    data.extend_from_slice(&entry);
    // entry "x-envoy-peer-metadata-id" -> Value{string "id1"}
    let key = b"x-envoy-peer-metadata-id";
    let mut entry = vec![0x0a, key.len() as u8];
    entry.extend_from_slice(key);
    entry.extend_from_slice(&[0x12, 0x05, 0x1a, 0x03, b'i', b'd', b'1']);
    data.extend_from_slice(&[0x0a, entry.len() as u8]);
    data.extend_from_slice(&entry);
    let url = STRUCT_TYPE_URL.as_bytes();
    let mut any = vec![0x0a, url.len() as u8];
    any.extend_from_slice(url);
    any.extend_from_slice(&[0x12, data.len() as u8]);
    any.extend_from_slice(&data);
    let mut frame = vec![0x3d, 0x23, 0x04, 0x67, 0, 0, 0, any.len() as u8];
    frame.extend_from_slice(&any);
    frame
}

#[test]
fn encodes_what_istio_writes() {
    let n = PeerNode {
        namespace: "ns".into(),
        ..PeerNode::default()
    };
    assert_eq!(encode_frame(&n, "id1"), istio_frame());
}

#[test]
fn decodes_what_istio_writes_and_our_own_frame() {
    let f = istio_frame();
    let Scan::Frame { len, node, id } = scan(&f) else {
        panic!("{:?}", scan(&f))
    };
    assert_eq!(
        (len, node.namespace.as_str(), id.as_str()),
        (f.len(), "ns", "id1")
    );
    let ours = encode_frame(&node_fixture(), "sidecar~1");
    let mut stream = ours.clone();
    stream.extend_from_slice(b"payload");
    assert_eq!(
        scan(&stream),
        Scan::Frame {
            len: ours.len(),
            node: Box::new(node_fixture()),
            id: "sidecar~1".into()
        }
    );
}

fn node_fixture() -> PeerNode {
    node()
}

#[test]
fn every_prefix_of_a_frame_asks_for_exactly_what_decides_it() {
    let f = encode_frame(&node(), "x");
    for cut in 0..f.len() {
        let need = match cut {
            0..=3 => 4,
            4..=7 => 8,
            _ => f.len(),
        };
        assert_eq!(scan(&f[..cut]), Scan::NeedMore { need }, "cut at {cut}");
    }
}

#[test]
fn payload_that_is_not_a_frame_is_left_alone() {
    assert_eq!(scan(b"GET / HTTP/1.1\r\n"), Scan::NotFrame);
    assert_eq!(scan(&[0x3d, 0x23, 0x04, 0x68, 0, 0, 0, 0]), Scan::NotFrame);
    assert_eq!(scan(&[0x3d, 0x24]), Scan::NotFrame);
}

#[test]
fn oversized_and_malformed_frames_are_refused_with_their_length() {
    let mut big = vec![0x3d, 0x23, 0x04, 0x67];
    big.extend_from_slice(&((MAX_FRAME_BODY as u32) + 1).to_be_bytes());
    assert_eq!(
        scan(&big),
        Scan::Refused {
            len: (FRAME_HEADER_LEN + MAX_FRAME_BODY + 1) as u64,
            reason: "declares 65537 bytes, more than the 65536 accepted".into()
        }
    );
    let mut at_limit = vec![0x3d, 0x23, 0x04, 0x67];
    at_limit.extend_from_slice(&(MAX_FRAME_BODY as u32).to_be_bytes());
    assert_eq!(
        scan(&at_limit),
        Scan::NeedMore {
            need: FRAME_HEADER_LEN + MAX_FRAME_BODY
        }
    );
    // A body of garbage: a truncated varint.
    let garbage = [0x3d, 0x23, 0x04, 0x67, 0, 0, 0, 2, 0x0a, 0xff];
    assert!(matches!(scan(&garbage), Scan::Refused { len: 10, .. }));
    // An Any of another type.
    let mut any = Vec::new();
    proto::encode_any("type.googleapis.com/google.protobuf.Empty", &[], &mut any);
    let mut other = vec![0x3d, 0x23, 0x04, 0x67, 0, 0, 0, any.len() as u8];
    other.extend_from_slice(&any);
    assert_eq!(
        scan(&other),
        Scan::Refused {
            len: other.len() as u64,
            reason:
                "holds \"type.googleapis.com/google.protobuf.Empty\", not a google.protobuf.Struct"
                    .into()
        }
    );
    // A Struct without the metadata field.
    let mut any = Vec::new();
    proto::encode_any(STRUCT_TYPE_URL, &[], &mut any);
    let mut empty = vec![0x3d, 0x23, 0x04, 0x67, 0, 0, 0, any.len() as u8];
    empty.extend_from_slice(&any);
    assert!(
        matches!(scan(&empty), Scan::Refused { reason, .. } if reason == "has no x-envoy-peer-metadata Struct")
    );
}
