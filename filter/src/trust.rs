//! Which callers' `x-envoy-peer-metadata` a server-side proxy believes (`peer_metadata_trust`).
//!
//! The header says whatever the caller wrote; the caller's certificate on an mTLS connection
//! was issued by the mesh's CA. So the header is believed only when the connection suits the
//! mode (`ANY`: any connection, Istio's behaviour; `MTLS_ONLY`: one with a client certificate)
//! and, when the certificate carries an Istio SPIFFE id, the header's namespace and service
//! account do not contradict it. A header not believed leaves the peer unknown (its labels
//! then come from the certificate alone) and gets no exchange headers back: a stranger learns
//! nothing about this workload. Each rejection is counted in
//! `meshstats_peer_metadata_rejected_total`; the first of each kind is logged, once per VM,
//! so hostile traffic cannot flood the proxy's log.
//!
//! Compiled as a child of `plugin` (`#[path]` there): it extends `Root`, whose fields stay
//! private to that module.

use super::{Root, Stream};
use crate::attributes::DownstreamCert;
use crate::config::{MetricKind, PeerMetadataTrust};
use crate::host::{Host, LogLevel};
use crate::identity::{spiffe_namespace, spiffe_service_account};
use crate::metrics::PEER_REJECTED_METRIC;
use crate::peer::PeerNode;
use std::rc::Rc;

/// Why a caller's exchange headers were not believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rejection {
    /// `MTLS_ONLY`, and the caller presented no client certificate.
    UntrustedConnection,
    /// The header claims a namespace or service account its certificate does not carry.
    ContradictsCertificate,
    /// A TCP exchange frame that does not decode or is too large (`tcp_exchange.rs`).
    MalformedFrame,
}

/// One VM's rejection counter and which kinds it has logged.
#[derive(Debug, Default)]
pub struct Rejections {
    /// Defined at the first rejection (`Some(None)`: the host refused), so a proxy that never
    /// rejects has no extra metric and a refused definition is not retried per request.
    metric: Option<Option<u32>>,
    logged_untrusted: bool,
    logged_contradiction: bool,
    logged_malformed: bool,
}

/// Log lines quote what a caller claimed: at most this many characters of it, escaped.
const MAX_QUOTED_CHARS: usize = 64;

impl Root {
    /// The caller's peer from its exchange headers (`value`, `id`), when they are believed.
    /// Reads the connection's certificate once and keeps it on the stream for stream end.
    pub(super) fn believe_downstream(
        &mut self,
        host: &impl Host,
        stream: &mut Stream,
        id: &str,
        value: &str,
    ) -> Option<Rc<PeerNode>> {
        let cert = DownstreamCert::read(host);
        let believed = if self.config.peer_metadata_trust == PeerMetadataTrust::MtlsOnly
            && cert.mtls != Some(true)
        {
            // Not even decoded: a stranger's headers cost no decoding and no cache slot.
            self.reject(host, Rejection::UntrustedConnection, || {
                "from a caller without a client certificate (`peer_metadata_trust`: MTLS_ONLY)"
                    .to_string()
            });
            None
        } else {
            // A header that does not decode is ignored, as a missing one.
            match self.peers.get_or_decode(id, value) {
                Ok(peer) => self.believe_downstream_node(host, &cert, peer),
                Err(_) => None,
            }
        };
        stream.seen.downstream_cert = Some(cert);
        believed
    }

    /// A caller's decoded metadata (header or TCP frame), when its certificate `cert` does not
    /// contradict it.
    pub(super) fn believe_downstream_node(
        &mut self,
        host: &impl Host,
        cert: &DownstreamCert,
        peer: Rc<PeerNode>,
    ) -> Option<Rc<PeerNode>> {
        match contradiction(&peer, &cert.principal) {
            None => Some(peer),
            Some(claim) => {
                self.reject(host, Rejection::ContradictsCertificate, || {
                    format!(
                        "claims {} {:?}, but the caller's certificate {:?} says {:?}",
                        claim.what,
                        quoted(claim.claimed),
                        quoted(&cert.principal),
                        quoted(claim.certified),
                    )
                });
                None
            }
        }
    }

    /// A TCP exchange frame that is malformed or too large: counted and logged as a
    /// rejection; the caller is labelled from its certificate alone.
    pub(super) fn refuse_frame(&mut self, host: &impl Host, reason: &str) {
        self.reject(host, Rejection::MalformedFrame, || {
            format!("in a TCP exchange frame that {}", quoted(reason))
        });
    }

    fn reject(&mut self, host: &impl Host, why: Rejection, detail: impl FnOnce() -> String) {
        let r = &mut self.rejections;
        let id = *r
            .metric
            .get_or_insert_with(|| host.define_metric(MetricKind::Counter, PEER_REJECTED_METRIC));
        if let Some(id) = id {
            host.increment_metric(id, 1);
        }
        let logged = match why {
            Rejection::UntrustedConnection => &mut r.logged_untrusted,
            Rejection::ContradictsCertificate => &mut r.logged_contradiction,
            Rejection::MalformedFrame => &mut r.logged_malformed,
        };
        if !*logged {
            *logged = true;
            host.log(
                LogLevel::Warn,
                &format!(
                    "meshstats: x-envoy-peer-metadata {} is not believed: the caller is \
                     labelled from its certificate alone and gets no exchange headers back; \
                     further rejections are counted in {PEER_REJECTED_METRIC}, not logged",
                    detail()
                ),
            );
        }
    }
}

/// A claim of a caller's header that its certificate contradicts.
#[derive(Debug, PartialEq, Eq)]
struct Claim<'a> {
    what: &'static str,
    claimed: &'a str,
    certified: &'a str,
}

/// What in `peer` contradicts the Istio SPIFFE id `principal`. A claim the header does not
/// make (an empty field), or a certificate without such an id, contradicts nothing.
fn contradiction<'a>(peer: &'a PeerNode, principal: &'a str) -> Option<Claim<'a>> {
    let namespace = spiffe_namespace(principal)?;
    if !peer.namespace.is_empty() && peer.namespace != namespace {
        return Some(Claim {
            what: "namespace",
            claimed: &peer.namespace,
            certified: namespace,
        });
    }
    let account = spiffe_service_account(principal)?;
    (!peer.service_account.is_empty() && peer.service_account != account).then_some(Claim {
        what: "service account",
        claimed: &peer.service_account,
        certified: account,
    })
}

/// At most [`MAX_QUOTED_CHARS`] of `s`: a caller's claim can be as long as its header.
fn quoted(s: &str) -> &str {
    match s.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((end, _)) => s.get(..end).unwrap_or(s),
        None => s,
    }
}

#[cfg(test)]
#[path = "trust_tests.rs"]
mod tests;
