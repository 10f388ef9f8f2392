//! The request attributes the standard labels and values are computed from, read from the
//! host once per request at stream end (each property at most once).

pub mod slots;
pub mod vocabulary;

use crate::host::{decode, Headers, Host};

/// Which side of a connection this proxy sits on for the current stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Server side: the listener receives traffic for the local workload.
    Inbound,
    /// Client side: the listener carries the local workload's calls out.
    Outbound,
}

impl Direction {
    /// From Envoy's `listener_direction` (`envoy.config.core.v3.TrafficDirection`).
    pub fn from_listener(value: Option<i64>) -> Option<Direction> {
        match value {
            Some(1) => Some(Direction::Inbound),
            Some(2) => Some(Direction::Outbound),
            _ => None,
        }
    }
}

/// `filter_metadata.istio.services[0]` of the upstream cluster, as Istio's control plane
/// writes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterService {
    pub host: String,
    pub name: String,
    pub namespace: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestAttributes {
    pub grpc: bool,
    /// The `:authority` (Host) header, kept only when the host-header fallback may use it.
    pub host: String,
    pub cluster_name: String,
    pub route_name: String,
    pub service: Option<ClusterService>,
    /// 0 when no response was sent.
    pub response_code: i64,
    pub response_flags: u64,
    pub grpc_status: Option<i64>,
    /// `connection.mtls`, known on the server side only.
    pub mtls: Option<bool>,
    pub source_principal: String,
    pub destination_principal: String,
    pub duration_ns: u64,
    pub request_bytes: u64,
    pub response_bytes: u64,
}

const GRPC_CONTENT_TYPES: [&str; 3] =
    ["application/grpc", "application/grpc+proto", "application/grpc+json"];

impl RequestAttributes {
    pub fn read(host: &impl Host, direction: Direction, want_host_header: bool) -> RequestAttributes {
        let string = |path: &[&str]| host.property(path).map(decode::string).unwrap_or_default();
        let int = |path: &[&str]| host.property(path).and_then(|b| decode::int(&b));
        let grpc = host
            .header(Headers::Request, "content-type")
            .is_some_and(|ct| GRPC_CONTENT_TYPES.contains(&ct.as_str()));
        let (source_principal, destination_principal, mtls) = match direction {
            Direction::Inbound => (
                string(&["connection", "uri_san_peer_certificate"]),
                string(&["connection", "uri_san_local_certificate"]),
                host.property(&["connection", "mtls"]).and_then(|b| decode::boolean(&b)),
            ),
            Direction::Outbound => (
                string(&["upstream", "uri_san_local_certificate"]),
                string(&["upstream", "uri_san_peer_certificate"]),
                None,
            ),
        };
        RequestAttributes {
            grpc,
            host: if want_host_header {
                host.header(Headers::Request, ":authority").unwrap_or_default()
            } else {
                String::new()
            },
            cluster_name: string(&["xds", "cluster_name"]),
            route_name: string(&["xds", "route_name"]),
            service: read_cluster_service(host),
            response_code: int(&["response", "code"]).unwrap_or(0),
            response_flags: int(&["response", "flags"]).unwrap_or(0) as u64,
            grpc_status: if grpc { int(&["response", "grpc_status"]) } else { None },
            mtls,
            source_principal,
            destination_principal,
            duration_ns: int(&["request", "duration"]).unwrap_or(0).max(0) as u64,
            request_bytes: int(&["request", "total_size"]).unwrap_or(0).max(0) as u64,
            response_bytes: int(&["response", "total_size"]).unwrap_or(0).max(0) as u64,
        }
    }
}

// One read for the whole entry: Envoy serializes a map of strings as proxy-wasm pairs.
fn read_cluster_service(host: &impl Host) -> Option<ClusterService> {
    let bytes = host.property(&["xds", "cluster_metadata", "filter_metadata", "istio", "services", "0"])?;
    let mut service = ClusterService::default();
    for (k, v) in decode::pairs(&bytes) {
        match k.as_str() {
            "host" => service.host = v,
            "name" => service.name = v,
            "namespace" => service.namespace = v,
            _ => {}
        }
    }
    (!service.name.is_empty()).then_some(service)
}

/// Envoy's response flags bitmask (`response.flags`) in its short form, `-` when none.
/// Bit positions follow Envoy's `CoreResponseFlag` order; Envoy prints them in that order.
pub fn response_flags_short(flags: u64, out: &mut String) {
    const SHORT: [&str; 30] = [
        "LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE",
        "DC", "URX", "SI", "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM", "DF",
        "DO", "DR", "UDO",
    ];
    let start = out.len();
    for (bit, name) in SHORT.iter().enumerate() {
        if flags & (1 << bit) != 0 {
            if out.len() > start {
                out.push(',');
            }
            out.push_str(name);
        }
    }
    // Flags newer than this table: keep the information rather than drop it, as Istio did.
    let unknown = flags & !((1u64 << SHORT.len()) - 1);
    if unknown != 0 {
        if out.len() > start {
            out.push(',');
        }
        out.push_str(&flags.to_string());
    }
    if out.len() == start {
        out.push('-');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::FakeHost;

    fn flags(v: u64) -> String {
        let mut s = String::new();
        response_flags_short(v, &mut s);
        s
    }

    #[test]
    fn response_flags_match_envoy_short_names() {
        assert_eq!(flags(0), "-");
        assert_eq!(flags(1 << 5), "UF");
        assert_eq!(flags((1 << 5) | (1 << 15)), "UF,URX");
        assert_eq!(flags(1 << 14), "DC");
        assert_eq!(flags(1 << 1), "UH");
        assert_eq!(flags(1 << 8), "NR");
        assert_eq!(flags(1 << 29), "UDO");
        assert_eq!(flags(1 << 40), (1u64 << 40).to_string());
    }

    #[test]
    fn reads_server_side_attributes() {
        let h = FakeHost::default();
        h.request_headers.borrow_mut().insert("content-type".into(), "application/grpc".into());
        h.request_headers.borrow_mut().insert(":authority".into(), "ratings:9080".into());
        h.set(&["xds", "cluster_name"], "inbound|9080||");
        h.set(
            &["xds", "cluster_metadata", "filter_metadata", "istio", "services", "0"],
            decode::encode_pairs(&[("host", "ratings.default.svc.cluster.local"), ("name", "ratings"), ("namespace", "default")]),
        );
        h.set_int(&["response", "code"], 200);
        h.set_int(&["response", "grpc_status"], 7);
        h.set_bool(&["connection", "mtls"], true);
        h.set(&["connection", "uri_san_peer_certificate"], "spiffe://cluster.local/ns/default/sa/productpage");
        h.set_int(&["request", "duration"], 12_500_000);
        h.set_int(&["request", "total_size"], 321);
        let a = RequestAttributes::read(&h, Direction::Inbound, true);
        assert!(a.grpc);
        assert_eq!(a.host, "ratings:9080");
        assert_eq!(a.service.as_ref().unwrap().host, "ratings.default.svc.cluster.local");
        assert_eq!(a.grpc_status, Some(7));
        assert_eq!(a.mtls, Some(true));
        assert_eq!(a.source_principal, "spiffe://cluster.local/ns/default/sa/productpage");
        assert_eq!(a.duration_ns, 12_500_000);
        assert_eq!(a.request_bytes, 321);
        assert_eq!(a.response_bytes, 0);
        // Each property at most once.
        let reads = h.reads.borrow();
        let mut unique = reads.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), reads.len(), "{reads:?}");
    }

    #[test]
    fn host_header_is_not_read_unless_needed() {
        let h = FakeHost::default();
        h.request_headers.borrow_mut().insert(":authority".into(), "x".into());
        let a = RequestAttributes::read(&h, Direction::Outbound, false);
        assert_eq!(a.host, "");
        assert_eq!(a.response_code, 0);
        assert_eq!(a.grpc_status, None);
        assert_eq!(a.mtls, None);
    }
}
