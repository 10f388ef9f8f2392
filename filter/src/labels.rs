//! Istio's standard labels, computed as istio/proxy's stats plugin (release-1.17,
//! `extensions/stats/plugin.cc` and `extensions/common/context.cc`) computes them.
//! docs/labels.md has the same rules as a table.

use crate::attributes::{response_flags_short, Direction, RequestAttributes};
use crate::peer::{PeerNode, CANONICAL_NAME_LABEL, CANONICAL_REVISION_LABEL};

/// The standard labels, in Istio's fixed order. A metric uses a prefix of this list.
pub const STANDARD_LABELS: [&str; 25] = [
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_canonical_service",
    "source_canonical_revision",
    "source_cluster",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_cluster",
    "request_protocol",
    "response_flags",
    "connection_security_policy",
    "response_code",
    "grpc_response_status",
];

/// Index of each standard label in [`STANDARD_LABELS`].
#[allow(missing_docs)]
pub mod idx {
    pub const REPORTER: usize = 0;
    pub const SOURCE_WORKLOAD: usize = 1;
    pub const SOURCE_WORKLOAD_NAMESPACE: usize = 2;
    pub const SOURCE_PRINCIPAL: usize = 3;
    pub const DESTINATION_WORKLOAD: usize = 9;
    pub const DESTINATION_WORKLOAD_NAMESPACE: usize = 10;
    pub const DESTINATION_PRINCIPAL: usize = 11;
    pub const DESTINATION_SERVICE: usize = 14;
    pub const DESTINATION_SERVICE_NAME: usize = 15;
    pub const DESTINATION_SERVICE_NAMESPACE: usize = 16;
    pub const REQUEST_PROTOCOL: usize = 20;
    pub const RESPONSE_FLAGS: usize = 21;
    pub const CONNECTION_SECURITY_POLICY: usize = 22;
    pub const RESPONSE_CODE: usize = 23;
    pub const GRPC_RESPONSE_STATUS: usize = 24;
}

/// Offsets of the per-side labels from `source_workload` / `destination_workload`.
const WORKLOAD: usize = 0;
const NAMESPACE: usize = 1;
const APP: usize = 3;
const VERSION: usize = 4;

pub const UNKNOWN: &str = "unknown";
pub const LATEST: &str = "latest";

/// Who reports: the client side (`source`), the server side (`destination`), or a shared
/// server-side proxy (`waypoint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reporter {
    Source,
    Destination,
    Waypoint,
}

impl Reporter {
    pub const ALL: [Reporter; 3] = [Reporter::Source, Reporter::Destination, Reporter::Waypoint];

    pub fn as_str(self) -> &'static str {
        match self {
            Reporter::Source => "source",
            Reporter::Destination => "destination",
            Reporter::Waypoint => "waypoint",
        }
    }
}

/// A node as seen by the label rules. Istio distinguishes "no labels at all" (canonical
/// service empty) from "labels without a canonical name" (falls back to the workload name).
#[derive(Debug, Clone, Copy)]
pub struct NodeView<'a> {
    pub node: &'a PeerNode,
    pub labels_known: bool,
}

impl<'a> NodeView<'a> {
    /// The local node and the endpoint-metadata fallback always have a label set.
    pub fn with_labels(node: &'a PeerNode) -> Self {
        NodeView {
            node,
            labels_known: true,
        }
    }
    /// An exchanged peer has labels only when its LABELS struct was non-empty.
    pub fn peer(node: &'a PeerNode) -> Self {
        NodeView {
            node,
            labels_known: !node.labels.is_empty(),
        }
    }
}

/// The label values of one request, reused across requests so the steady state allocates
/// nothing.
#[derive(Debug, Clone, Default)]
pub struct Dimensions {
    pub values: [String; 25],
}

/// What the label rules need beyond the request itself.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub reporter: Reporter,
    pub direction: Direction,
    pub local: NodeView<'a>,
    /// The other side, when known (metadata exchange or endpoint metadata).
    pub peer: Option<NodeView<'a>>,
    pub use_host_header: bool,
}

impl Dimensions {
    fn set(&mut self, i: usize, v: &str) {
        if let Some(slot) = self.values.get_mut(i) {
            slot.clear();
            slot.push_str(v);
        }
    }

    /// Computes all 25 standard labels.
    pub fn fill(&mut self, cx: &Context<'_>, req: &RequestAttributes) {
        let outbound = cx.direction == Direction::Outbound;
        self.set(idx::REPORTER, cx.reporter.as_str());
        // The local node is the source on the client side, the destination on the server side.
        self.map_node(outbound, Some(cx.local));
        self.map_node(!outbound, cx.peer);

        self.set(idx::SOURCE_PRINCIPAL, &req.source_principal);
        self.set(idx::DESTINATION_PRINCIPAL, &req.destination_principal);
        // The peer's namespace: its SPIFFE id's first, its metadata's otherwise (Istio's rule).
        // The id is known when the metrics carry the peer's principal (the default); a config
        // that removes that label saves its read and takes the namespace from metadata.
        let (peer_namespace, peer_principal) = if outbound {
            (
                idx::DESTINATION_WORKLOAD_NAMESPACE,
                &req.destination_principal,
            )
        } else {
            (idx::SOURCE_WORKLOAD_NAMESPACE, &req.source_principal)
        };
        if let Some(ns) = crate::identity::spiffe_namespace(peer_principal) {
            self.set(peer_namespace, ns);
        }
        self.map_service(cx, req);
        self.set(
            idx::REQUEST_PROTOCOL,
            if req.grpc { "grpc" } else { "http" },
        );
        if let Some(slot) = self.values.get_mut(idx::RESPONSE_FLAGS) {
            slot.clear();
            response_flags_short(req.response_flags, slot);
        }
        let policy = match (cx.direction, req.mtls) {
            (Direction::Inbound, Some(true)) => "mutual_tls",
            (Direction::Inbound, Some(false)) => "none",
            _ => UNKNOWN,
        };
        self.set(idx::CONNECTION_SECURITY_POLICY, policy);
        if let Some(slot) = self.values.get_mut(idx::RESPONSE_CODE) {
            slot.clear();
            push_int(slot, req.response_code);
        }
        for slot in self.values.iter_mut().take(idx::GRPC_RESPONSE_STATUS) {
            if slot.is_empty() {
                slot.push_str(UNKNOWN);
            }
        }
        // Not defaulted to `unknown`: empty for plain HTTP, and UNKNOWN (2) when a gRPC
        // response carried no status.
        if let Some(slot) = self.values.get_mut(idx::GRPC_RESPONSE_STATUS) {
            slot.clear();
            if req.grpc {
                push_int(slot, req.grpc_status.unwrap_or(2));
            }
        }
    }

    /// For a TCP report: `request_protocol` is `tcp`. The labels after
    /// `connection_security_policy` are not part of Istio's TCP metrics.
    pub fn set_tcp(&mut self) {
        self.set(idx::REQUEST_PROTOCOL, "tcp");
    }

    fn map_node(&mut self, is_source: bool, view: Option<NodeView<'_>>) {
        let base = if is_source {
            idx::SOURCE_WORKLOAD
        } else {
            idx::DESTINATION_WORKLOAD
        };
        // The per-side labels are laid out alike on both sides, but not contiguously:
        // principal sits at +2 and service labels intervene before canonical ones on the
        // destination side.
        let (canonical, revision, cluster) = if is_source { (6, 7, 8) } else { (17, 18, 19) };
        let empty = PeerNode::default();
        let (node, labels_known) = match view {
            Some(v) => (v.node, v.labels_known),
            None => (&empty, false),
        };
        self.set(base + WORKLOAD, &node.workload_name);
        self.set(base + NAMESPACE, &node.namespace);
        self.set(cluster, &node.cluster_id);
        if labels_known {
            self.set(base + APP, node.label("app").unwrap_or_default());
            self.set(base + VERSION, node.label("version").unwrap_or_default());
            self.set(
                canonical,
                node.label(CANONICAL_NAME_LABEL)
                    .unwrap_or(&node.workload_name),
            );
            self.set(
                revision,
                node.label(CANONICAL_REVISION_LABEL).unwrap_or(LATEST),
            );
        } else {
            self.set(base + APP, "");
            self.set(base + VERSION, "");
            self.set(canonical, "");
            self.set(revision, LATEST);
        }
        if !is_source {
            self.set(idx::DESTINATION_SERVICE_NAMESPACE, &node.namespace);
        }
    }

    fn map_service(&mut self, cx: &Context<'_>, req: &RequestAttributes) {
        let host = if cx.use_host_header {
            req.host.as_str()
        } else if cx.direction == Direction::Outbound {
            UNKNOWN
        } else {
            cx.local.node.label(CANONICAL_NAME_LABEL).unwrap_or(UNKNOWN)
        };
        self.set(idx::DESTINATION_SERVICE, host);
        let special_route = match req.route_name.as_str() {
            "block_all" => Some("BlackHoleCluster"),
            "allow_any" => Some("PassthroughCluster"),
            _ => None,
        };
        let special_cluster = matches!(
            req.cluster_name.as_str(),
            "BlackHoleCluster"
                | "PassthroughCluster"
                | "InboundPassthroughClusterIpv4"
                | "InboundPassthroughClusterIpv6"
        );
        if let Some(name) = special_route {
            self.set(idx::DESTINATION_SERVICE_NAME, name);
        } else if special_cluster {
            self.set(idx::DESTINATION_SERVICE_NAME, &req.cluster_name);
        } else if let Some(svc) = &req.service {
            self.set(idx::DESTINATION_SERVICE_NAME, &svc.name);
            if !svc.host.is_empty() {
                self.set(idx::DESTINATION_SERVICE, &svc.host);
            }
            if !svc.namespace.is_empty() {
                self.set(idx::DESTINATION_SERVICE_NAMESPACE, &svc.namespace);
            }
        } else if let Some([service, name]) = self
            .values
            .get_mut(idx::DESTINATION_SERVICE..=idx::DESTINATION_SERVICE_NAME)
        {
            name.clone_from(service);
        }
    }
}

fn push_int(out: &mut String, v: i64) {
    use std::fmt::Write;
    let _ = write!(out, "{v}");
}

#[cfg(test)]
mod tests;
