//! Peer identity by metadata exchange.
//!
//! Istio proxies tell each other who they are by sending their node metadata
//! in the [`METADATA_HEADER`] request/response header: base64 of a serialized
//! `google.protobuf.Struct`, keyed by [`METADATA_ID_HEADER`]. This module
//! speaks that format byte-for-byte so meshstats can sit next to stock Istio
//! sidecars, and keeps decoded peers in a [`PeerCache`] so each distinct
//! peer is decoded once rather than per request.
//!
//! Everything here is plain Rust: the proxy-wasm calls that fetch the headers
//! and node metadata live in the host module.

mod base64;
mod cache;
pub mod frame;
mod node;
mod proto;
#[cfg(test)]
mod proto_tests;

use std::fmt;

pub use cache::{PeerCache, DEFAULT_PEER_CACHE_SIZE};
pub(crate) use node::{LABELS, PLATFORM_METADATA, STRING_FIELDS};

pub const CANONICAL_NAME_LABEL: &str = "service.istio.io/canonical-name";
pub const CANONICAL_REVISION_LABEL: &str = "service.istio.io/canonical-revision";
pub const METADATA_HEADER: &str = "x-envoy-peer-metadata";
pub const METADATA_ID_HEADER: &str = "x-envoy-peer-metadata-id";

/// What a proxy knows about one workload: its own node, or a peer's.
///
/// Field names follow Istio's node metadata keys (`NAME`, `NAMESPACE`, ...);
/// an empty string means the key was absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerNode {
    pub name: String,
    pub namespace: String,
    pub owner: String,
    pub workload_name: String,
    pub istio_version: String,
    pub mesh_id: String,
    pub cluster_id: String,
    /// Istio's `SERVICE_ACCOUNT`: what a server checks against the caller's certificate.
    pub service_account: String,
    /// Sorted by key with unique keys, so [`PeerNode::label`] can binary search.
    pub labels: Vec<(String, String)>,
    /// Sorted by key with unique keys, like `labels`.
    pub platform_metadata: Vec<(String, String)>,
    /// Comma-joined, exactly as Istio sends it.
    pub app_containers: String,
    /// Comma-joined, exactly as Istio sends it.
    pub instance_ips: String,
}

/// Why a peer's metadata could not be used. Peers are untrusted input, so
/// every malformed header ends here instead of in a panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

impl PeerNode {
    pub fn label(&self, key: &str) -> Option<&str> {
        let i = self
            .labels
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()?;
        self.labels.get(i).map(|(_, v)| v.as_str())
    }

    pub fn set_label(&mut self, key: &str, value: &str) {
        match self.labels.binary_search_by(|(k, _)| k.as_str().cmp(key)) {
            Ok(i) => {
                if let Some((_, v)) = self.labels.get_mut(i) {
                    value.clone_into(v);
                }
            }
            Err(i) => self.labels.insert(i, (key.to_owned(), value.to_owned())),
        }
    }

    /// The header value this node would send to its peers.
    pub fn to_header_value(&self) -> String {
        base64::encode(&self.to_struct_bytes())
    }

    /// Decodes a peer's header. Surrounding whitespace is ignored because
    /// HTTP treats it as not part of the value. An empty value decodes to an
    /// empty node, as an empty protobuf message would.
    pub fn from_header_value(value: &str) -> Result<PeerNode, DecodeError> {
        let bytes = base64::decode(value.trim_matches([' ', '\t']))?;
        PeerNode::from_struct_bytes(&bytes)
    }
}
