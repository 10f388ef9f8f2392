//! The metrics the filter emits and how a request becomes metric updates.
//!
//! Compiled once per configuration (`compile.rs`) into a [`MetricTable`]: which metrics
//! exist, which labels each carries (standard labels in their fixed order, then custom
//! dimensions), where each value comes from, and which predicates gate it. Per request, the
//! label values are joined into a reusable key; a cache maps that key to the Envoy metric
//! ids, so a label tuple seen before costs one hash lookup (fast path) and only a new tuple
//! builds stat names and defines metrics (slow path).

mod compile;

use crate::attributes::{Needs, RequestAttributes};
use crate::config::MetricKind;
use crate::expr::{Attr, Program};
use crate::host::Host;
use crate::labels::{Dimensions, UNKNOWN};
use crate::stat_name;
use hashbrown::HashMap;

pub use compile::{all_tag_names, bucket_settings, compile, BucketSetting};

/// Prefix of every standard and user-defined metric, as in Istio.
pub const PREFIX: &str = "istio_";
/// Counts configuration problems (a config that could not be used, or parts of one).
pub const CONFIG_ERRORS_METRIC: &str = "meshstats_config_errors_total";
/// Counts callers' exchange headers not believed (`peer_metadata_trust`, certificate checks).
pub const PEER_REJECTED_METRIC: &str = "meshstats_peer_metadata_rejected_total";
/// Counts records skipped because a metric's value expression failed.
pub const EVAL_ERRORS_METRIC: &str = "meshstats_evaluation_errors_total";
/// Labels of `istio_build`.
pub const BUILD_LABELS: [&str; 2] = ["component", "tag"];

/// What a standard metric measures (a definition measures an expression instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StandardValue {
    One,
    DurationMs,
    RequestBytes,
    ResponseBytes,
    /// TCP: 1 in the connection's first report.
    TcpOpened,
    /// TCP: 1 in the connection's last report.
    TcpClosed,
    /// TCP: bytes from the upstream since the last report.
    TcpSentBytes,
    /// TCP: bytes from the downstream since the last report.
    TcpReceivedBytes,
    /// gRPC: request messages since the stream's last report.
    GrpcRequestMessages,
    /// gRPC: response messages since the stream's last report.
    GrpcResponseMessages,
}

/// Which report records a metric. Not the request's protocol: gRPC requests are recorded by
/// [`ReportKind::Request`] like any HTTP request; only their message counts have their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    /// A finished HTTP (or gRPC) request, at stream end.
    Request,
    /// A TCP connection, every `tcp_reporting_duration` and at close (`tcp.rs`).
    TcpConnection,
    /// A gRPC stream's message counts, periodically and at its end (`grpc.rs`).
    GrpcStream,
}

/// What one gRPC stream report adds (message deltas since the previous report).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GrpcDelta {
    pub request: u64,
    pub response: u64,
}

/// What one TCP report adds (deltas since the previous report of the connection).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpDelta {
    pub opened: bool,
    pub closed: bool,
    pub sent: u64,
    pub received: u64,
}

/// One report being recorded, with what it measured.
#[derive(Debug, Clone, Copy)]
enum Report<'a> {
    Request(&'a RequestAttributes),
    TcpConnection(&'a TcpDelta),
    GrpcStream(&'a GrpcDelta),
}

impl Report<'_> {
    fn kind(self) -> ReportKind {
        match self {
            Report::Request(_) => ReportKind::Request,
            Report::TcpConnection(_) => ReportKind::TcpConnection,
            Report::GrpcStream(_) => ReportKind::GrpcStream,
        }
    }
}

impl StandardValue {
    /// 0 for a value another kind of report measures: a counter then records nothing.
    fn of(self, report: Report<'_>) -> u64 {
        match (self, report) {
            (StandardValue::One, _) => 1,
            (StandardValue::DurationMs, Report::Request(req)) => req.duration_ns / 1_000_000,
            (StandardValue::RequestBytes, Report::Request(req)) => req.request_bytes,
            (StandardValue::ResponseBytes, Report::Request(req)) => req.response_bytes,
            (StandardValue::TcpOpened, Report::TcpConnection(d)) => u64::from(d.opened),
            (StandardValue::TcpClosed, Report::TcpConnection(d)) => u64::from(d.closed),
            (StandardValue::TcpSentBytes, Report::TcpConnection(d)) => d.sent,
            (StandardValue::TcpReceivedBytes, Report::TcpConnection(d)) => d.received,
            (StandardValue::GrpcRequestMessages, Report::GrpcStream(d)) => d.request,
            (StandardValue::GrpcResponseMessages, Report::GrpcStream(d)) => d.response,
            _ => 0,
        }
    }
}

/// One of Istio's standard metrics.
#[derive(Debug, Clone, Copy)]
pub struct StandardMetric {
    /// Name without the `istio_` prefix, as `metrics[].name` refers to it.
    pub name: &'static str,
    pub kind: MetricKind,
    /// How many of [`STANDARD_LABELS`] it carries (a prefix of the list).
    pub label_count: usize,
    pub value: StandardValue,
}

/// The standard HTTP (and gRPC) metrics, recorded once per request at stream end.
pub const HTTP_METRICS: [StandardMetric; 4] = [
    StandardMetric {
        name: "requests_total",
        kind: MetricKind::Counter,
        label_count: 25,
        value: StandardValue::One,
    },
    StandardMetric {
        name: "request_duration_milliseconds",
        kind: MetricKind::Histogram,
        label_count: 25,
        value: StandardValue::DurationMs,
    },
    StandardMetric {
        name: "request_bytes",
        kind: MetricKind::Histogram,
        label_count: 25,
        value: StandardValue::RequestBytes,
    },
    StandardMetric {
        name: "response_bytes",
        kind: MetricKind::Histogram,
        label_count: 25,
        value: StandardValue::ResponseBytes,
    },
];

/// Istio's TCP metrics: the first 23 standard labels (no `response_code`,
/// `grpc_response_status`), reported per connection every `tcp_reporting_duration` and at close.
pub const TCP_METRICS: [StandardMetric; 4] = [
    StandardMetric {
        name: "tcp_connections_opened_total",
        kind: MetricKind::Counter,
        label_count: 23,
        value: StandardValue::TcpOpened,
    },
    StandardMetric {
        name: "tcp_connections_closed_total",
        kind: MetricKind::Counter,
        label_count: 23,
        value: StandardValue::TcpClosed,
    },
    StandardMetric {
        name: "tcp_sent_bytes_total",
        kind: MetricKind::Counter,
        label_count: 23,
        value: StandardValue::TcpSentBytes,
    },
    StandardMetric {
        name: "tcp_received_bytes_total",
        kind: MetricKind::Counter,
        label_count: 23,
        value: StandardValue::TcpReceivedBytes,
    },
];

/// Istio's gRPC message counters: the peer labels (the first 20, `reporter` …
/// `destination_cluster`), reported per gRPC stream every `tcp_reporting_duration` while it
/// is open and at its end, from Envoy's `grpc_stats` filter state.
pub const GRPC_METRICS: [StandardMetric; 2] = [
    StandardMetric {
        name: "request_messages_total",
        kind: MetricKind::Counter,
        label_count: 20,
        value: StandardValue::GrpcRequestMessages,
    },
    StandardMetric {
        name: "response_messages_total",
        kind: MetricKind::Counter,
        label_count: 20,
        value: StandardValue::GrpcResponseMessages,
    },
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LabelSource {
    Standard(usize),
    /// Index into the table's custom dimension expressions.
    Custom(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueSource {
    Standard(StandardValue),
    /// Index into the table's value expressions.
    Expr(usize),
}

#[derive(Debug, Clone)]
struct Spec {
    /// Full metric name, e.g. `istio_requests_total`.
    name: String,
    kind: MetricKind,
    labels: Vec<(String, LabelSource)>,
    value: ValueSource,
    /// Indexes into the table's predicates; all must hold.
    matchers: Vec<usize>,
    /// The one kind of report that records it.
    report: ReportKind,
}

/// Above this many distinct label tuples the cache starts over, so a flood of distinct
/// values (say, Host headers) costs re-definitions, not unbounded memory.
const MAX_CACHED_TUPLES: usize = 20_000;

#[derive(Default)]
pub struct MetricTable {
    specs: Vec<Spec>,
    dimensions: Vec<Program>,
    values: Vec<Program>,
    predicates: Vec<Program>,
    eval_errors: Option<u32>,
    cache: HashMap<Box<str>, Box<[Option<u32>]>>,
    custom: Vec<String>,
    key: String,
    name: String,
}

impl std::fmt::Debug for MetricTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricTable")
            .field("specs", &self.specs)
            .finish_non_exhaustive()
    }
}

impl MetricTable {
    /// Names of the metrics this table emits, e.g. `istio_requests_total`.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.specs.iter().map(|s| s.name.as_str())
    }

    /// The labels a metric carries, in emission order.
    pub fn labels_of(&self, metric: &str) -> Option<Vec<&str>> {
        let spec = self.specs.iter().find(|s| s.name == metric)?;
        Some(spec.labels.iter().map(|(t, _)| t.as_str()).collect())
    }

    /// Whether any metric of this report kind is left (not dropped): a stream does that
    /// report's work only then.
    pub fn has_metrics_of(&self, kind: ReportKind) -> bool {
        self.specs.iter().any(|s| s.report == kind)
    }

    /// The request attributes the standard labels and values of the HTTP metrics need.
    pub fn needs(&self) -> Needs {
        self.needs_for(ReportKind::Request)
    }

    /// The attributes the standard labels and values of one report kind's metrics need.
    pub fn needs_for(&self, kind: ReportKind) -> Needs {
        use crate::labels::idx;
        let mut n = Needs::NONE;
        for spec in self.specs.iter().filter(|s| s.report == kind) {
            for (_, source) in &spec.labels {
                if let LabelSource::Standard(i) = *source {
                    match i {
                        idx::SOURCE_PRINCIPAL => n.principals[0] = true,
                        idx::DESTINATION_PRINCIPAL => n.principals[1] = true,
                        idx::CONNECTION_SECURITY_POLICY => n.security_policy = true,
                        idx::RESPONSE_FLAGS => n.response_flags = true,
                        idx::DESTINATION_SERVICE..=idx::DESTINATION_SERVICE_NAMESPACE => {
                            n.service = true
                        }
                        idx::GRPC_RESPONSE_STATUS => n.grpc_status = true,
                        _ => {}
                    }
                }
            }
            match spec.value {
                ValueSource::Standard(StandardValue::DurationMs) => n.duration = true,
                ValueSource::Standard(StandardValue::RequestBytes) => n.request_bytes = true,
                ValueSource::Standard(StandardValue::ResponseBytes) => n.response_bytes = true,
                _ => {}
            }
        }
        n
    }

    /// Defines the table's own error counter; called once per configuration.
    pub fn define_counters(&mut self, host: &impl Host) {
        self.eval_errors = host.define_metric(MetricKind::Counter, EVAL_ERRORS_METRIC);
    }

    /// Records one finished request. `slots` are the attribute values expressions read.
    pub fn record(
        &mut self,
        host: &impl Host,
        dims: &Dimensions,
        slots: &[Option<Attr>],
        req: &RequestAttributes,
    ) {
        self.record_report(host, dims, slots, Report::Request(req));
    }

    /// Records one TCP connection report (the TCP metrics only).
    pub fn record_tcp(
        &mut self,
        host: &impl Host,
        dims: &Dimensions,
        slots: &[Option<Attr>],
        delta: &TcpDelta,
    ) {
        self.record_report(host, dims, slots, Report::TcpConnection(delta));
    }

    /// Records one gRPC stream report (the message counters only).
    pub fn record_grpc(
        &mut self,
        host: &impl Host,
        dims: &Dimensions,
        slots: &[Option<Attr>],
        delta: &GrpcDelta,
    ) {
        self.record_report(host, dims, slots, Report::GrpcStream(delta));
    }

    fn record_report(
        &mut self,
        host: &impl Host,
        dims: &Dimensions,
        slots: &[Option<Attr>],
        report: Report<'_>,
    ) {
        let kind = report.kind();
        self.custom.resize_with(self.dimensions.len(), String::new);
        for (out, program) in self.custom.iter_mut().zip(&self.dimensions) {
            out.clear();
            // A dimension that cannot be evaluated for this request is `unknown`, as in Istio.
            match program.eval(slots) {
                Ok(v) => v.write_to(out),
                Err(_) => out.push_str(UNKNOWN),
            }
        }
        self.key.clear();
        // One report kind's tuple must not reuse another's ids (those metrics are not defined).
        self.key.push(match kind {
            ReportKind::Request => 'h',
            ReportKind::TcpConnection => 't',
            ReportKind::GrpcStream => 'g',
        });
        for value in dims.values.iter().chain(&self.custom) {
            stat_name::push_value(&mut self.key, value);
            self.key.push_str(stat_name::FIELD_SEPARATOR);
        }
        // Fast path: a label tuple seen before.
        if let Some(ids) = self.cache.get(self.key.as_str()) {
            self.emit(host, ids, slots, report);
            return;
        }
        // Slow path: first time for this tuple.
        if self.cache.len() >= MAX_CACHED_TUPLES {
            self.cache.clear();
        }
        let mut ids = Vec::with_capacity(self.specs.len());
        for spec in &self.specs {
            if spec.report != kind {
                ids.push(None);
                continue;
            }
            self.name.clear();
            for (tag, source) in &spec.labels {
                let value = match *source {
                    LabelSource::Standard(i) => dims.values.get(i),
                    LabelSource::Custom(i) => self.custom.get(i),
                };
                stat_name::push_label(
                    &mut self.name,
                    tag,
                    value.map(String::as_str).unwrap_or_default(),
                );
            }
            self.name.push_str(&spec.name);
            ids.push(host.define_metric(spec.kind, &self.name));
        }
        let ids: Box<[Option<u32>]> = ids.into();
        self.emit(host, &ids, slots, report);
        self.cache.insert(self.key.as_str().into(), ids);
    }

    fn emit(
        &self,
        host: &impl Host,
        ids: &[Option<u32>],
        slots: &[Option<Attr>],
        report: Report<'_>,
    ) {
        for (spec, id) in self.specs.iter().zip(ids) {
            let Some(id) = *id else { continue };
            // A predicate that cannot be evaluated is false: when in doubt, do not record.
            let matched = spec.matchers.iter().all(|&m| {
                self.predicates
                    .get(m)
                    .is_some_and(|p| p.eval_bool(slots).unwrap_or(false))
            });
            if !matched {
                continue;
            }
            let value = match spec.value {
                ValueSource::Standard(v) => v.of(report) as i64,
                ValueSource::Expr(i) => match self.values.get(i).map(|p| p.eval_i64(slots)) {
                    Some(Ok(v)) => v,
                    _ => {
                        if let Some(e) = self.eval_errors {
                            host.increment_metric(e, 1);
                        }
                        continue;
                    }
                },
            };
            match spec.kind {
                MetricKind::Counter if value > 0 => host.increment_metric(id, value),
                MetricKind::Counter => {}
                MetricKind::Gauge | MetricKind::Histogram => {
                    host.record_metric(id, value.max(0) as u64)
                }
            }
        }
    }

    /// Distinct label tuples currently cached.
    pub fn cached_tuples(&self) -> usize {
        self.cache.len()
    }
}

/// Defines and sets `istio_build{component="proxy",tag=<version>}` = 1, as Istio does.
pub fn record_build(host: &impl Host, version: &str) {
    let mut name = String::new();
    stat_name::push_label(&mut name, "component", "proxy");
    stat_name::push_label(&mut name, "tag", version);
    name.push_str("istio_build");
    if let Some(id) = host.define_metric(MetricKind::Gauge, &name) {
        host.record_metric(id, 1);
    }
}

#[cfg(test)]
mod tests;
