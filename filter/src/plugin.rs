//! The filter's behaviour, one configuration ([`Root`]) and one HTTP stream ([`Stream`]) at
//! a time, written against [`Host`] so all of it tests on the host.
//!
//! Per stream: request headers (exchange: read and strip the downstream peer, add ours when
//! outbound), response headers (read and strip the upstream peer, answer with ours when
//! inbound), then at stream end `on_log` reads the attributes once, fills the standard
//! labels, records the metrics and writes the access log entries the request selects.

use crate::access_log::{self, LogTable};
use crate::attributes::batch::Batch;
use crate::attributes::slots::{self, Inputs};
use crate::attributes::vocabulary::{NodeField, SlotDef, Source, Vocabulary};
use crate::attributes::{Direction, Needs, RequestAttributes, SeenHeaders, ServiceCache};
use crate::config::{self, ConfigError, PluginConfig};
use crate::expr::Attr;
use crate::host::{decode, Headers, Host, LogLevel};
use crate::labels::{Context, Dimensions, NodeView, Reporter};
use crate::metrics::{self, MetricTable};
use crate::peer::{
    self, PeerCache, PeerNode, DEFAULT_PEER_CACHE_SIZE, METADATA_HEADER, METADATA_ID_HEADER,
};
use std::rc::Rc;

/// State for one filter configuration, shared by all its streams.
pub struct Root {
    config: PluginConfig,
    metrics: MetricTable,
    logs: LogTable,
    local: PeerNode,
    /// Our `x-envoy-peer-metadata` value, encoded once.
    local_header: String,
    /// Our TCP exchange frame (`tcp_exchange.rs`), encoded once.
    local_frame: Vec<u8>,
    node_id: String,
    /// Set by Istio's `stats_inbound` / `stats_outbound` root ids; else the listener decides.
    root_direction: Option<Direction>,
    peers: PeerCache,
    dims: Dimensions,
    /// The attributes expressions read, and this request's values of them.
    slot_defs: Vec<SlotDef>,
    slots: Vec<Option<Attr>>,
    needs: Needs,
    services: ServiceCache,
    problems: Vec<ConfigError>,
    /// What TCP reports read (`tcp.rs`): the TCP metrics' labels only.
    tcp_needs: Needs,
    ticks: tcp::Ticks,
    /// What periodic gRPC message reports read (`grpc.rs`); `None` when no message metric
    /// is configured, so gRPC streams do no extra work.
    grpc_needs: Option<Needs>,
    /// Callers' exchange headers not believed: counted, and logged once (`trust.rs`).
    rejections: trust::Rejections,
    /// What stream end reads, in one host call where the host can (`batch.rs`), for an
    /// inbound and an outbound stream; `None` where the root id decides the direction.
    end_batches: [Option<Batch>; 2],
    /// The downstream certificate, read when a caller's exchange headers are checked.
    cert_batch: Option<Batch>,
}

/// What one HTTP stream learned before it ended.
#[derive(Debug, Default)]
pub struct Stream {
    direction: Option<Direction>,
    downstream_peer: Option<Rc<PeerNode>>,
    upstream_peer: Option<Rc<PeerNode>>,
    /// The downstream sent exchange headers that were believed, so it gets ours back.
    exchange_received: bool,
    seen: SeenHeaders,
    /// Set when the stream is a TCP connection (network filter), see `tcp.rs`.
    tcp: Option<tcp::TcpStream>,
    /// Set for a gRPC stream when message metrics are configured, see `grpc.rs`.
    grpc: Option<grpc::GrpcStream>,
}

impl Root {
    /// Builds the state for a configuration. Never fails: a configuration that cannot be used
    /// is logged once, counted, and replaced by the defaults of `{}`, so traffic keeps flowing.
    pub fn configure(host: &impl Host, config_text: &str) -> Root {
        let compiled = match compile(config_text) {
            Ok(c) => {
                // Parts that did not compile are left out; the rest works.
                for p in &c.problems {
                    host.log(
                        LogLevel::Error,
                        &format!("meshstats: {p}; {}", consequence(p)),
                    );
                }
                for p in &c.unevaluable {
                    host.log(
                        LogLevel::Error,
                        &format!("meshstats: {p}; {UNEVALUABLE_CONSEQUENCE}"),
                    );
                }
                c
            }
            Err(e) => {
                host.log(
                    LogLevel::Error,
                    &format!("meshstats: {e}; serving with the defaults of {{}}"),
                );
                let mut defaults = compile("{}").unwrap_or_default();
                defaults.problems.push(e);
                defaults
            }
        };
        // Both kinds count: each is a mistake in the configuration an operator should see.
        let count = compiled.problems.len() + compiled.unevaluable.len();
        if count > 0 {
            if let Some(id) =
                host.define_metric(config::MetricKind::Counter, metrics::CONFIG_ERRORS_METRIC)
            {
                host.increment_metric(id, count as i64);
            }
        }
        let Compiled {
            config,
            mut metrics,
            logs,
            vocabulary,
            mut problems,
            unevaluable,
        } = compiled;
        problems.extend(unevaluable);
        metrics.define_counters(host);
        let mut needs = metrics.needs();
        let mut tcp_needs = metrics.needs_for(metrics::ReportKind::TcpConnection);
        // `response.flags_short` then shares the standard labels' read of the flags, so no
        // request reads them twice.
        if vocabulary
            .slots()
            .iter()
            .any(|d| d.source == Source::ResponseFlagsShort)
        {
            needs.response_flags = true;
            tcp_needs.response_flags = true;
        }
        // Expressions read these from what the standard labels computed: an expression must
        // see them computed even when no metric keeps the label (Mixer-shaped metrics
        // replace `destination_service` by `destination.service.host`).
        for d in vocabulary.slots() {
            let n = [&mut needs, &mut tcp_needs];
            match d.source {
                Source::DestinationServiceHost
                | Source::DestinationServiceName
                | Source::DestinationServiceNamespace => {
                    n.into_iter().for_each(|n| n.service = true)
                }
                Source::Node(_, NodeField::Principal) => {
                    n.into_iter().for_each(|n| n.principals = [true, true])
                }
                _ => {}
            }
        }
        let local = read_local_node(host);
        let node_id = host
            .property(&["xds", "node", "id"])
            .map(decode::string)
            .unwrap_or_default();
        let root_id = host
            .property(&["plugin_root_id"])
            .map(decode::string)
            .unwrap_or_default();
        let root_direction = match root_id.as_str() {
            "stats_inbound" => Some(Direction::Inbound),
            "stats_outbound" => Some(Direction::Outbound),
            _ => None,
        };
        let version = if local.istio_version.is_empty() {
            crate::VERSION
        } else {
            &local.istio_version
        };
        let encoding = config
            .stat_name_encoding
            .resolve(!local.istio_version.is_empty());
        metrics.set_encoding(encoding);
        // A filter and a bootstrap that disagree on the encoding lose every label; this line
        // is how to tell which one the filter uses (docs/labels.md). Labelled metrics carry
        // their labels themselves: no encoding, no stats_tags.
        if !host.labelled_metrics() {
            host.log(
            LogLevel::Info,
            &format!(
                "meshstats: stat names use the {} encoding; the bootstrap's stats_tags must be rendered for it",
                    encoding.as_str()
                ),
            );
        }
        metrics.record_build(host, version);
        let cache_size = config
            .max_peer_cache_size
            .map_or(DEFAULT_PEER_CACHE_SIZE, |n| n as usize);
        let grpc_needs = metrics
            .has_metrics_of(metrics::ReportKind::GrpcStream)
            .then(|| metrics.needs_for(metrics::ReportKind::GrpcStream));
        let slot_defs = vocabulary.slots().to_vec();
        let (end_batches, cert_batch) = if config.batch_reads {
            let batch_needs = grpc_needs.map_or(needs, |g| grpc::union(needs, g));
            let eager: Vec<&[String]> = logs
                .eager_slots()
                .iter()
                .filter_map(|&i| match slot_defs.get(i).map(|d| &d.source) {
                    Some(Source::Property(path) | Source::Ip(path)) => Some(path.as_slice()),
                    _ => None,
                })
                .collect();
            let may = |d: Direction| root_direction.is_none_or(|r| r == d);
            let end = |d: Direction| {
                may(d)
                    .then(|| Batch::prepare(host, &stream_end_paths(d, &batch_needs, &eager)))
                    .flatten()
            };
            let cert = may(Direction::Inbound)
                .then(|| {
                    Batch::prepare(
                        host,
                        &[
                            path(&["connection", "mtls"]),
                            path(&["connection", "uri_san_peer_certificate"]),
                        ],
                    )
                })
                .flatten();
            ([end(Direction::Inbound), end(Direction::Outbound)], cert)
        } else {
            ([None, None], None)
        };
        Root {
            end_batches,
            cert_batch,
            grpc_needs,
            ticks: tcp::Ticks::new(&config),
            tcp_needs,
            local_header: local.to_header_value(),
            local_frame: peer::frame::encode_frame(&local, &node_id),
            peers: PeerCache::new(cache_size),
            config,
            metrics,
            logs,
            local,
            node_id,
            root_direction,
            dims: Dimensions::default(),
            slot_defs,
            slots: Vec::new(),
            needs,
            services: ServiceCache::default(),
            problems,
            rejections: trust::Rejections::default(),
        }
    }

    /// Periodic: forget cached cluster metadata, so configuration changes show.
    pub fn on_tick(&mut self) {
        self.services.clear();
    }

    /// What in the configuration could not be used (each was logged and counted).
    pub fn problems(&self) -> &[ConfigError] {
        &self.problems
    }

    pub fn metrics(&self) -> &MetricTable {
        &self.metrics
    }

    fn direction(&self, host: &impl Host, stream: &mut Stream) -> Direction {
        if let Some(d) = stream.direction {
            return d;
        }
        let d = self
            .root_direction
            .or_else(|| {
                Direction::from_listener(
                    host.property(&["xds", "listener_direction"])
                        .and_then(|b| decode::int(&b)),
                )
            })
            .unwrap_or(Direction::Inbound);
        stream.direction = Some(d);
        d
    }

    fn exchange_enabled(&self) -> bool {
        !self.config.disable_metadata_exchange
    }

    pub fn on_request_headers(&mut self, host: &impl Host, stream: &mut Stream) {
        let direction = self.direction(host, stream);
        let headers = host.header_map(Headers::Request);
        stream.seen.note_request(&headers);
        self.note_grpc(stream);
        // The incoming exchange headers go and, client side, ours come in one edit: the app
        // never sees a caller's claims, and the next hop sees ours.
        let ours = direction == Direction::Outbound && self.exchange_enabled();
        self.edit_exchange(host, Headers::Request, &headers, ours);
        // The client side sends its own instead: a caller's claims go no further.
        if let (Some((value, id)), Direction::Inbound) = (exchange_of(&headers), direction) {
            // Taken out for the call so the batch can be borrowed while `self` is mutated.
            let batch = self.cert_batch.take();
            let cert_host = Batch::read(batch.as_ref(), host);
            stream.downstream_peer = self.believe_downstream(&cert_host, stream, id, value);
            self.cert_batch = batch;
            stream.exchange_received = stream.downstream_peer.is_some();
        }
    }

    /// Edits `map` (whose pairs are `current`): the exchange headers out, ours in when
    /// `send` (the id only when the node has one).
    fn edit_exchange(
        &self,
        host: &impl Host,
        map: Headers,
        current: &[(String, String)],
        send: bool,
    ) {
        let ours = [
            (METADATA_HEADER, self.local_header.as_str()),
            (METADATA_ID_HEADER, self.node_id.as_str()),
        ];
        let n = match (send, self.node_id.is_empty()) {
            (false, _) => 0,
            (true, true) => 1,
            (true, false) => 2,
        };
        host.edit_headers(
            map,
            current,
            &EXCHANGE_HEADERS,
            ours.get(..n).unwrap_or_default(),
        );
    }

    pub fn on_response_headers(&mut self, host: &impl Host, stream: &mut Stream) {
        let direction = self.direction(host, stream);
        let headers = host.header_map(Headers::Response);
        stream.seen.note_response(&headers);
        if let (Some((value, id)), Direction::Outbound) = (exchange_of(&headers), direction) {
            // A header that does not decode is ignored, as a missing one.
            stream.upstream_peer = self.peers.get_or_decode(id, value).ok();
        }
        let ours =
            direction == Direction::Inbound && stream.exchange_received && self.exchange_enabled();
        self.edit_exchange(host, Headers::Response, &headers, ours);
    }

    fn reporter(&self, direction: Direction) -> Reporter {
        match (self.config.reporter, direction) {
            (config::ReporterMode::ServerGateway, _) => Reporter::Waypoint,
            (_, Direction::Outbound) => Reporter::Source,
            (_, Direction::Inbound) => Reporter::Destination,
        }
    }

    /// Stream end: compute the labels, record every metric once, then write the log entries.
    pub fn on_log(&mut self, host: &impl Host, stream: &mut Stream) {
        self.report(host, stream, Measured::Request);
    }

    /// The one report step of HTTP requests, TCP connections and gRPC streams, as Istio's
    /// `report()`: attributes → the standard labels → expression slots → metrics (→ logs and
    /// the last gRPC message report, for a request). Only what differs per kind is chosen
    /// here: what to read, where the peer comes from, and which metrics record.
    fn report(&mut self, host: &impl Host, stream: &mut Stream, measured: Measured) {
        let direction = self.direction(host, stream);
        let is_tcp = matches!(measured, Measured::Tcp(_));
        // No metadata exchange on TCP: the client side knows the upstream endpoint's
        // `istio.workload` once connected (kept: it does not change for the connection).
        if is_tcp && direction == Direction::Outbound && stream.upstream_peer.is_none() {
            stream.upstream_peer = upstream_host_fallback(host).map(Rc::new);
        }
        // No headers on a TCP stream: nothing to read for gRPC, Host or `:status`.
        let tcp_seen = SeenHeaders {
            grpc: Some(false),
            authority: None,
            status: Some(0),
            downstream_cert: None,
        };
        let http_host_header = !self.config.disable_host_header_fallback;
        let (needs, seen, use_host_header) = match measured {
            Measured::Request => (self.log_needs(stream), &stream.seen, http_host_header),
            Measured::Grpc(_) => (
                self.grpc_needs.unwrap_or(Needs::NONE),
                &stream.seen,
                http_host_header,
            ),
            // No Host header: `destination_service` comes from cluster metadata, else the
            // local canonical service (server side) or `unknown` (client side), as Istio's
            // TCP stats.
            Measured::Tcp(_) => (self.tcp_needs, &tcp_seen, false),
        };
        // Stream end only: a report from the tick runs under `proxy_set_effective_context`,
        // which Envoy's `expr_evaluate` does not follow (it evaluates the current context).
        let batch = match (&measured, direction) {
            (Measured::Request, Direction::Inbound) => self.end_batches[0].as_ref(),
            (Measured::Request, Direction::Outbound) => self.end_batches[1].as_ref(),
            _ => None,
        };
        // Every `property` read below is answered from this one call where it can be.
        let plain = host;
        let batched = Batch::read(batch, host);
        let host = &batched;
        let req = RequestAttributes::read(
            host,
            direction,
            use_host_header,
            seen,
            &needs,
            &mut self.services,
        );
        let mut fallback = None;
        let peer = match (is_tcp, direction) {
            (true, Direction::Inbound) => stream.downstream_peer.as_deref().map(NodeView::peer),
            (true, Direction::Outbound) => {
                stream.upstream_peer.as_deref().map(NodeView::with_labels)
            }
            (false, _) => peer_view(host, direction, stream, &mut fallback),
        };
        let reporter = self.reporter(direction);
        let local = NodeView::with_labels(&self.local);
        let cx = Context {
            reporter,
            direction,
            local,
            peer,
            use_host_header,
        };
        self.dims.fill(&cx, &req);
        if is_tcp {
            self.dims.set_tcp();
        }
        let inputs = Inputs {
            host,
            direction,
            local,
            peer,
            req: &req,
            dims: &self.dims,
        };
        // What the metrics and the logs' `match`es read; the logs read the rest on demand.
        slots::reset(&self.slot_defs, &mut self.slots);
        slots::fill_some(
            &self.slot_defs,
            &mut self.slots,
            self.logs.eager_slots(),
            &inputs,
        );
        let report = match &measured {
            Measured::Request => metrics::Report::Request(&req),
            Measured::Tcp(delta) => metrics::Report::TcpConnection(delta),
            Measured::Grpc(delta) => metrics::Report::GrpcStream(delta),
        };
        self.metrics
            .record_report(host, &self.dims, &self.slots, report);
        if let Measured::Request = measured {
            if !self.logs.is_empty() {
                self.logs.record(&inputs, &self.slot_defs, &mut self.slots);
            }
            // A gRPC stream's last message report shares these labels and slots.
            self.finish_grpc(plain, stream);
        }
    }

    /// Hands the counters summed since the last flush to the host (`MetricTable::flush`).
    /// The adapter calls it on every tick, and before this configuration goes away (a new
    /// configuration replaces it, the VM shuts down): counters are never lost, and reach
    /// Envoy at most one tick late.
    pub fn flush(&self, host: &impl Host) {
        self.metrics.flush(host);
    }
}

/// What a report measures: its kind and, for the periodic kinds, the deltas.
#[derive(Debug, Clone, Copy)]
enum Measured {
    /// A finished HTTP (or gRPC) request, at stream end.
    Request,
    Tcp(metrics::TcpDelta),
    Grpc(metrics::GrpcDelta),
}

/// Removed from every request and response whatever their value: they are hop-by-hop
/// between proxies, and the app never sees them.
const EXCHANGE_HEADERS: [&str; 2] = [METADATA_HEADER, METADATA_ID_HEADER];

/// The exchanged metadata and id in `headers`, when there is metadata to read.
fn exchange_of(headers: &[(String, String)]) -> Option<(&str, &str)> {
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let (value, id) = (find(METADATA_HEADER), find(METADATA_ID_HEADER));
    Some((value.filter(|v| !v.is_empty())?, id.unwrap_or_default()))
}

fn path(segments: &[&str]) -> Vec<String> {
    segments.iter().map(|s| s.to_string()).collect()
}

/// What `RequestAttributes::read` may read at stream end for
/// `needs`, and the properties of the expressions every request evaluates. Reads that only
/// some requests make (`response.grpc_status`, `xds.route_name`, the peer SAN without mTLS)
/// are in too: in a batch they cost bytes, not a crossing.
fn stream_end_paths(direction: Direction, needs: &Needs, eager: &[&[String]]) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut want = |need: bool, p: &[&str]| {
        if need {
            paths.push(path(p));
        }
    };
    let [source, destination] = needs.principals;
    match direction {
        Direction::Inbound => {
            want(needs.security_policy || source, &["connection", "mtls"]);
            want(source, &["connection", "uri_san_peer_certificate"]);
            want(destination, &["connection", "uri_san_local_certificate"]);
        }
        Direction::Outbound => {
            want(source, &["upstream", "uri_san_local_certificate"]);
            want(destination, &["upstream", "uri_san_peer_certificate"]);
        }
    }
    want(needs.service, &["xds", "cluster_name"]);
    want(needs.service, &["xds", "route_name"]);
    want(true, &["response", "code"]);
    want(needs.response_flags, &["response", "flags"]);
    want(needs.grpc_status, &["response", "grpc_status"]);
    want(needs.duration, &["request", "duration"]);
    want(needs.request_bytes, &["request", "total_size"]);
    want(needs.response_bytes, &["response", "total_size"]);
    paths.extend(eager.iter().map(|p| p.to_vec()));
    paths
}

/// The other side of a stream, when known: the exchanged peer, else (client side) the
/// endpoint's `istio.workload` metadata, which `fallback` then holds.
fn peer_view<'a>(
    host: &impl Host,
    direction: Direction,
    stream: &'a Stream,
    fallback: &'a mut Option<PeerNode>,
) -> Option<NodeView<'a>> {
    match direction {
        Direction::Inbound => stream.downstream_peer.as_deref().map(NodeView::peer),
        Direction::Outbound => match stream.upstream_peer.as_deref() {
            Some(p) => Some(NodeView::peer(p)),
            None => {
                *fallback = upstream_host_fallback(host);
                fallback.as_ref().map(NodeView::with_labels)
            }
        },
    }
}

/// A configuration compiled for the filter.
#[derive(Debug, Default)]
pub struct Compiled {
    pub config: PluginConfig,
    pub metrics: MetricTable,
    pub logs: LogTable,
    pub vocabulary: Vocabulary,
    /// Parts that could not be used; each disables only what it belongs to.
    pub problems: Vec<ConfigError>,
    /// Dimensions that parse but name what cannot be evaluated (an unknown attribute, a type
    /// mismatch): reported like problems, yet kept, with the value `unknown`, as in Istio.
    pub unevaluable: Vec<ConfigError>,
}

/// Parses and compiles a configuration exactly as the filter does at load time; `meshstats
/// validate` calls this too, so both report the same problems in the same words. `Err` is a
/// configuration that cannot be used at all (the filter then serves with the defaults).
pub fn compile(text: &str) -> Result<Compiled, ConfigError> {
    let config = PluginConfig::parse(text)?;
    let mut vocabulary = Vocabulary::default();
    let metrics::Output {
        table: metrics,
        mut problems,
        unevaluable,
    } = metrics::compile(&config, &mut vocabulary);
    // After the metrics: the slots they resolved are the ones every request fills.
    let (logs, log_problems) = access_log::compile(&config, &mut vocabulary);
    problems.extend(log_problems);
    Ok(Compiled {
        config,
        metrics,
        logs,
        vocabulary,
        problems,
        unevaluable,
    })
}

/// What the filter does about a dimension that cannot be evaluated, for its log line.
pub const UNEVALUABLE_CONSEQUENCE: &str = "the label is `unknown`";

/// What the filter does about a problem, for its log line.
fn consequence(p: &ConfigError) -> &'static str {
    let path = p.path.as_str();
    if path.starts_with("logs[") {
        return log_consequence(path);
    }
    if path.contains(".dimensions.") {
        "the dimension is left out"
    } else if path.ends_with(".match") {
        "the metric is not recorded"
    } else if path.starts_with("definitions[") {
        "the metric is not defined"
    } else {
        "that part is ignored"
    }
}

fn log_consequence(path: &str) -> &'static str {
    if path.contains(".variables.") || path.contains(".preset.") {
        "the variable is left out of the log's entries"
    } else if path.ends_with(".severity") {
        "the log's level is info"
    } else if path.ends_with(".timestamp") {
        "the log's time is the request's start"
    } else {
        "the log is disabled"
    }
}

/// Istio's fallback when the upstream did not exchange metadata: the endpoint's
/// `filter_metadata.istio.workload`.
fn upstream_host_fallback(host: &impl Host) -> Option<PeerNode> {
    let bytes = host.property(&[
        "xds",
        "upstream_host_metadata",
        "filter_metadata",
        "istio",
        "workload",
    ])?;
    PeerNode::from_istio_workload(&decode::string(bytes))
}

fn read_local_node(host: &impl Host) -> PeerNode {
    let mut node = PeerNode::default();
    for f in &peer::STRING_FIELDS {
        if let Some(value) = host.property(&["xds", "node", "metadata", f.key]) {
            *(f.get_mut)(&mut node) = decode::string(value);
        }
    }
    for (key, value) in host
        .property(&["xds", "node", "metadata", peer::LABELS])
        .map(|b| decode::pairs(&b))
        .unwrap_or_default()
    {
        node.set_label(&key, &value);
    }
    if let Some(b) = host.property(&["xds", "node", "metadata", peer::PLATFORM_METADATA]) {
        let mut pairs = decode::pairs(&b);
        pairs.sort();
        node.platform_metadata = pairs;
    }
    node
}

// A child of this module, so it can extend `Root`/`Stream` without widening their fields.
#[path = "grpc.rs"]
mod grpc;
#[path = "tcp.rs"]
mod tcp;
#[path = "tcp_exchange.rs"]
mod tcp_exchange;
pub use tcp_exchange::DataAction;
#[path = "trust.rs"]
mod trust;

#[cfg(test)]
mod customized_tests;
#[cfg(test)]
mod tests;
