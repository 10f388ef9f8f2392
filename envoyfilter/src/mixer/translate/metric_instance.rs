//! A metric instance's fields carried into the definition a prometheus `metrics` entry makes
//! of it: its value and, for each of the entry's `label_names`, its dimension.

use super::prometheus::safe_name;
use super::report::{absent_reason, object_keys, Report};
use crate::mixer::expr::{self, carry};
use crate::mixer::resources::{field, scalar};
use meshstats_filter::expr::Type;
use serde_json::{Map, Value};

/// Fields of a metric instance that the mapping reads, or that Mixer's prometheus handler
/// never read (`monitored_resource_*`: Stackdriver's).
const METRIC_FIELDS: &[&str] = &[
    "value",
    "dimensions",
    "monitored_resource_type",
    "monitoredResourceType",
    "monitored_resource_dimensions",
    "monitoredResourceDimensions",
];

/// The `metrics` entry being translated and the instance it names, which report lines point
/// at.
pub struct Origin<'a> {
    pub handler: usize,
    pub instance: usize,
    /// `metrics[N] (name)`, the entry's field path.
    pub path: &'a str,
    /// The metric's name.
    pub name: &'a str,
    pub instance_name: &'a str,
}

/// Reports the instance's fields that neither the mapping nor Mixer's handler read.
pub fn report_unread_fields(report: &mut Report, o: &Origin, params: &Value) {
    let instance = o.instance;
    for key in object_keys(params) {
        if !METRIC_FIELDS.contains(&key.as_str()) {
            report.warn(instance, key, "not carried over");
        }
    }
}

/// The instance's `value` as a definition's, and whether it was a duration (now in
/// milliseconds); `None` when it is not a number, and the metric is not imported.
pub fn value(
    report: &mut Report,
    o: &Origin,
    histogram: bool,
    params: &Value,
) -> Option<(String, bool)> {
    let (at, instance, path, name) = (o.handler, o.instance, o.path, o.name);
    let value_src = field(params, &["value"])
        .and_then(scalar)
        .unwrap_or_default();
    let value = match carry(&value_src, None) {
        Ok(c) => {
            for a in &c.absent {
                report.warn(instance, "value", absent_reason(a, &c.source));
            }
            c.source
        }
        Err(reason) => {
            report.warn(
                instance,
                "value",
                format!("{reason}; the metric {name} is not imported"),
            );
            return None;
        }
    };
    let seconds = expr::result_type(&value) == Some(Type::Duration);
    let value = if seconds {
        let ms = format!("int({value}) / 1000000");
        let buckets = if histogram {
            ", and the bucket bounds ×1000"
        } else {
            ""
        };
        report.warn(
                at,
                format!("{path}.value"),
                format!("`{value}` is a duration, which Mixer exported in seconds; Envoy records integers, so the value is in milliseconds (`{ms}`){buckets}: divide by 1000 in queries that expect seconds"),
            );
        ms
    } else {
        value
    };
    match expr::compile(&value, Some(Type::Int)) {
        Ok(p) if p.result_type() == Type::Double => {
            report.warn(
                instance,
                "value",
                "a double: Envoy records integers, so the value is truncated",
            );
        }
        Ok(_) => {}
        Err(e) => {
            report.warn(
                instance,
                "value",
                format!("{e} in `{value}`: not a number; the metric {name} is not imported"),
            );
            return None;
        }
    }
    Some((value, seconds))
}

/// The definition's dimensions: `label_names`, each from the instance's dimension of that
/// name.
pub fn dimensions(
    report: &mut Report,
    o: &Origin,
    entry: &Value,
    params: &Value,
) -> Map<String, Value> {
    let (at, instance, path, instance_name) = (o.handler, o.instance, o.path, o.instance_name);
    let labels: Vec<String> = field(entry, &["label_names", "labelNames"])
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let dims = field(params, &["dimensions"])
        .cloned()
        .unwrap_or(Value::Object(Map::new()));
    let mut dimensions = Map::new();
    for label in &labels {
        let Some(src) = dims.get(label).and_then(scalar) else {
            report.warn(
                at,
                format!("{path}.label_names"),
                format!("`{label}` is not a dimension of {instance_name}; the label is left out"),
            );
            continue;
        };
        match carry(&src, Some(Type::String)) {
            Ok(c) => {
                for a in &c.absent {
                    report.warn(
                        instance,
                        format!("dimensions.{label}"),
                        absent_reason(a, &c.source),
                    );
                }
                dimensions.insert(safe_name(label), Value::String(c.source));
            }
            Err(reason) => report.warn(
                instance,
                format!("dimensions.{label}"),
                format!("{reason}; the label is left out"),
            ),
        }
    }
    for dim in object_keys(&dims) {
        if !labels.contains(&dim) {
            report.warn(at, format!("{path}.label_names"), format!("dimension `{dim}` of {instance_name} is not in label_names; left out, as Mixer's handler exported only label_names"));
        }
    }
    dimensions
}
