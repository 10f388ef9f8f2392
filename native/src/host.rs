//! [`Host`] over the dynamic-module callbacks. Two hosts: [`DefiningHost`] runs a
//! configuration once on the main thread at config time, the only moment Envoy lets metrics
//! be defined (later definitions return `Frozen`), and keeps what it defined; [`StreamHost`]
//! serves one stream or connection on a worker and answers definitions from that list.

use crate::abi::{self, EnvoyPtr, FilterKind, Kind};
use crate::node;
use meshstats_filter::config::MetricKind;
use meshstats_filter::host::{decode, Headers, Host, LogLevel};
use std::cell::RefCell;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Metric ids the filter sees: Envoy's per-kind id, with the kind in the top two bits
/// (Envoy numbers counters, gauges and histograms separately).
fn encode_id(kind: Kind, id: usize) -> Option<u32> {
    let id = u32::try_from(id).ok().filter(|i| *i < (1 << 30))?;
    let tag = match kind {
        Kind::Counter => 0,
        Kind::Gauge => 1,
        Kind::Histogram => 2,
    };
    Some(id | (tag << 30))
}

fn decode_id(id: u32) -> (Kind, usize) {
    let kind = match id >> 30 {
        0 => Kind::Counter,
        1 => Kind::Gauge,
        _ => Kind::Histogram,
    };
    (kind, (id & ((1 << 30) - 1)) as usize)
}

fn kind_of(kind: MetricKind) -> Kind {
    match kind {
        MetricKind::Counter => Kind::Counter,
        MetricKind::Gauge => Kind::Gauge,
        MetricKind::Histogram => Kind::Histogram,
    }
}

fn level_of(level: LogLevel) -> u32 {
    match level {
        LogLevel::Debug => abi::LOG_DEBUG,
        LogLevel::Info => abi::LOG_INFO,
        LogLevel::Warn => abi::LOG_WARN,
        LogLevel::Error => abi::LOG_ERROR,
    }
}

/// What one configuration defined at config time, by metric name.
pub type Defined = hashbrown::HashMap<String, u32>;

/// Answers that need no stream: node metadata (from the environment, see `node`) and the
/// root id (the filter name).
fn static_property(path: &[&str], filter_name: &str) -> Option<Option<Vec<u8>>> {
    Some(match path {
        ["xds", "node", "metadata", rest @ ..] => node::get().metadata_path(rest),
        ["xds", "node", "id"] => node::get().id(),
        ["plugin_root_id"] | ["plugin_name"] => Some(filter_name.as_bytes().to_vec()),
        _ => return None,
    })
}

/// The main thread's host at config time: defines metrics in Envoy, writes config-time
/// values (`istio_build`, the config-error counter) at the config level, logs.
pub struct DefiningHost<'a> {
    pub config: EnvoyPtr,
    pub filter_name: &'a str,
    pub defined: RefCell<Defined>,
}

impl DefiningHost<'_> {
    fn define(&self, kind: MetricKind, name: &str, labels: &[&str]) -> Option<u32> {
        let kind = kind_of(kind);
        let id = encode_id(
            kind,
            abi::http_config_define(self.config, kind, name, labels)?,
        )?;
        if let Ok(mut d) = self.defined.try_borrow_mut() {
            d.insert(name.to_string(), id);
        }
        Some(id)
    }
}

impl Host for DefiningHost<'_> {
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        static_property(path, self.filter_name).flatten()
    }
    fn header(&self, _map: Headers, _name: &str) -> Option<String> {
        None
    }
    fn header_map(&self, _map: Headers) -> Vec<(String, String)> {
        Vec::new()
    }
    fn set_header(&self, _map: Headers, _name: &str, _value: Option<&str>) {}
    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<u32> {
        self.define(kind, name, &[])
    }
    fn increment_metric(&self, id: u32, delta: i64) {
        let (kind, id) = decode_id(id);
        // Config-level gauges can only be set; config time only ever adds to counters.
        if delta > 0 {
            abi::http_config_write(self.config, kind, id, &[], delta as u64);
        }
    }
    fn record_metric(&self, id: u32, value: u64) {
        let (kind, id) = decode_id(id);
        abi::http_config_write(self.config, kind, id, &[], value);
    }
    fn log(&self, level: LogLevel, message: &str) {
        abi::log(level_of(level), message);
    }
    fn set_property(&self, _path: &[&str], _value: &[u8]) {}
    fn labelled_metrics(&self) -> bool {
        true
    }
    fn define_labelled_metric(&self, kind: MetricKind, name: &str, labels: &[&str]) -> Option<u32> {
        self.define(kind, name, labels)
    }
    fn increment_labelled_metric(&self, id: u32, values: &[&str], delta: i64) {
        let (kind, id) = decode_id(id);
        if delta > 0 {
            abi::http_config_write(self.config, kind, id, values, delta as u64);
        }
    }
    fn record_labelled_metric(&self, id: u32, values: &[&str], value: u64) {
        let (kind, id) = decode_id(id);
        abi::http_config_write(self.config, kind, id, values, value);
    }
}

/// Request attributes by proxy-wasm path: Envoy's attribute id and how to read it.
#[derive(Clone, Copy)]
enum Attr {
    Str(u32),
    Int(u32),
    Bool(u32),
}

const ATTR_MTLS: u32 = 29;
const ATTR_TLS_VERSION: u32 = 31;
const ATTR_CLUSTER_NAME: u32 = 57;

/// `envoy_dynamic_module_type_attribute_id` (checked in Envoy 1.40 by `native_smoke`).
fn attribute(path: &[&str]) -> Option<Attr> {
    use Attr::*;
    Some(match path {
        ["request", "path"] => Str(0),
        ["request", "url_path"] => Str(1),
        ["request", "host"] => Str(2),
        ["request", "scheme"] => Str(3),
        ["request", "method"] => Str(4),
        ["request", "referer"] => Str(6),
        ["request", "useragent"] => Str(7),
        ["request", "id"] => Str(9),
        ["request", "protocol"] => Str(10),
        ["request", "query"] => Str(11),
        ["request", "size"] => Int(13),
        ["request", "total_size"] => Int(14),
        ["response", "code"] => Int(15),
        ["response", "code_details"] => Str(16),
        ["response", "flags"] => Int(17),
        ["response", "grpc_status"] => Int(18),
        ["response", "size"] => Int(21),
        ["response", "total_size"] => Int(22),
        ["source", "address"] => Str(24),
        ["source", "port"] => Int(25),
        ["destination", "address"] => Str(26),
        ["destination", "port"] => Int(27),
        ["connection", "id"] => Int(28),
        ["connection", "mtls"] => Bool(ATTR_MTLS),
        ["connection", "requested_server_name"] => Str(30),
        ["connection", "tls_version"] => Str(ATTR_TLS_VERSION),
        ["connection", "uri_san_local_certificate"] => Str(36),
        ["connection", "uri_san_peer_certificate"] => Str(37),
        ["connection", "termination_details"] => Str(40),
        ["upstream", "address"] => Str(41),
        ["upstream", "port"] => Int(42),
        ["upstream", "uri_san_local_certificate"] => Str(48),
        ["upstream", "uri_san_peer_certificate"] => Str(49),
        ["upstream", "local_address"] => Str(51),
        ["upstream", "transport_failure_reason"] => Str(52),
        ["xds", "cluster_name"] => Str(ATTR_CLUSTER_NAME),
        ["xds", "listener_direction"] => Int(59),
        ["xds", "route_name"] => Str(61),
        _ => return None,
    })
}

/// When a stream began, on the wall clock (`request.time`) and the monotonic one
/// (`request.duration`): Envoy 1.40's attribute callbacks return neither (measured: ids 8 and
/// 12 fail as string and as int), so the module keeps its own.
#[derive(Debug, Clone, Copy)]
pub struct StreamClock {
    wall_ns: i64,
    start: Instant,
}

impl StreamClock {
    pub fn now() -> StreamClock {
        let wall_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        StreamClock {
            wall_ns,
            start: Instant::now(),
        }
    }

    fn elapsed_ns(&self) -> i64 {
        i64::try_from(self.start.elapsed().as_nanos()).unwrap_or(i64::MAX)
    }
}

/// `istio.services[0]` of an Istio outbound cluster, from its name: the 1.40 ABI reads only
/// string, number and bool metadata (and lists of them), not this list of structs. Istio
/// names such clusters `outbound|PORT|SUBSET|HOST`, and for a Kubernetes service
/// (`NAME.NAMESPACE.svc.DOMAIN`) its metadata holds exactly the host, the name and the
/// namespace. Any other host (a `ServiceEntry`'s) gives nothing rather than a guess.
fn service_from_cluster_name(cluster: &str) -> Option<Vec<u8>> {
    let mut parts = cluster.split('|');
    let (Some("outbound"), Some(_port), Some(_subset), Some(host), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let mut labels = host.split('.');
    let (Some(name), Some(namespace), Some("svc"), Some(_domain)) =
        (labels.next(), labels.next(), labels.next(), labels.next())
    else {
        return None;
    };
    if name.is_empty() || namespace.is_empty() {
        return None;
    }
    Some(decode::encode_pairs(&[
        ("host", host),
        ("name", name),
        ("namespace", namespace),
    ]))
}

/// A worker's host for one stream (HTTP) or connection (network filter).
pub struct StreamHost<'a> {
    pub kind: FilterKind,
    pub filter: EnvoyPtr,
    pub filter_name: &'a str,
    pub defined: &'a Defined,
    /// Set while a worker replays `Root::configure`: the main thread already logged the
    /// configuration's problems and wrote its config-time metrics once.
    pub quiet: bool,
    /// The HTTP stream's start; `None` for a connection and at configure time.
    pub clock: Option<StreamClock>,
}

/// Header maps larger than this are cut (headers beyond it are not seen by expressions):
/// every per-request structure has a bound.
const MAX_HEADERS: usize = 1024;

fn header_map(map: Headers) -> u32 {
    match map {
        Headers::Request => abi::HEADER_REQUEST,
        Headers::Response => abi::HEADER_RESPONSE,
        Headers::ResponseTrailers => abi::HEADER_RESPONSE_TRAILER,
    }
}

impl StreamHost<'_> {
    fn http(&self) -> bool {
        self.kind == FilterKind::Http
    }
    fn write(&self, id: u32, values: &[&str], write: impl FnOnce(u64) -> abi::Write, v: u64) {
        if self.quiet || !self.http() {
            return;
        }
        let (_, id) = decode_id(id);
        abi::http_filter_write(self.filter, id, values, write(v));
    }
    fn add(&self, id: u32, values: &[&str], delta: i64) {
        if self.quiet || !self.http() {
            return;
        }
        let (kind, raw) = decode_id(id);
        match (kind, delta >= 0) {
            (Kind::Gauge, true) => {
                abi::http_filter_gauge_add(self.filter, raw, values, delta as u64);
            }
            (Kind::Gauge, false) => self.write(id, values, abi::Write::Sub, delta.unsigned_abs()),
            (_, true) => self.write(id, values, abi::Write::Add, delta as u64),
            // Counters never go down.
            (_, false) => {}
        }
    }
}

impl Host for StreamHost<'_> {
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        if let Some(v) = static_property(path, self.filter_name) {
            return v;
        }
        match path {
            ["filter_state", key] if self.http() => {
                return abi::http_filter_state(self.filter, key)
            }
            // Endpoint metadata as a string value, as the filter reads it (`istio.workload`).
            ["xds", "upstream_host_metadata", "filter_metadata", ns, key] if self.http() => {
                return abi::http_metadata_string(self.filter, abi::METADATA_HOST, ns, key)
            }
            ["xds", "cluster_metadata", "filter_metadata", ns, key] if self.http() => {
                return abi::http_metadata_string(self.filter, abi::METADATA_CLUSTER, ns, key)
            }
            ["xds", "cluster_metadata", "filter_metadata", "istio", "services", "0"] => {
                let name = abi::attribute_string(self.kind, self.filter, ATTR_CLUSTER_NAME)?;
                return service_from_cluster_name(&decode::string(name));
            }
            // One field of it (`istio.services[0].name` in an expression).
            ["xds", "cluster_metadata", "filter_metadata", "istio", "services", "0", field] => {
                let name = abi::attribute_string(self.kind, self.filter, ATTR_CLUSTER_NAME)?;
                let service = service_from_cluster_name(&decode::string(name))?;
                return decode::pairs(&service)
                    .into_iter()
                    .find(|(k, _)| k == field)
                    .map(|(_, v)| v.into_bytes());
            }
            ["request", "time"] => return self.clock.map(|c| c.wall_ns.to_le_bytes().to_vec()),
            ["request", "duration"] => {
                return self.clock.map(|c| c.elapsed_ns().to_le_bytes().to_vec())
            }
            // Envoy 1.40 answers id 29 only on a TLS connection (measured: plaintext fails as
            // bool, string and int); the Wasm host says `false` there, and so does the module
            // when the connection has no TLS version.
            ["connection", "mtls"] => {
                let mtls = abi::attribute_bool(self.kind, self.filter, ATTR_MTLS).or_else(|| {
                    abi::attribute_string(self.kind, self.filter, ATTR_TLS_VERSION)
                        .is_none()
                        .then_some(false)
                });
                return mtls.map(|b| vec![u8::from(b)]);
            }
            _ => {}
        }
        match attribute(path)? {
            Attr::Str(id) => abi::attribute_string(self.kind, self.filter, id),
            Attr::Int(id) => {
                abi::attribute_int(self.kind, self.filter, id).map(|v| v.to_le_bytes().to_vec())
            }
            Attr::Bool(id) => {
                abi::attribute_bool(self.kind, self.filter, id).map(|b| vec![u8::from(b)])
            }
        }
    }
    fn header(&self, map: Headers, name: &str) -> Option<String> {
        if !self.http() {
            return None;
        }
        abi::http_header(self.filter, header_map(map), name).map(decode::string)
    }
    fn header_map(&self, map: Headers) -> Vec<(String, String)> {
        if !self.http() {
            return Vec::new();
        }
        abi::http_headers(self.filter, header_map(map), MAX_HEADERS)
            .into_iter()
            .map(|(k, v)| (decode::string(k), decode::string(v)))
            .collect()
    }
    fn set_header(&self, map: Headers, name: &str, value: Option<&str>) {
        if self.http() {
            abi::http_set_header(self.filter, header_map(map), name, value);
        }
    }
    fn define_metric(&self, _kind: MetricKind, name: &str) -> Option<u32> {
        self.defined.get(name).copied()
    }
    fn increment_metric(&self, id: u32, delta: i64) {
        self.add(id, &[], delta);
    }
    fn record_metric(&self, id: u32, value: u64) {
        match decode_id(id).0 {
            Kind::Gauge => self.write(id, &[], abi::Write::Set, value),
            _ => self.write(id, &[], abi::Write::Record, value),
        }
    }
    fn log(&self, level: LogLevel, message: &str) {
        if !self.quiet {
            abi::log(level_of(level), message);
        }
    }
    /// Filter state `wasm.<path>`: the key the Wasm build's `set_property` writes, so one
    /// access-log format (`%FILTER_STATE(wasm.meshstats_log:PLAIN)%`) serves both builds.
    fn set_property(&self, path: &[&str], value: &[u8]) {
        let key = format!("wasm.{}", path.join("."));
        abi::set_filter_state(self.kind, self.filter, &key, value);
    }
    fn labelled_metrics(&self) -> bool {
        true
    }
    fn define_labelled_metric(
        &self,
        _kind: MetricKind,
        name: &str,
        _labels: &[&str],
    ) -> Option<u32> {
        self.defined.get(name).copied()
    }
    fn increment_labelled_metric(&self, id: u32, values: &[&str], delta: i64) {
        self.add(id, values, delta);
    }
    fn record_labelled_metric(&self, id: u32, values: &[&str], value: u64) {
        match decode_id(id).0 {
            Kind::Gauge => self.write(id, values, abi::Write::Set, value),
            _ => self.write(id, values, abi::Write::Record, value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_ids_keep_their_kind() {
        for (kind, raw) in [
            (Kind::Counter, 1),
            (Kind::Gauge, 7),
            (Kind::Histogram, 123_456),
        ] {
            let id = encode_id(kind, raw);
            assert_eq!(id.map(decode_id), Some((kind, raw)));
        }
        assert_eq!(encode_id(Kind::Counter, 1 << 30), None);
    }

    #[test]
    fn service_of_an_istio_outbound_cluster() {
        let pairs = |c: &str| service_from_cluster_name(c).map(|b| decode::pairs(&b));
        let s = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(
            pairs("outbound|9080|v1|ratings.default.svc.cluster.local"),
            Some(vec![
                s("host", "ratings.default.svc.cluster.local"),
                s("name", "ratings"),
                s("namespace", "default"),
            ])
        );
        for other in [
            "inbound|9080||",
            "outbound|443||httpbin.org",
            "outbound|80||a.b.c.d",
            "BlackHoleCluster",
            "outbound|80||ratings.default.svc.cluster.local|extra",
        ] {
            assert_eq!(pairs(other), None, "{other}");
        }
    }

    #[test]
    fn attribute_ids_follow_envoy_1_40() {
        assert!(matches!(
            attribute(&["response", "code"]),
            Some(Attr::Int(15))
        ));
        assert!(matches!(
            attribute(&["xds", "cluster_name"]),
            Some(Attr::Str(57))
        ));
        assert!(matches!(
            attribute(&["connection", "mtls"]),
            Some(Attr::Bool(29))
        ));
        assert!(attribute(&["xds", "node"]).is_none());
    }
}
