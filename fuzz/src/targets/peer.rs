//! `x-envoy-peer-metadata`: whatever a peer sends decodes or is refused without a panic; what
//! decodes encodes back to the same fields (decode → encode → decode); a node we encode
//! decodes to itself; the peer cache answers as a fresh decode would and never outgrows its
//! capacity; a TCP exchange frame (`peer::frame`) is scanned without a panic, never claims
//! more bytes than a refused frame declared or a decoded one holds, and ours scans back to the
//! node it was made from, with every prefix of it undecided.

use crate::gen::{self, below, pick};
use arbitrary::Unstructured;
use meshstats_filter::peer::frame::{self, Scan};
use meshstats_filter::peer::{PeerCache, PeerNode, CANONICAL_NAME_LABEL};

fn base64ish(u: &mut Unstructured<'_>) -> String {
    const ALPHABET: &[u8] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \t\n.";
    (0..below(u, 200))
        .map(|_| char::from(*pick(u, ALPHABET)))
        .collect()
}

fn sorted_unique(pairs: &[(String, String)]) -> bool {
    pairs.windows(2).all(|w| w[0].0 < w[1].0)
}

/// A node as a peer might describe itself: every field hostile.
pub fn arbitrary_node(u: &mut Unstructured<'_>) -> PeerNode {
    let mut node = PeerNode {
        name: gen::string(u, 3),
        namespace: gen::string(u, 3),
        owner: gen::string(u, 3),
        workload_name: gen::string(u, 4),
        istio_version: gen::string(u, 2),
        mesh_id: gen::string(u, 2),
        cluster_id: gen::string(u, 3),
        app_containers: gen::string(u, 2),
        instance_ips: gen::string(u, 2),
        ..PeerNode::default()
    };
    for (k, v) in gen::pairs(u, &[CANONICAL_NAME_LABEL, "app", "version"], 5) {
        node.set_label(&k, &v);
    }
    let mut platform = gen::pairs(u, &["gcp_project"], 3);
    platform.sort_by(|a, b| a.0.cmp(&b.0));
    platform.dedup_by(|a, b| a.0 == b.0);
    node.platform_metadata = platform;
    node
}

fn check_decoded(node: &PeerNode, from: &dyn std::fmt::Debug) {
    assert!(sorted_unique(&node.labels), "labels of {from:?}");
    assert!(
        sorted_unique(&node.platform_metadata),
        "platform metadata of {from:?}"
    );
    let again = PeerNode::from_header_value(&node.to_header_value())
        .unwrap_or_else(|e| panic!("our encoding of {node:?} does not decode: {e}"));
    assert_eq!(&again, node, "decode -> encode -> decode of {from:?}");
}

pub fn run(data: &[u8]) {
    let u = &mut Unstructured::new(data);
    match below(u, 6) {
        5 => check_frames(u),
        0 => {
            let n = below(u, 512);
            let bytes = u.bytes(n).unwrap_or_default().to_vec();
            if let Ok(node) = PeerNode::from_struct_bytes(&bytes) {
                check_decoded(&node, &bytes);
                let reencoded = PeerNode::from_struct_bytes(&node.to_struct_bytes());
                assert_eq!(reencoded.as_ref(), Ok(&node), "struct bytes of {bytes:?}");
            }
        }
        1 => {
            let header = base64ish(u);
            if let Ok(node) = PeerNode::from_header_value(&header) {
                check_decoded(&node, &header);
            }
        }
        2 => {
            let node = arbitrary_node(u);
            let header = node.to_header_value();
            assert_eq!(
                PeerNode::from_header_value(&header).as_ref(),
                Ok(&node),
                "encode -> decode"
            );
            // A byte of the header flipped: still no panic, and what decodes round-trips.
            let mut bytes = header.into_bytes();
            if !bytes.is_empty() {
                let i = below(u, bytes.len());
                bytes[i] = *pick(u, b"A/+=-_ .\n");
            }
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if let Ok(n) = PeerNode::from_header_value(&text) {
                check_decoded(&n, &text);
            }
        }
        3 => {
            let value = gen::string(u, 10);
            if let Some(node) = PeerNode::from_istio_workload(&value) {
                check_decoded(&node, &value);
            }
        }
        _ => {
            let capacity = below(u, 5);
            let mut cache = PeerCache::new(capacity);
            let headers: Vec<String> = (0..3)
                .map(|_| arbitrary_node(u).to_header_value())
                .collect();
            for _ in 0..below(u, 40) {
                let id = pick(u, &["a", "b", "c", "d", "e", "f", ""]).to_string();
                let header = if gen::one_in(u, 4) {
                    base64ish(u)
                } else {
                    pick(u, &headers).clone()
                };
                let got = cache.get_or_decode(&id, &header);
                let fresh = PeerNode::from_header_value(&header);
                assert_eq!(got.as_deref().ok(), fresh.as_ref().ok(), "cache for {id:?}");
                assert!(
                    cache.len() <= capacity,
                    "{} entries, capacity {capacity}",
                    cache.len()
                );
            }
        }
    }
}

fn check_frames(u: &mut Unstructured<'_>) {
    let node = arbitrary_node(u);
    let ours = frame::encode_frame(&node, &gen::string(u, 2));
    let mut bytes = if gen::one_in(u, 2) {
        ours.clone()
    } else {
        // Hostile: the magic, then anything.
        let mut b = frame::FRAME_MAGIC.to_be_bytes().to_vec();
        let n = below(u, 300);
        b.extend_from_slice(u.bytes(n).unwrap_or_default());
        b
    };
    if !bytes.is_empty() && gen::one_in(u, 2) {
        let i = below(u, bytes.len());
        bytes[i] = u.arbitrary().unwrap_or(0);
    }
    let cut = below(u, bytes.len() + 1);
    match frame::scan(&bytes[..cut]) {
        Scan::Frame { len, node: got, .. } => {
            assert!(len <= cut, "a frame of {len} in {cut} bytes");
            check_decoded(&got, &bytes);
        }
        Scan::NeedMore { need } => assert!(need > cut, "needs {need}, has {cut}"),
        Scan::Refused { len, .. } => assert!(len >= 8, "refused {len}"),
        Scan::NotFrame => {}
    }
    match frame::scan(&ours) {
        Scan::Frame { len, node: got, .. } => {
            assert_eq!((len, got.as_ref()), (ours.len(), &node), "our frame");
        }
        other => panic!("our frame scans as {other:?}"),
    }
}
