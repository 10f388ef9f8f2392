//! Filling the attribute slots of one request, each at most once, before expressions run.
//! Values the standard labels already needed come from [`RequestAttributes`] instead of a
//! second host call. An empty value counts as absent, so Mixer's `x | "default"` works the
//! way it did in Mixer.

use super::vocabulary::{NodeField, Side, SlotDef, Source};
use super::{Direction, RequestAttributes};
use crate::expr::{Attr, Type};
use crate::host::{decode, Headers, Host};
use crate::labels::{idx, Dimensions, NodeView, LATEST, UNKNOWN};
use crate::peer::{CANONICAL_NAME_LABEL, CANONICAL_REVISION_LABEL};

/// Everything a slot may be computed from.
pub struct Inputs<'a, H: Host> {
    pub host: &'a H,
    pub direction: Direction,
    pub local: NodeView<'a>,
    pub peer: Option<NodeView<'a>>,
    pub req: &'a RequestAttributes,
    pub dims: &'a Dimensions,
}

/// Fills `values` (one per slot definition), reusing its allocation across requests.
pub fn fill<H: Host>(defs: &[SlotDef], values: &mut Vec<Option<Attr>>, inputs: &Inputs<'_, H>) {
    values.clear();
    values.extend(defs.iter().map(|d| read(d, inputs)));
}

/// Empties `values` to one absent value per slot, for [`fill_some`].
pub fn reset(defs: &[SlotDef], values: &mut Vec<Option<Attr>>) {
    values.clear();
    values.resize(defs.len(), None);
}

/// Fills only the listed slots: attributes that only some requests need (say, those of a
/// log entry whose `match` held) cost nothing on the others.
pub fn fill_some<H: Host>(
    defs: &[SlotDef],
    values: &mut [Option<Attr>],
    which: &[usize],
    inputs: &Inputs<'_, H>,
) {
    for &i in which {
        if let (Some(def), Some(value)) = (defs.get(i), values.get_mut(i)) {
            *value = read(def, inputs);
        }
    }
}

fn read<H: Host>(def: &SlotDef, cx: &Inputs<'_, H>) -> Option<Attr> {
    let outbound = cx.direction == Direction::Outbound;
    match &def.source {
        Source::Property(path) => {
            if let Some(v) = already_read(path, cx.req) {
                return v;
            }
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            decode_as(def.ty, cx.host.property(&path)?)
        }
        Source::Ip(path) => {
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            string(Some(ip_of(decode::string(cx.host.property(&path)?))))
        }
        Source::RequestHeader(k) => string(cx.host.header(Headers::Request, k)),
        Source::ResponseHeader(k) => string(cx.host.header(Headers::Response, k)),
        Source::ResponseTrailer(k) => string(cx.host.header(Headers::ResponseTrailers, k)),
        Source::RequestHeaders => Some(Attr::Map(cx.host.header_map(Headers::Request))),
        Source::ResponseHeaders => Some(Attr::Map(cx.host.header_map(Headers::Response))),
        Source::Node(side, NodeField::Principal) => {
            let is_source = match side {
                Side::Source => true,
                Side::Destination => false,
                Side::UpstreamPeer => outbound.then_some(false)?,
                Side::DownstreamPeer => (!outbound).then_some(true)?,
            };
            let p = if is_source {
                &cx.req.source_principal
            } else {
                &cx.req.destination_principal
            };
            string(Some(p.clone()))
        }
        Source::Node(side, field) => node_field(node(*side, cx)?, *field),
        Source::NodeLabel(side, key) => {
            string(node(*side, cx)?.node.label(key).map(str::to_string))
        }
        Source::NodeLabels(side) => {
            let n = node(*side, cx)?;
            n.labels_known.then(|| Attr::Map(n.node.labels.clone()))
        }
        Source::Direction => string(Some(
            if outbound { "outbound" } else { "inbound" }.to_string(),
        )),
        Source::Protocol => {
            // A TCP report's standard labels say `tcp`; a request is `grpc` or `http`.
            let tcp = cx
                .dims
                .values
                .get(idx::REQUEST_PROTOCOL)
                .is_some_and(|p| p == "tcp");
            let protocol = match (tcp, cx.req.grpc) {
                (true, _) => "tcp",
                (false, true) => "grpc",
                (false, false) => "http",
            };
            string(Some(protocol.to_string()))
        }
        Source::DestinationServiceHost => dim(cx.dims, idx::DESTINATION_SERVICE),
        Source::DestinationServiceName => dim(cx.dims, idx::DESTINATION_SERVICE_NAME),
        Source::DestinationServiceNamespace => dim(cx.dims, idx::DESTINATION_SERVICE_NAMESPACE),
        // The plugin makes `RequestAttributes` read the flags whenever this slot exists, so
        // `response.flags` and this share one read.
        Source::ResponseFlagsShort => {
            let flags = if cx.req.needs.response_flags {
                cx.req.response_flags
            } else {
                decode::uint(&cx.host.property(&["response", "flags"])?)?
            };
            let mut s = String::new();
            crate::attributes::response_flags_short(flags, &mut s);
            Some(Attr::Str(s))
        }
    }
}

/// The node a side names for this request's direction.
fn node<'a, H: Host>(side: Side, cx: &Inputs<'a, H>) -> Option<NodeView<'a>> {
    let outbound = cx.direction == Direction::Outbound;
    match (side, outbound) {
        (Side::Source, true) | (Side::Destination, false) => Some(cx.local),
        (Side::Source, false) | (Side::Destination, true) => cx.peer,
        (Side::UpstreamPeer, true) | (Side::DownstreamPeer, false) => cx.peer,
        (Side::UpstreamPeer, false) | (Side::DownstreamPeer, true) => None,
    }
}

fn node_field(view: NodeView<'_>, field: NodeField) -> Option<Attr> {
    let n = view.node;
    let s = match field {
        NodeField::Name => n.name.clone(),
        NodeField::Namespace => n.namespace.clone(),
        NodeField::Owner => n.owner.clone(),
        NodeField::WorkloadName => n.workload_name.clone(),
        NodeField::IstioVersion => n.istio_version.clone(),
        NodeField::MeshId => n.mesh_id.clone(),
        NodeField::ClusterId => n.cluster_id.clone(),
        NodeField::AppContainers => n.app_containers.clone(),
        NodeField::InstanceIps => n.instance_ips.clone(),
        NodeField::App => n.label("app").unwrap_or_default().to_string(),
        NodeField::Version => n.label("version").unwrap_or_default().to_string(),
        NodeField::CanonicalService => match n.label(CANONICAL_NAME_LABEL) {
            Some(c) => c.to_string(),
            None if view.labels_known => n.workload_name.clone(),
            None => String::new(),
        },
        NodeField::CanonicalRevision => n
            .label(CANONICAL_REVISION_LABEL)
            .unwrap_or(LATEST)
            .to_string(),
        NodeField::Uid if !n.name.is_empty() => format!("kubernetes://{}.{}", n.name, n.namespace),
        NodeField::WorkloadUid if !n.workload_name.is_empty() => {
            format!("istio://{}/workloads/{}", n.namespace, n.workload_name)
        }
        NodeField::Uid | NodeField::WorkloadUid | NodeField::Principal => String::new(),
    };
    string(Some(s))
}

fn dim(dims: &Dimensions, i: usize) -> Option<Attr> {
    let v = dims.values.get(i)?;
    string((v != UNKNOWN).then(|| v.clone()))
}

fn string(s: Option<String>) -> Option<Attr> {
    s.filter(|s| !s.is_empty()).map(Attr::Str)
}

fn decode_as(ty: Type, bytes: Vec<u8>) -> Option<Attr> {
    match ty {
        Type::String => string(Some(decode::string(bytes))),
        Type::Int => decode::int(&bytes).map(Attr::Int),
        Type::Bool => decode::boolean(&bytes).map(Attr::Bool),
        Type::Duration => decode::int(&bytes).map(Attr::Duration),
        Type::Timestamp => decode::int(&bytes).map(Attr::Timestamp),
        Type::Double => {
            let arr: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
            Some(Attr::Double(f64::from_le_bytes(arr)))
        }
        Type::Map => Some(Attr::Map(decode::pairs(&bytes))),
        Type::List => None,
    }
}

/// The IP of an Envoy address (`10.0.0.1:80`, `[::1]:80`); anything else (a pipe's path, an
/// address without a port) as it is.
pub fn ip_of(address: String) -> String {
    match address.parse::<std::net::SocketAddr>() {
        Ok(a) => a.ip().to_string(),
        Err(_) => address,
    }
}

/// Properties [`RequestAttributes`] has already read for the standard labels.
fn already_read(path: &[String], req: &RequestAttributes) -> Option<Option<Attr>> {
    // Every such property has a two-segment path; matching on an array allocates nothing.
    let [a, b] = path else { return None };
    let n = &req.needs;
    Some(match [a.as_str(), b.as_str()] {
        ["response", "code"] => (req.response_code != 0).then_some(Attr::Int(req.response_code)),
        ["response", "flags"] if n.response_flags => Some(Attr::Int(req.response_flags as i64)),
        ["request", "duration"] if n.duration => Some(Attr::Duration(req.duration_ns as i64)),
        ["request", "total_size"] if n.request_bytes => Some(Attr::Int(req.request_bytes as i64)),
        ["response", "total_size"] if n.response_bytes => {
            Some(Attr::Int(req.response_bytes as i64))
        }
        ["xds", "cluster_name"] if n.service => string(Some(req.cluster_name.clone())),
        ["xds", "route_name"] if n.service && req.cluster_name.is_empty() => {
            string(Some(req.route_name.clone()))
        }
        ["request", "host"] if !req.host.is_empty() => string(Some(req.host.clone())),
        ["response", "grpc_status"] if req.grpc && n.grpc_status => req.grpc_status.map(Attr::Int),
        ["connection", "mtls"] if req.mtls.is_some() => req.mtls.map(Attr::Bool),
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
