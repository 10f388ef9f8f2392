//! The metrics the filter emits and how a request becomes metric updates.
//!
//! Compiled once per configuration (`compile.rs`) into a [`MetricTable`]: which metrics
//! exist, which labels each carries (standard labels in their fixed order, then custom
//! dimensions), where each value comes from, and which predicates gate it. Metrics with the
//! same labels form a [`Group`]. Per report, each group's label values are joined into a
//! reusable key; the group maps that key to the Envoy metric ids, so a label tuple seen before
//! costs one hash lookup (fast path) and only a new tuple builds stat names and defines
//! metrics (slow path). A group holds at most `max_series_per_metric` tuples; past that, new
//! tuples go to its overflow series, so neither Envoy's stats nor this table grow without
//! bound and the sum over a metric's series still counts every report.
//!
//! Two ways to name a series, chosen by the host ([`Host::labelled_metrics`]):
//! - stat names (proxy-wasm): one `define_metric` per series with the labels written into
//!   the name (`stat_name`). A host call crosses the Wasm boundary, so counter deltas are
//!   summed here per series and reach Envoy at [`MetricTable::flush`] (the root's tick, a
//!   configuration change, the VM going away): a steady-state request makes no
//!   `increment_metric` call. Histograms still take one `record_metric` per sample.
//! - labelled (Envoy dynamic modules): each metric is defined once per configuration with its
//!   label names, and every update passes the label values. Native calls are cheap, so
//!   nothing is held back: counters move at once.
//!
//! Both modes see the same label values: the tuple key's fields, cut to
//! `max_label_value_length` and written as `stat_name::push_value` writes them.

mod compile;

use crate::attributes::{Needs, RequestAttributes};
use crate::config::MetricKind;
use crate::expr::{Attr, Program};
use crate::host::{Host, LogLevel};
use crate::labels::{Dimensions, Reporter, UNKNOWN};
use crate::stat_name;
use hashbrown::HashMap;
use std::cell::Cell;

pub use compile::{
    all_tag_names, bucket_settings, compile, stats_tags, tag_keys, BucketSetting, Output,
};

/// Prefix of every standard and user-defined metric, as in Istio.
pub const PREFIX: &str = "istio_";
/// Counts configuration problems (a config that could not be used, or parts of one).
pub const CONFIG_ERRORS_METRIC: &str = "meshstats_config_errors_total";
/// Counts callers' exchange headers not believed (`peer_metadata_trust`, certificate checks).
pub const PEER_REJECTED_METRIC: &str = "meshstats_peer_metadata_rejected_total";
/// Counts records skipped because a metric's value expression failed.
pub const EVAL_ERRORS_METRIC: &str = "meshstats_evaluation_errors_total";
/// Counts reports recorded in an overflow series (a metric held `max_series_per_metric`
/// label sets already).
pub const SERIES_OVERFLOW_METRIC: &str = "meshstats_series_overflow_total";
/// Every label value of an overflow series but `reporter`.
pub const OVERFLOW_VALUE: &str = "meshstats_overflow";
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
pub enum Report<'a> {
    Request(&'a RequestAttributes),
    TcpConnection(&'a TcpDelta),
    GrpcStream(&'a GrpcDelta),
}

impl Report<'_> {
    pub fn kind(self) -> ReportKind {
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
    /// An expression that compiles to nothing Istio could evaluate: `unknown` on every report.
    Unknown,
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

/// One series of a metric in the stat-name mode: its Envoy id and, for a counter, what it
/// counted since the last flush. In the labelled mode the ids are per metric
/// ([`MetricTable::labelled`]) and a tuple holds no series.
#[derive(Debug, Default)]
struct Series {
    id: Option<u32>,
    pending: Cell<i64>,
}

impl Series {
    /// Hands the pending delta to the host; nothing when there is none.
    fn flush(&self, host: &impl Host) {
        let delta = self.pending.replace(0);
        if let (Some(id), true) = (self.id, delta != 0) {
            host.increment_metric(id, delta);
        }
    }
}

fn add(pending: &Cell<i64>, delta: i64) {
    pending.set(pending.get().saturating_add(delta));
}

/// Metrics that carry the same labels, so one label tuple is one series of each.
#[derive(Debug)]
struct Group {
    report: ReportKind,
    /// Indexes into the table's specs.
    specs: Vec<usize>,
    labels: Vec<LabelSource>,
    /// Position of a standard `reporter` label: the overflow series keeps it.
    reporter: Option<usize>,
    /// Tuple key → one series per spec (none in the labelled mode). At most `max_series`
    /// entries, never cleared: clearing would re-define every live series.
    tuples: HashMap<Box<str>, Box<[Series]>>,
    /// The overflow series by reporter value (at most the three reporters and
    /// [`OVERFLOW_VALUE`]).
    overflow: Vec<(&'static str, Box<[Series]>)>,
}

pub struct MetricTable {
    specs: Vec<Spec>,
    groups: Vec<Group>,
    dimensions: Vec<Program>,
    values: Vec<Program>,
    predicates: Vec<Program>,
    eval_errors: Series,
    overflow_counter: Series,
    overflow_logged: bool,
    /// Labelled mode: one metric id per spec, defined at configure time; `None` in the
    /// stat-name mode.
    labelled: Option<Vec<Option<u32>>>,
    encoding: stat_name::Encoding,
    /// Tag name → compact key, for every tag of the configuration ([`tag_keys`]).
    keys: Vec<(String, String)>,
    max_series: usize,
    max_value_len: usize,
    custom: Vec<String>,
    key: String,
    name: String,
}

impl Default for MetricTable {
    fn default() -> Self {
        MetricTable {
            specs: Vec::new(),
            groups: Vec::new(),
            dimensions: Vec::new(),
            values: Vec::new(),
            predicates: Vec::new(),
            eval_errors: Series::default(),
            overflow_counter: Series::default(),
            overflow_logged: false,
            labelled: None,
            encoding: stat_name::Encoding::default(),
            keys: Vec::new(),
            max_series: crate::config::DEFAULT_MAX_SERIES_PER_METRIC as usize,
            max_value_len: crate::config::DEFAULT_MAX_LABEL_VALUE_LENGTH as usize,
            custom: Vec::new(),
            key: String::new(),
            name: String::new(),
        }
    }
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

    /// Every metric with its kind and labels in emission order, as the filter will emit them
    /// (`meshstats validate` lists them).
    pub fn metrics(&self) -> impl Iterator<Item = (&str, MetricKind, Vec<&str>)> {
        self.specs.iter().map(|s| {
            let labels = s.labels.iter().map(|(t, _)| t.as_str()).collect();
            (s.name.as_str(), s.kind, labels)
        })
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

    /// The stat-name encoding in use.
    pub fn encoding(&self) -> stat_name::Encoding {
        self.encoding
    }

    /// Chooses the stat-name encoding; before any metric is defined (`Root::configure`).
    pub fn set_encoding(&mut self, encoding: stat_name::Encoding) {
        self.encoding = encoding;
    }

    /// The `stats_tags` entries (tag name, regex) that read this table's names back.
    pub fn stats_tags(&self) -> Vec<(String, String)> {
        compile::regexes(&self.keys, self.encoding)
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

    /// Once per configuration, before any report: defines the table's own counters and, when
    /// the host has labelled metrics, every metric with its label names in emission order.
    pub fn define_counters(&mut self, host: &impl Host) {
        self.eval_errors.id = host.define_metric(MetricKind::Counter, EVAL_ERRORS_METRIC);
        self.overflow_counter.id = host.define_metric(MetricKind::Counter, SERIES_OVERFLOW_METRIC);
        if !host.labelled_metrics() {
            return;
        }
        let ids = self
            .specs
            .iter()
            .map(|spec| {
                let labels: Vec<&str> = spec.labels.iter().map(|(t, _)| t.as_str()).collect();
                host.define_labelled_metric(spec.kind, &spec.name, &labels)
            })
            .collect();
        self.labelled = Some(ids);
    }

    /// Hands every counter delta summed since the last flush to the host, one
    /// `increment_metric` per series that moved. The root's tick calls it, and the adapter
    /// before a configuration or the VM goes away (its metric ids stay valid: Envoy keeps the
    /// stats). A no-op in the labelled mode, which sums nothing.
    pub fn flush(&self, host: &impl Host) {
        self.eval_errors.flush(host);
        self.overflow_counter.flush(host);
        for group in &self.groups {
            let overflow = group.overflow.iter().map(|(_, s)| s);
            for series in group.tuples.values().chain(overflow) {
                for s in series.iter() {
                    s.flush(host);
                }
            }
        }
    }

    /// Whether counter deltas wait for [`MetricTable::flush`].
    fn deferred(&self) -> bool {
        self.labelled.is_none()
    }

    /// One increment of a counter without labels (the table's own).
    fn count(&self, host: &impl Host, counter: &Series, delta: i64) {
        if self.deferred() {
            add(&counter.pending, delta);
        } else if let Some(id) = counter.id {
            host.increment_metric(id, delta);
        }
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

    /// Records one report: the metrics of its kind only, with the labels in `dims` and the
    /// custom dimensions evaluated over `slots`.
    pub fn record_report(
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
        let mut overflowed = None;
        for g in 0..self.groups.len() {
            let Some(group) = self.groups.get(g) else {
                continue;
            };
            if group.report != kind {
                continue;
            }
            self.key.clear();
            for source in &group.labels {
                let value = label_value(dims, &self.custom, *source);
                stat_name::push_value(&mut self.key, stat_name::bounded(value, self.max_value_len));
                self.key.push_str(stat_name::FIELD_SEPARATOR);
            }
            // Fast path: a label tuple seen before.
            if let Some(ids) = group.tuples.get(self.key.as_str()) {
                self.emit(host, g, ids, slots, report);
                continue;
            }
            if group.tuples.len() < self.max_series {
                let series = self.define(host, g, dims, None);
                self.emit(host, g, &series, slots, report);
                if let Some(group) = self.groups.get_mut(g) {
                    group.tuples.insert(self.key.as_str().into(), series);
                }
                continue;
            }
            overflowed = overflowed.or(Some(g));
            // A reporter label keeps its value when it is one of Istio's (a custom `reporter`
            // dimension could be anything, and would then be a way around the cap).
            let value = group
                .reporter
                .and_then(|r| group.labels.get(r))
                .map(|source| label_value(dims, &self.custom, *source));
            let reporter = Reporter::ALL
                .into_iter()
                .map(Reporter::as_str)
                .find(|r| Some(*r) == value)
                .unwrap_or(OVERFLOW_VALUE);
            // The key becomes the overflow tuple: the labelled mode reads its values there.
            self.key.clear();
            for i in 0..group.labels.len() {
                let value = if group.reporter == Some(i) {
                    reporter
                } else {
                    OVERFLOW_VALUE
                };
                self.key.push_str(value);
                self.key.push_str(stat_name::FIELD_SEPARATOR);
            }
            if let Some((_, series)) = group.overflow.iter().find(|(r, _)| *r == reporter) {
                self.emit(host, g, series, slots, report);
                continue;
            }
            let series = self.define(host, g, dims, Some(reporter));
            self.emit(host, g, &series, slots, report);
            if let Some(group) = self.groups.get_mut(g) {
                group.overflow.push((reporter, series));
            }
        }
        if let Some(g) = overflowed {
            self.count(host, &self.overflow_counter, 1);
            if !self.overflow_logged {
                self.overflow_logged = true;
                let names: Vec<&str> = self
                    .groups
                    .get(g)
                    .into_iter()
                    .flat_map(|group| &group.specs)
                    .filter_map(|&i| self.specs.get(i))
                    .map(|s| s.name.as_str())
                    .collect();
                host.log(
                    LogLevel::Warn,
                    &format!(
                        "meshstats: {} reached max_series_per_metric ({}) distinct label sets; \
                         new label sets are recorded in the series whose labels are \
                         \"{OVERFLOW_VALUE}\" and counted in {SERIES_OVERFLOW_METRIC} \
                         (logged once)",
                        names.join(", "),
                        self.max_series
                    ),
                );
            }
        }
    }

    /// Defines one group's metrics for the current tuple; `overflow` (the reporter value to
    /// keep) defines its overflow series instead. Nothing in the labelled mode, whose metrics
    /// were defined once at configure time.
    fn define(
        &mut self,
        host: &impl Host,
        g: usize,
        dims: &Dimensions,
        overflow: Option<&'static str>,
    ) -> Box<[Series]> {
        let Some(group) = self.groups.get(g) else {
            return Box::default();
        };
        if !self.deferred() {
            return Box::default();
        }
        let mut ids = Vec::with_capacity(group.specs.len());
        for &s in &group.specs {
            let Some(spec) = self.specs.get(s) else {
                ids.push(Series::default());
                continue;
            };
            self.name.clear();
            let mut values: Vec<&str> = Vec::with_capacity(spec.labels.len());
            for (i, (_, source)) in spec.labels.iter().enumerate() {
                let value = match overflow {
                    Some(r) if group.reporter == Some(i) => r,
                    Some(_) => OVERFLOW_VALUE,
                    None => stat_name::bounded(
                        label_value(dims, &self.custom, *source),
                        self.max_value_len,
                    ),
                };
                values.push(value);
            }
            match self.encoding {
                stat_name::Encoding::Istio => {
                    for ((tag, _), value) in spec.labels.iter().zip(&values) {
                        stat_name::push_label(&mut self.name, tag, value);
                    }
                }
                stat_name::Encoding::Compact => {
                    // Short values first: each regex scans the fields before its own.
                    let mut order: Vec<usize> = (0..values.len()).collect();
                    order.sort_by_key(|&i| values.get(i).map_or(0, |v| v.len()));
                    for i in order {
                        let (Some((tag, _)), Some(value)) = (spec.labels.get(i), values.get(i))
                        else {
                            continue;
                        };
                        stat_name::push_compact(&mut self.name, key_of(&self.keys, tag), value);
                    }
                }
            }
            self.name.push_str(&spec.name);
            ids.push(Series {
                id: host.define_metric(spec.kind, &self.name),
                pending: Cell::new(0),
            });
        }
        ids.into()
    }

    /// Records the report in one group's series: `series` in the stat-name mode, else the
    /// labelled metrics with the values of the current key.
    fn emit(
        &self,
        host: &impl Host,
        g: usize,
        series: &[Series],
        slots: &[Option<Attr>],
        report: Report<'_>,
    ) {
        let Some(group) = self.groups.get(g) else {
            return;
        };
        // Fields contain no separator (`push_value`), so splitting gives back each value. One
        // short `Vec` per group and report, in the labelled (native) mode only.
        let values: Vec<&str> = match self.labelled {
            Some(_) => self
                .key
                .split(stat_name::FIELD_SEPARATOR)
                .take(group.labels.len())
                .collect(),
            None => Vec::new(),
        };
        for (j, &s) in group.specs.iter().enumerate() {
            let Some(spec) = self.specs.get(s) else {
                continue;
            };
            let target = match &self.labelled {
                Some(ids) => match ids.get(s).copied().flatten() {
                    Some(id) => Target::Labelled(id),
                    None => continue,
                },
                None => match series.get(j) {
                    Some(series @ Series { id: Some(_), .. }) => Target::Series(series),
                    _ => continue,
                },
            };
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
                        self.count(host, &self.eval_errors, 1);
                        continue;
                    }
                },
            };
            match (spec.kind, target) {
                (MetricKind::Counter, _) if value <= 0 => {}
                (MetricKind::Counter, Target::Series(series)) => add(&series.pending, value),
                (MetricKind::Counter, Target::Labelled(id)) => {
                    host.increment_labelled_metric(id, &values, value)
                }
                (_, Target::Series(series)) => {
                    if let Some(id) = series.id {
                        host.record_metric(id, value.max(0) as u64)
                    }
                }
                (_, Target::Labelled(id)) => {
                    host.record_labelled_metric(id, &values, value.max(0) as u64)
                }
            }
        }
    }

    /// Distinct label tuples currently cached, over all groups.
    pub fn cached_tuples(&self) -> usize {
        self.groups.iter().map(|g| g.tuples.len()).sum()
    }

    /// Defines and sets `istio_build{component="proxy",tag=<version>}` = 1, as Istio does.
    pub fn record_build(&self, host: &impl Host, version: &str) {
        let mut name = String::new();
        let version = stat_name::bounded(version, self.max_value_len);
        if host.labelled_metrics() {
            stat_name::push_value(&mut name, version);
            if let Some(id) =
                host.define_labelled_metric(MetricKind::Gauge, "istio_build", &BUILD_LABELS)
            {
                host.record_labelled_metric(id, &["proxy", &name], 1);
            }
            return;
        }
        match self.encoding {
            stat_name::Encoding::Istio => {
                stat_name::push_label(&mut name, "component", "proxy");
                stat_name::push_label(&mut name, "tag", version);
            }
            stat_name::Encoding::Compact => {
                stat_name::push_compact(&mut name, key_of(&self.keys, "component"), "proxy");
                stat_name::push_compact(&mut name, key_of(&self.keys, "tag"), version);
            }
        }
        name.push_str("istio_build");
        if let Some(id) = host.define_metric(MetricKind::Gauge, &name) {
            host.record_metric(id, 1);
        }
    }
}

/// Where one metric of a report goes.
#[derive(Clone, Copy)]
enum Target<'a> {
    Series(&'a Series),
    Labelled(u32),
}

fn label_value<'a>(dims: &'a Dimensions, custom: &'a [String], source: LabelSource) -> &'a str {
    match source {
        LabelSource::Standard(i) => dims.values.get(i),
        LabelSource::Custom(i) => custom.get(i),
        LabelSource::Unknown => return UNKNOWN,
    }
    .map(String::as_str)
    .unwrap_or_default()
}

/// A tag's compact key; every tag a spec carries has one (`tag_keys` lists them all), the
/// name itself is only a fallback that keeps the stat well-formed.
fn key_of<'a>(keys: &'a [(String, String)], tag: &'a str) -> &'a str {
    keys.iter()
        .find(|(t, _)| t == tag)
        .map_or(tag, |(_, k)| k.as_str())
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod modes_tests;
