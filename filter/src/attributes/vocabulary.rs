//! The attribute vocabulary of expressions: every name an expression may use (Istio's CEL
//! spellings and Mixer's), its type, and where its value comes from. Resolution happens once,
//! at configuration time; each distinct attribute gets one slot, filled at most once per
//! request (see `slots`). docs/attributes.md lists the same table for users.

use crate::expr::{Resolver, Seg, Type};

/// Which workload a node attribute describes. Which node that is depends on the direction:
/// on the client side `source` is the local node, on the server side the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Source,
    Destination,
    /// The peer, only when it is the upstream (client side); absent otherwise.
    UpstreamPeer,
    /// The peer, only when it is the downstream (server side); absent otherwise.
    DownstreamPeer,
}

/// A field of a node (Istio node metadata, or the fields derived from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeField {
    Name,
    Namespace,
    Owner,
    WorkloadName,
    IstioVersion,
    MeshId,
    ClusterId,
    AppContainers,
    InstanceIps,
    /// Label `app`.
    App,
    /// Label `version`.
    Version,
    /// Label `service.istio.io/canonical-name`, else the workload name.
    CanonicalService,
    /// Label `service.istio.io/canonical-revision`, else `latest`.
    CanonicalRevision,
    /// Mixer's `kubernetes://<pod>.<namespace>`.
    Uid,
    /// Mixer's `istio://<namespace>/workloads/<workload>`.
    WorkloadUid,
    /// The SPIFFE principal of that side's certificate.
    Principal,
}

/// Where a slot's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// An Envoy attribute at this property path, decoded as the slot's type.
    Property(Vec<String>),
    RequestHeader(String),
    ResponseHeader(String),
    ResponseTrailer(String),
    RequestHeaders,
    ResponseHeaders,
    Node(Side, NodeField),
    NodeLabel(Side, String),
    NodeLabels(Side),
    /// `context.reporter.kind`: the stream's [`super::Direction`], `inbound` on the server
    /// side, `outbound` on the client side.
    Direction,
    /// `http`, `grpc` (or `tcp`).
    Protocol,
    DestinationServiceHost,
    DestinationServiceName,
    DestinationServiceNamespace,
    /// The IP of the address at this property path, without its port: Mixer's `source.ip`
    /// was an IP, Envoy's `source.address` is `ip:port`. The same one property read.
    Ip(Vec<String>),
    /// Envoy's `%RESPONSE_FLAGS%` string (`UF,URX`, `-` for none), from `response.flags`.
    ResponseFlagsShort,
}

/// A resolved attribute: its value source and type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SlotDef {
    pub source: Source,
    pub ty: Type,
}

/// Fixed names: (spellings, type, property path). Alternative spellings share one slot.
#[rustfmt::skip]
const PROPERTIES: &[(&[&str], Type, &[&str])] = &[
    (&["request.path"], Type::String, &["request", "path"]),
    (&["request.url_path"], Type::String, &["request", "url_path"]),
    (&["request.host"], Type::String, &["request", "host"]),
    (&["request.scheme"], Type::String, &["request", "scheme"]),
    (&["request.method"], Type::String, &["request", "method"]),
    (&["request.useragent"], Type::String, &["request", "useragent"]),
    (&["request.referer"], Type::String, &["request", "referer"]),
    (&["request.id"], Type::String, &["request", "id"]),
    (&["request.protocol"], Type::String, &["request", "protocol"]),
    (&["request.query"], Type::String, &["request", "query"]),
    (&["request.time", "context.time"], Type::Timestamp, &["request", "time"]),
    (&["request.duration", "response.duration"], Type::Duration, &["request", "duration"]),
    (&["request.size"], Type::Int, &["request", "size"]),
    (&["request.total_size"], Type::Int, &["request", "total_size"]),
    (&["response.code"], Type::Int, &["response", "code"]),
    (&["response.code_details"], Type::String, &["response", "code_details"]),
    (&["response.flags"], Type::Int, &["response", "flags"]),
    (&["response.grpc_status"], Type::Int, &["response", "grpc_status"]),
    (&["response.size"], Type::Int, &["response", "size"]),
    (&["response.total_size"], Type::Int, &["response", "total_size"]),
    (&["connection.mtls"], Type::Bool, &["connection", "mtls"]),
    (&["connection.requested_server_name"], Type::String, &["connection", "requested_server_name"]),
    (&["connection.id"], Type::Int, &["connection", "id"]),
    (&["connection.tls_version"], Type::String, &["connection", "tls_version"]),
    (&["connection.uri_san_peer_certificate"], Type::String, &["connection", "uri_san_peer_certificate"]),
    (&["connection.uri_san_local_certificate"], Type::String, &["connection", "uri_san_local_certificate"]),
    (&["connection.termination_details"], Type::String, &["connection", "termination_details"]),
    (&["source.address"], Type::String, &["source", "address"]),
    (&["source.port"], Type::Int, &["source", "port"]),
    (&["destination.address"], Type::String, &["destination", "address"]),
    (&["destination.port"], Type::Int, &["destination", "port"]),
    (&["upstream.address"], Type::String, &["upstream", "address"]),
    (&["upstream.port"], Type::Int, &["upstream", "port"]),
    (&["upstream.local_address"], Type::String, &["upstream", "local_address"]),
    (&["upstream.uri_san_peer_certificate"], Type::String, &["upstream", "uri_san_peer_certificate"]),
    (&["upstream.uri_san_local_certificate"], Type::String, &["upstream", "uri_san_local_certificate"]),
    (&["upstream.transport_failure_reason"], Type::String, &["upstream", "transport_failure_reason"]),
    (&["xds.cluster_name"], Type::String, &["xds", "cluster_name"]),
    (&["xds.route_name"], Type::String, &["xds", "route_name"]),
    (&["xds.node.id", "node.id"], Type::String, &["xds", "node", "id"]),
    (&["xds.listener_direction"], Type::Int, &["xds", "listener_direction"]),
    (&["plugin_name"], Type::String, &["plugin_name"]),
    (&["plugin_root_id"], Type::String, &["plugin_root_id"]),
];

/// Names whose value the filter derives (not a single Envoy property).
#[rustfmt::skip]
const DERIVED: &[(&[&str], Type, Derived)] = &[
    (&["context.reporter.kind"], Type::String, Derived::Plain(Source::Direction)),
    (&["context.protocol"], Type::String, Derived::Plain(Source::Protocol)),
    (&["destination.service.host", "destination.service"], Type::String, Derived::Plain(Source::DestinationServiceHost)),
    (&["destination.service.name"], Type::String, Derived::Plain(Source::DestinationServiceName)),
    (&["destination.service.namespace"], Type::String, Derived::Plain(Source::DestinationServiceNamespace)),
    (&["response.flags_short"], Type::String, Derived::Plain(Source::ResponseFlagsShort)),
];

/// Mixer's IP attributes: (name, the property path of the address they are the IP of).
#[rustfmt::skip]
const IPS: &[(&str, &[&str])] = &[
    ("source.ip", &["source", "address"]),
    ("destination.ip", &["destination", "address"]),
];

#[derive(Debug, Clone)]
enum Derived {
    Plain(Source),
}

/// Builds the source of one key of a keyed map.
type KeySource = fn(String) -> Source;

/// Map attributes looked up by key: `request.headers['x-user']`, `request.headers.foo`.
#[rustfmt::skip]
const KEYED: &[(&str, KeySource, Source)] = &[
    ("request.headers", Source::RequestHeader, Source::RequestHeaders),
    ("response.headers", Source::ResponseHeader, Source::ResponseHeaders),
];

/// Per-side node attributes: Mixer's `source.*`/`destination.*` and the peers' Wasm-era
/// (`upstream_peer.workload_name`) and current (`filter_state.upstream_peer.workload`) names.
#[rustfmt::skip]
const SIDES: &[(&str, Side)] = &[
    ("source", Side::Source),
    ("destination", Side::Destination),
    ("upstream_peer", Side::UpstreamPeer),
    ("downstream_peer", Side::DownstreamPeer),
    ("filter_state.upstream_peer", Side::UpstreamPeer),
    ("filter_state.downstream_peer", Side::DownstreamPeer),
];

#[rustfmt::skip]
const NODE_FIELDS: &[(&[&str], NodeField)] = &[
    (&["workload.name", "workload_name", "workload"], NodeField::WorkloadName),
    (&["workload.namespace", "namespace"], NodeField::Namespace),
    (&["workload.uid"], NodeField::WorkloadUid),
    (&["name", "instance_name"], NodeField::Name),
    (&["uid"], NodeField::Uid),
    (&["owner"], NodeField::Owner),
    (&["istio_version"], NodeField::IstioVersion),
    (&["mesh_id"], NodeField::MeshId),
    (&["cluster_id", "cluster"], NodeField::ClusterId),
    (&["app_containers"], NodeField::AppContainers),
    (&["instance_ips"], NodeField::InstanceIps),
    (&["app"], NodeField::App),
    (&["version"], NodeField::Version),
    (&["service"], NodeField::CanonicalService),
    (&["revision"], NodeField::CanonicalRevision),
    (&["principal", "user", "identity"], NodeField::Principal),
];

/// Chains passed through to Envoy as they are: structured metadata and filter state.
#[rustfmt::skip]
const PASSTHROUGH: &[(&str, &[&str])] = &[
    ("xds.node.metadata", &["xds", "node", "metadata"]),
    ("node.metadata", &["xds", "node", "metadata"]),
    ("xds.cluster_metadata", &["xds", "cluster_metadata"]),
    ("xds.route_metadata", &["xds", "route_metadata"]),
    ("xds.upstream_host_metadata", &["xds", "upstream_host_metadata"]),
    ("xds.listener_metadata", &["xds", "listener_metadata"]),
    ("filter_state", &[]),
];

/// Resolves expression attribute chains to slots, for one configuration.
#[derive(Debug, Default)]
pub struct Vocabulary {
    slots: Vec<SlotDef>,
}

impl Vocabulary {
    /// The slots resolved so far, indexed by slot number.
    pub fn slots(&self) -> &[SlotDef] {
        &self.slots
    }

    fn slot(&mut self, source: Source, ty: Type) -> (usize, Type) {
        let def = SlotDef { source, ty };
        let i = match self.slots.iter().position(|s| *s == def) {
            Some(i) => i,
            None => {
                self.slots.push(def);
                self.slots.len() - 1
            }
        };
        (i, ty)
    }

    fn resolve_parts(&mut self, parts: &[&str]) -> Option<(usize, Type)> {
        let dotted = parts.join(".");
        for (names, ty, path) in PROPERTIES {
            if names.contains(&dotted.as_str()) {
                return Some(self.slot(
                    Source::Property(path.iter().map(|s| s.to_string()).collect()),
                    *ty,
                ));
            }
        }
        for (names, ty, Derived::Plain(source)) in DERIVED {
            if names.contains(&dotted.as_str()) {
                return Some(self.slot(source.clone(), *ty));
            }
        }
        for (name, path) in IPS {
            if *name == dotted {
                let path = path.iter().map(|s| s.to_string()).collect();
                return Some(self.slot(Source::Ip(path), Type::String));
            }
        }
        for (name, keyed, whole) in KEYED {
            if let Some(rest) = strip(parts, name) {
                return match rest {
                    [] => Some(self.slot(whole.clone(), Type::Map)),
                    [key] => Some(self.slot(keyed(key.to_ascii_lowercase()), Type::String)),
                    _ => None,
                };
            }
        }
        if let Some([key]) = strip(parts, "response.trailers") {
            return Some(self.slot(
                Source::ResponseTrailer(key.to_ascii_lowercase()),
                Type::String,
            ));
        }
        for (prefix, side) in SIDES {
            let Some(rest) = strip(parts, prefix) else {
                continue;
            };
            if let Some(r) = self.resolve_node(*side, rest) {
                return Some(r);
            }
        }
        for (prefix, path) in PASSTHROUGH {
            let Some(rest) = strip(parts, prefix) else {
                continue;
            };
            if rest.is_empty() {
                return None;
            }
            let mut full: Vec<String> = path.iter().map(|s| s.to_string()).collect();
            full.extend(rest.iter().map(|s| s.to_string()));
            // Node labels are the one well-known string map inside node metadata.
            let ty = if rest.last() == Some(&"LABELS") {
                Type::Map
            } else {
                Type::String
            };
            return Some(self.slot(Source::Property(full), ty));
        }
        None
    }

    fn resolve_node(&mut self, side: Side, rest: &[&str]) -> Option<(usize, Type)> {
        match rest {
            ["labels"] => return Some(self.slot(Source::NodeLabels(side), Type::Map)),
            // Wasm-era flatbuffer spelling: `upstream_peer.labels['app'].value`.
            ["labels", key] | ["labels", key, "value"] => {
                return Some(self.slot(Source::NodeLabel(side, key.to_string()), Type::String))
            }
            _ => {}
        }
        let dotted = rest.join(".");
        let field = NODE_FIELDS
            .iter()
            .find(|(names, _)| names.contains(&dotted.as_str()))?
            .1;
        Some(self.slot(Source::Node(side, field), Type::String))
    }

    /// Every spelled-out name, for suggestions and docs.
    pub fn known_names() -> Vec<String> {
        let mut names: Vec<String> = PROPERTIES
            .iter()
            .flat_map(|(n, _, _)| n.iter().map(|s| s.to_string()))
            .collect();
        names.extend(
            DERIVED
                .iter()
                .flat_map(|(n, _, _)| n.iter().map(|s| s.to_string())),
        );
        names.extend(IPS.iter().map(|(n, _)| n.to_string()));
        names.extend(KEYED.iter().map(|(n, _, _)| n.to_string()));
        names.push("response.trailers".into());
        for (prefix, _) in SIDES {
            for (fields, _) in NODE_FIELDS {
                names.extend(fields.iter().map(|f| format!("{prefix}.{f}")));
            }
            names.push(format!("{prefix}.labels"));
        }
        names.extend(PASSTHROUGH.iter().map(|(n, _)| n.to_string()));
        names
    }
}

fn strip<'p, 'a>(parts: &'p [&'a str], dotted: &str) -> Option<&'p [&'a str]> {
    let mut rest = parts;
    for want in dotted.split('.') {
        let (first, tail) = rest.split_first()?;
        if *first != want {
            return None;
        }
        rest = tail;
    }
    Some(rest)
}

impl Resolver for Vocabulary {
    fn resolve(&mut self, chain: &[Seg<'_>]) -> Result<(usize, Type), String> {
        // CEL treats `m.k` and `m['k']` alike on maps, and so do we; Envoy's property paths
        // spell a list index as its number.
        let indexes: Vec<String> = chain
            .iter()
            .filter_map(|s| match s {
                Seg::Index(i) => Some(i.to_string()),
                _ => None,
            })
            .collect();
        let mut next_index = indexes.iter();
        let parts: Vec<&str> = chain
            .iter()
            .map(|s| match s {
                Seg::Field(f) | Seg::Key(f) => *f,
                Seg::Index(_) => next_index.next().map(String::as_str).unwrap_or_default(),
            })
            .collect();
        if let Some(r) = self.resolve_parts(&parts) {
            return Ok(r);
        }
        let written = parts.join(".");
        match suggest(&written) {
            Some(s) => Err(format!(
                "unknown attribute `{written}`; did you mean `{s}`?"
            )),
            None => Err(format!("unknown attribute `{written}`")),
        }
    }
}

/// The known name closest to `written` by edit distance, when it is close enough to be a typo.
pub fn suggest(written: &str) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    for name in Vocabulary::known_names() {
        let d = edit_distance(written, &name);
        if d <= 1 + written.len() / 4 && best.as_ref().is_none_or(|(bd, _)| d < *bd) {
            best = Some((d, name));
        }
    }
    best.map(|(_, n)| n)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev.get(j).copied().unwrap_or(0) + usize::from(ca != *cb);
            let del = prev.get(j + 1).copied().unwrap_or(0) + 1;
            let ins = cur.get(j).copied().unwrap_or(0) + 1;
            cur.push(sub.min(del).min(ins));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod docs_tests;
