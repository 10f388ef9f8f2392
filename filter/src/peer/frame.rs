//! The TCP metadata exchange frame of Istio's `istio.metadata_exchange` network filter, written
//! at the start of each direction of a connection whose TLS handshake negotiated ALPN
//! `istio-peer-exchange`: the magic `0x3D230467` and the body's length (4 bytes each, most
//! significant byte first), then a serialized `google.protobuf.Any` holding a
//! `google.protobuf.Struct` whose `x-envoy-peer-metadata` field is the node metadata (the
//! Struct the HTTP header carries in base64) and whose `x-envoy-peer-metadata-id` field is
//! the node id. docs/tcp.md lists the Istio releases that write it.
//!
//! The body is the peer's input, so it is bounded ([`MAX_FRAME_BODY`]) and decoded by the
//! same Struct codec as the HTTP header: one codec for both.

use super::proto::{self, ProtoValue, Struct};
use super::{DecodeError, PeerNode, METADATA_HEADER, METADATA_ID_HEADER};

pub const FRAME_MAGIC: u32 = 0x3D23_0467;
/// Magic and length.
pub const FRAME_HEADER_LEN: usize = 8;
/// The largest body believed. Istio sets no limit; 64 KiB is what Envoy allows a whole HTTP
/// request's headers by default, so any metadata an HTTP peer can send fits.
pub const MAX_FRAME_BODY: usize = 64 * 1024;
pub const STRUCT_TYPE_URL: &str = "type.googleapis.com/google.protobuf.Struct";

/// What the first bytes of a direction are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// Not a frame: the bytes are the peer's payload, untouched.
    NotFrame,
    /// Could still be a frame: nothing can be decided before `need` bytes have arrived.
    NeedMore { need: usize },
    /// A frame the peer sent but that is not used: `len` bytes (header included; may be more
    /// than arrived so far) are the exchange's, never the app's.
    Refused { len: u64, reason: String },
    /// A frame of `len` bytes and what it says.
    Frame {
        len: usize,
        node: Box<PeerNode>,
        id: String,
    },
}

/// Our frame, encoded once per configuration.
pub fn encode_frame(node: &PeerNode, id: &str) -> Vec<u8> {
    let node_bytes = node.to_struct_bytes();
    // The node Struct's own bytes are nested as a Value, so they are decoded back into the
    // tree the encoder takes; they came from our encoder, so this cannot fail.
    let inner = proto::decode_struct(&node_bytes).unwrap_or_default();
    let mut fields = vec![(METADATA_HEADER, ProtoValue::Struct(inner))];
    if !id.is_empty() {
        fields.push((METADATA_ID_HEADER, ProtoValue::Str(id)));
    }
    let mut data = Vec::new();
    proto::encode_struct(&Struct { fields }, &mut data);
    let mut any = Vec::new();
    proto::encode_any(STRUCT_TYPE_URL, &data, &mut any);
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + any.len());
    out.extend_from_slice(&FRAME_MAGIC.to_be_bytes());
    out.extend_from_slice(&(any.len() as u32).to_be_bytes());
    out.extend_from_slice(&any);
    out
}

/// Decides what `prefix` (the first bytes of a direction, as many as arrived) is.
pub fn scan(prefix: &[u8]) -> Scan {
    let magic = FRAME_MAGIC.to_be_bytes();
    let head = prefix.len().min(magic.len());
    if prefix.get(..head) != magic.get(..head) {
        return Scan::NotFrame;
    }
    let Some(len_bytes) = prefix.get(4..FRAME_HEADER_LEN) else {
        return Scan::NeedMore {
            need: if head < magic.len() {
                magic.len()
            } else {
                FRAME_HEADER_LEN
            },
        };
    };
    let body = len_bytes
        .try_into()
        .map(u32::from_be_bytes)
        .unwrap_or(u32::MAX) as usize;
    let len = FRAME_HEADER_LEN.saturating_add(body);
    if body > MAX_FRAME_BODY {
        return Scan::Refused {
            len: len as u64,
            reason: format!("declares {body} bytes, more than the {MAX_FRAME_BODY} accepted"),
        };
    }
    let Some(any) = prefix.get(FRAME_HEADER_LEN..len) else {
        return Scan::NeedMore { need: len };
    };
    match decode_body(any) {
        Ok((node, id)) => Scan::Frame {
            len,
            node: Box::new(node),
            id,
        },
        Err(e) => Scan::Refused {
            len: len as u64,
            reason: e.0,
        },
    }
}

fn decode_body(any: &[u8]) -> Result<(PeerNode, String), DecodeError> {
    let (type_url, value) = proto::decode_any(any)?;
    if type_url != STRUCT_TYPE_URL {
        return Err(DecodeError(format!(
            "holds {:?}, not a google.protobuf.Struct",
            type_url.get(..64).unwrap_or(type_url)
        )));
    }
    let data = proto::decode_struct(value)?;
    let (mut node, mut id) = (None, String::new());
    // Last occurrence wins, as protobuf's map parsing.
    for (key, value) in &data.fields {
        match (*key, value) {
            (METADATA_HEADER, ProtoValue::Struct(s)) => node = Some(PeerNode::from_struct(s)),
            (METADATA_ID_HEADER, ProtoValue::Str(s)) => (*s).clone_into(&mut id),
            _ => {}
        }
    }
    let node = node.ok_or_else(|| DecodeError(format!("has no {METADATA_HEADER} Struct")))?;
    Ok((node, id))
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
