//! The metrics the filter emits and how a request becomes metric updates.
//!
//! Compiled once per configuration into [`MetricTable`]: which metrics exist, which labels
//! each carries (a subset of the standard labels, in their fixed order) and where its value
//! comes from. Per request, the label values are joined into a reusable key; a cache maps
//! that key to the Envoy metric ids, so a label tuple seen before costs one hash lookup
//! (fast path) and only a new tuple builds stat names and defines metrics (slow path).

use crate::attributes::RequestAttributes;
use crate::config::{ConfigError, MetricKind, PluginConfig};
use crate::host::Host;
use crate::labels::{Dimensions, STANDARD_LABELS};
use crate::stat_name;
use hashbrown::HashMap;

/// Prefix of every standard and user-defined metric, as in Istio.
pub const PREFIX: &str = "istio_";
/// Counts configurations the filter could not use (it then serves with the defaults).
pub const CONFIG_ERRORS_METRIC: &str = "meshstats_config_errors_total";
/// Labels of `istio_build`.
pub const BUILD_LABELS: [&str; 2] = ["component", "tag"];

/// Where a metric's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    One,
    DurationMs,
    RequestBytes,
    ResponseBytes,
}

impl Value {
    fn of(self, req: &RequestAttributes) -> u64 {
        match self {
            Value::One => 1,
            Value::DurationMs => req.duration_ns / 1_000_000,
            Value::RequestBytes => req.request_bytes,
            Value::ResponseBytes => req.response_bytes,
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
    pub value: Value,
}

/// The standard HTTP (and gRPC) metrics, recorded once per request at stream end.
pub const HTTP_METRICS: [StandardMetric; 4] = [
    StandardMetric { name: "requests_total", kind: MetricKind::Counter, label_count: 25, value: Value::One },
    StandardMetric {
        name: "request_duration_milliseconds",
        kind: MetricKind::Histogram,
        label_count: 25,
        value: Value::DurationMs,
    },
    StandardMetric { name: "request_bytes", kind: MetricKind::Histogram, label_count: 25, value: Value::RequestBytes },
    StandardMetric { name: "response_bytes", kind: MetricKind::Histogram, label_count: 25, value: Value::ResponseBytes },
];

/// Every tag name the filter can write into a stat name, in the order it writes them, so
/// that `stats_tags` extracts them front to back (see [`stat_name`]).
pub fn all_tag_names(config: &PluginConfig) -> Vec<String> {
    let mut tags: Vec<String> = STANDARD_LABELS.iter().chain(BUILD_LABELS.iter()).map(|s| s.to_string()).collect();
    let mut custom: Vec<&String> = config.metrics.iter().flat_map(|m| m.dimensions.keys()).collect();
    custom.sort();
    custom.dedup();
    for tag in custom {
        if !tags.contains(tag) {
            tags.push(tag.clone());
        }
    }
    tags
}

#[derive(Debug, Clone)]
struct Spec {
    /// Full metric name, e.g. `istio_requests_total`.
    name: String,
    kind: MetricKind,
    /// Indexes into [`STANDARD_LABELS`], in order.
    labels: Vec<usize>,
    value: Value,
}

/// Above this many distinct label tuples the cache starts over, so a flood of distinct
/// values (say, Host headers) costs re-definitions, not unbounded memory.
const MAX_CACHED_TUPLES: usize = 20_000;

#[derive(Debug, Default)]
pub struct MetricTable {
    specs: Vec<Spec>,
    cache: HashMap<Box<str>, Box<[Option<u32>]>>,
    key: String,
    name: String,
}

impl MetricTable {
    /// Applies the `metrics[]` overrides Istio defines to the standard metrics.
    pub fn compile(config: &PluginConfig) -> Result<MetricTable, ConfigError> {
        if let Some(i) = config.definitions.iter().position(|_| true) {
            return Err(unsupported(format!("definitions[{i}]"), "user-defined metrics"));
        }
        let mut specs: Vec<(Spec, bool)> = HTTP_METRICS
            .iter()
            .map(|m| {
                let spec = Spec {
                    name: format!("{PREFIX}{}", m.name),
                    kind: m.kind,
                    labels: (0..m.label_count).collect(),
                    value: m.value,
                };
                (spec, false)
            })
            .collect();
        for (i, over) in config.metrics.iter().enumerate() {
            let at = |field: &str| format!("metrics[{i}].{field}");
            if !over.dimensions.is_empty() {
                return Err(unsupported(at("dimensions"), "dimension expressions"));
            }
            if !over.match_.is_empty() {
                return Err(unsupported(at("match"), "match expressions"));
            }
            if !over.name.is_empty() && !HTTP_METRICS.iter().any(|m| m.name == over.name) {
                let known: Vec<&str> = HTTP_METRICS.iter().map(|m| m.name).collect();
                return Err(ConfigError {
                    path: at("name"),
                    reason: format!("unknown metric {:?}; known metrics: {}", over.name, known.join(", ")),
                });
            }
            let mut remove = Vec::new();
            for (j, tag) in over.tags_to_remove.iter().enumerate() {
                match STANDARD_LABELS.iter().position(|l| l == tag) {
                    Some(p) => remove.push(p),
                    None => {
                        return Err(ConfigError {
                            path: format!("metrics[{i}].tags_to_remove[{j}]"),
                            reason: format!("{tag:?} is not a standard label"),
                        })
                    }
                }
            }
            for (spec, dropped) in specs.iter_mut() {
                if !over.name.is_empty() && spec.name.strip_prefix(PREFIX) != Some(over.name.as_str()) {
                    continue;
                }
                *dropped |= over.drop;
                spec.labels.retain(|l| !remove.contains(l));
            }
        }
        let specs = specs.into_iter().filter(|(_, dropped)| !dropped).map(|(s, _)| s).collect();
        Ok(MetricTable { specs, ..MetricTable::default() })
    }

    /// Names of the metrics this table emits, e.g. `istio_requests_total`.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.specs.iter().map(|s| s.name.as_str())
    }

    /// Records one finished request.
    pub fn record(&mut self, host: &impl Host, dims: &Dimensions, req: &RequestAttributes) {
        self.key.clear();
        for value in &dims.values {
            stat_name::push_value(&mut self.key, value);
            self.key.push_str(stat_name::FIELD_SEPARATOR);
        }
        // Fast path: a label tuple seen before.
        if let Some(ids) = self.cache.get(self.key.as_str()) {
            emit(host, &self.specs, ids, req);
            return;
        }
        // Slow path: first time for this tuple.
        if self.cache.len() >= MAX_CACHED_TUPLES {
            self.cache.clear();
        }
        let ids: Box<[Option<u32>]> = self
            .specs
            .iter()
            .map(|spec| {
                self.name.clear();
                for &l in &spec.labels {
                    let tag = STANDARD_LABELS.get(l).copied().unwrap_or_default();
                    let value = dims.values.get(l).map(String::as_str).unwrap_or_default();
                    stat_name::push_label(&mut self.name, tag, value);
                }
                self.name.push_str(&spec.name);
                host.define_metric(spec.kind, &self.name)
            })
            .collect();
        emit(host, &self.specs, &ids, req);
        self.cache.insert(self.key.as_str().into(), ids);
    }

    /// Distinct label tuples currently cached.
    pub fn cached_tuples(&self) -> usize {
        self.cache.len()
    }
}

fn emit(host: &impl Host, specs: &[Spec], ids: &[Option<u32>], req: &RequestAttributes) {
    for (spec, id) in specs.iter().zip(ids) {
        let Some(id) = *id else { continue };
        let value = spec.value.of(req);
        match spec.kind {
            MetricKind::Counter => host.increment_metric(id, value as i64),
            MetricKind::Gauge | MetricKind::Histogram => host.record_metric(id, value),
        }
    }
}

fn unsupported(path: String, what: &str) -> ConfigError {
    ConfigError { path, reason: format!("{what} are not supported by this build of meshstats yet") }
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
