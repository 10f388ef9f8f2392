//! The request attributes the standard labels and values are computed from, read from the
//! host once per request at stream end (each property at most once).

pub mod batch;
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
    /// What was read: fields outside it hold defaults, not Envoy's values.
    pub needs: Needs,
}

const GRPC_CONTENT_TYPES: [&str; 3] = [
    "application/grpc",
    "application/grpc+proto",
    "application/grpc+json",
];

/// What the stream's header callbacks already saw, so stream end need not ask again. Each
/// map is fetched with one host call (`header_map`): a host call costs about as much as
/// reading the whole map, so one call for all headers beats one per header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeenHeaders {
    /// The request's `content-type` names gRPC; `None` when request headers were not seen.
    pub grpc: Option<bool>,
    pub authority: Option<String>,
    /// The response's `:status`; `None` when response headers were not seen.
    pub status: Option<i64>,
    /// Read at request-header time to check a caller's exchange headers; stream end reuses it.
    pub downstream_cert: Option<DownstreamCert>,
}

/// The downstream connection's `connection.mtls` and peer certificate URI SAN (server side).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownstreamCert {
    pub mtls: Option<bool>,
    /// Empty without a client certificate.
    pub principal: String,
}

impl DownstreamCert {
    pub fn read(host: &impl Host) -> DownstreamCert {
        let mtls = host
            .property(&["connection", "mtls"])
            .and_then(|b| decode::boolean(&b));
        // Without a client certificate there is no peer SAN to read.
        let principal = if mtls == Some(false) {
            String::new()
        } else {
            host.property(&["connection", "uri_san_peer_certificate"])
                .map(decode::string)
                .unwrap_or_default()
        };
        DownstreamCert { mtls, principal }
    }
}

impl SeenHeaders {
    pub fn note_request(&mut self, headers: &[(String, String)]) {
        self.grpc = Some(false);
        for (k, v) in headers {
            match k.as_str() {
                "content-type" => self.grpc = Some(GRPC_CONTENT_TYPES.contains(&v.as_str())),
                ":authority" => self.authority = Some(v.clone()),
                _ => {}
            }
        }
    }

    pub fn note_response(&mut self, headers: &[(String, String)]) {
        self.status = headers
            .iter()
            .find(|(k, _)| k == ":status")
            .and_then(|(_, v)| v.parse().ok());
    }
}

/// Which attributes the compiled metrics use. Every host call costs microseconds in Envoy's
/// V8, so stream end reads only these: removing a label or dropping a metric saves its reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    pub principals: [bool; 2],
    pub security_policy: bool,
    pub response_flags: bool,
    pub service: bool,
    pub grpc_status: bool,
    pub duration: bool,
    pub request_bytes: bool,
    pub response_bytes: bool,
}

impl Needs {
    pub const ALL: Needs = Needs {
        principals: [true, true],
        security_policy: true,
        response_flags: true,
        service: true,
        grpc_status: true,
        duration: true,
        request_bytes: true,
        response_bytes: true,
    };
    pub const NONE: Needs = Needs {
        principals: [false, false],
        security_policy: false,
        response_flags: false,
        service: false,
        grpc_status: false,
        duration: false,
        request_bytes: false,
        response_bytes: false,
    };
}

impl Default for Needs {
    fn default() -> Self {
        Needs::ALL
    }
}

/// `istio.services[0]` per cluster name. Cluster metadata changes only with the cluster's
/// configuration, so reading it per request (the costliest property read, ~4 µs) is waste;
/// the filter clears this cache on a timer so a changed cluster shows within one period.
#[derive(Debug, Default)]
pub struct ServiceCache {
    by_cluster: hashbrown::HashMap<String, Option<ClusterService>>,
}

impl ServiceCache {
    const MAX: usize = 4096;

    pub fn clear(&mut self) {
        self.by_cluster.clear();
    }

    fn get(&mut self, host: &impl Host, cluster: &str) -> Option<ClusterService> {
        if let Some(s) = self.by_cluster.get(cluster) {
            return s.clone();
        }
        let service = read_cluster_service(host);
        if self.by_cluster.len() >= Self::MAX {
            self.by_cluster.clear();
        }
        self.by_cluster.insert(cluster.to_string(), service.clone());
        service
    }
}

impl RequestAttributes {
    pub fn read(
        host: &impl Host,
        direction: Direction,
        want_host_header: bool,
        seen: &SeenHeaders,
        needs: &Needs,
        services: &mut ServiceCache,
    ) -> RequestAttributes {
        let string = |path: &[&str], need: bool| {
            if need {
                host.property(path).map(decode::string).unwrap_or_default()
            } else {
                String::new()
            }
        };
        let int = |path: &[&str], need: bool| {
            if need {
                host.property(path).and_then(|b| decode::int(&b))
            } else {
                None
            }
        };
        let grpc = seen.grpc.unwrap_or_else(|| {
            host.header(Headers::Request, "content-type")
                .is_some_and(|ct| GRPC_CONTENT_TYPES.contains(&ct.as_str()))
        });
        let [need_source, need_destination] = needs.principals;
        let (source_principal, destination_principal, mtls) = match direction {
            Direction::Inbound if seen.downstream_cert.is_some() => {
                let cert = seen.downstream_cert.as_ref();
                let need_mtls = needs.security_policy || need_source;
                (
                    cert.filter(|_| need_source)
                        .map(|c| c.principal.clone())
                        .unwrap_or_default(),
                    string(
                        &["connection", "uri_san_local_certificate"],
                        need_destination,
                    ),
                    cert.filter(|_| need_mtls).and_then(|c| c.mtls),
                )
            }
            Direction::Inbound => {
                let mtls = if needs.security_policy || need_source {
                    host.property(&["connection", "mtls"])
                        .and_then(|b| decode::boolean(&b))
                } else {
                    None
                };
                // Without a client certificate there is no peer SAN to read.
                let peer = string(
                    &["connection", "uri_san_peer_certificate"],
                    need_source && mtls != Some(false),
                );
                (
                    peer,
                    string(
                        &["connection", "uri_san_local_certificate"],
                        need_destination,
                    ),
                    mtls,
                )
            }
            Direction::Outbound => (
                string(&["upstream", "uri_san_local_certificate"], need_source),
                string(&["upstream", "uri_san_peer_certificate"], need_destination),
                None,
            ),
        };
        let cluster_name = string(&["xds", "cluster_name"], needs.service);
        // The route name matters only for Istio's cluster-less `block_all` route.
        let route_name = string(
            &["xds", "route_name"],
            needs.service && cluster_name.is_empty(),
        );
        let service = if cluster_name.is_empty() {
            None
        } else {
            services.get(host, &cluster_name)
        };
        let size = |path: &[&str], need: bool| int(path, need).unwrap_or(0).max(0) as u64;
        RequestAttributes {
            grpc,
            host: match (&seen.authority, want_host_header && needs.service) {
                (_, false) => String::new(),
                (Some(a), true) => a.clone(),
                (None, true) => host
                    .header(Headers::Request, ":authority")
                    .unwrap_or_default(),
            },
            service,
            cluster_name,
            route_name,
            response_code: seen
                .status
                .or_else(|| int(&["response", "code"], true))
                .unwrap_or(0),
            response_flags: int(&["response", "flags"], needs.response_flags).unwrap_or(0) as u64,
            grpc_status: int(&["response", "grpc_status"], grpc && needs.grpc_status),
            mtls,
            source_principal,
            destination_principal,
            duration_ns: size(&["request", "duration"], needs.duration),
            request_bytes: size(&["request", "total_size"], needs.request_bytes),
            response_bytes: size(&["response", "total_size"], needs.response_bytes),
            needs: *needs,
        }
    }
}

// One read for the whole entry: Envoy serializes a map of strings as proxy-wasm pairs.
fn read_cluster_service(host: &impl Host) -> Option<ClusterService> {
    let bytes = host.property(&[
        "xds",
        "cluster_metadata",
        "filter_metadata",
        "istio",
        "services",
        "0",
    ])?;
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
        h.request_headers
            .borrow_mut()
            .insert("content-type".into(), "application/grpc".into());
        h.request_headers
            .borrow_mut()
            .insert(":authority".into(), "ratings:9080".into());
        h.set(&["xds", "cluster_name"], "inbound|9080||");
        h.set(
            &[
                "xds",
                "cluster_metadata",
                "filter_metadata",
                "istio",
                "services",
                "0",
            ],
            decode::encode_pairs(&[
                ("host", "ratings.default.svc.cluster.local"),
                ("name", "ratings"),
                ("namespace", "default"),
            ]),
        );
        h.set_int(&["response", "code"], 200);
        h.set_int(&["response", "grpc_status"], 7);
        h.set_bool(&["connection", "mtls"], true);
        h.set(
            &["connection", "uri_san_peer_certificate"],
            "spiffe://cluster.local/ns/default/sa/productpage",
        );
        h.set_int(&["request", "duration"], 12_500_000);
        h.set_int(&["request", "total_size"], 321);
        let a = RequestAttributes::read(
            &h,
            Direction::Inbound,
            true,
            &SeenHeaders::default(),
            &Needs::ALL,
            &mut ServiceCache::default(),
        );
        assert!(a.grpc);
        assert_eq!(a.host, "ratings:9080");
        assert_eq!(
            a.service.as_ref().unwrap().host,
            "ratings.default.svc.cluster.local"
        );
        assert_eq!(a.grpc_status, Some(7));
        assert_eq!(a.mtls, Some(true));
        assert_eq!(
            a.source_principal,
            "spiffe://cluster.local/ns/default/sa/productpage"
        );
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
        h.request_headers
            .borrow_mut()
            .insert(":authority".into(), "x".into());
        let a = RequestAttributes::read(
            &h,
            Direction::Outbound,
            false,
            &SeenHeaders::default(),
            &Needs::ALL,
            &mut ServiceCache::default(),
        );
        assert_eq!(a.host, "");
        assert_eq!(a.response_code, 0);
        assert_eq!(a.grpc_status, None);
        assert_eq!(a.mtls, None);
    }
}
