//! Mixer's TCP metrics (`tcpbytesent`, `tcpbytereceived`, 1.1+'s `tcpconnectionsopened` /
//! `tcpconnectionsclosed`) → `metrics[]` entries that give the filter's standard
//! `istio_tcp_*` metric of the same meaning Mixer's labels: the standard labels Mixer did not
//! export removed, Mixer's dimensions added or overriding. A definition cannot do it: the
//! filter records definitions per HTTP request, the standard TCP metrics per connection.

use super::metric_instance::{dimensions, report_unread_fields, Origin};
use super::report::Report;
use super::rules::{TcpBinding, TcpScope};
use crate::mixer::resources::{field, scalar};
use meshstats_filter::labels::STANDARD_LABELS;
use meshstats_filter::metrics::TCP_METRICS;
use serde_json::{json, Value};

/// Each standard TCP metric: the rules' scope that feeds it, and the Mixer value it counts
/// (`None`: a count of connections, Mixer's `"1"`).
const MEANINGS: &[(&str, TcpScope, Option<&str>)] = &[
    (
        "tcp_sent_bytes_total",
        TcpScope::All,
        Some("connection.sent.bytes"),
    ),
    (
        "tcp_received_bytes_total",
        TcpScope::All,
        Some("connection.received.bytes"),
    ),
    ("tcp_connections_opened_total", TcpScope::Open, None),
    ("tcp_connections_closed_total", TcpScope::Close, None),
];

/// The `metrics[]` entry for the prometheus `entry` that only TCP rules feed, or `None` (and
/// the reason reported) when it has no standard TCP metric of the same meaning.
pub fn reshape(
    report: &mut Report,
    o: &Origin,
    rules: &[&TcpBinding],
    entry: &Value,
    params: &Value,
) -> Option<Value> {
    let (at, path, name) = (o.handler, o.path, o.name);
    let names: Vec<&str> = rules.iter().map(|r| r.rule.as_str()).collect();
    let by = format!(
        "only rule {} sends {} here, for TCP connections only",
        names.join(", "),
        o.instance_name
    );
    let not = |report: &mut Report, why: String| {
        report.warn(at, path, format!("{by}: {why}; not imported"));
        None
    };
    if let Some(r) = rules.iter().find(|r| r.scope.is_none()) {
        return not(
            report,
            format!(
                "rule {}'s match `{}` is not one the filter can apply per TCP connection",
                r.rule, r.match_
            ),
        );
    }
    let Some(&(_, scope, counts)) = MEANINGS.iter().find(|m| m.0 == name) else {
        let known: Vec<&str> = MEANINGS.iter().map(|m| m.0).collect();
        return not(report, format!("the filter records TCP connections in its standard metrics only, which metrics[] can reshape but not add to, and {name} is none of them ({})", known.join(", ")));
    };
    if let Some(r) = rules.iter().find(|r| r.scope != Some(scope)) {
        return not(
            report,
            format!(
                "rule {}'s match `{}` selects other reports than the standard {name} counts",
                r.rule, r.match_
            ),
        );
    }
    let kind = field(entry, &["kind"])
        .and_then(Value::as_str)
        .unwrap_or_default();
    if kind != "COUNTER" {
        return not(
            report,
            format!("kind {kind:?}: the standard {name} is a COUNTER"),
        );
    }
    let value = field(params, &["value"])
        .and_then(scalar)
        .unwrap_or_default();
    let flat: String = value.chars().filter(|c| !c.is_whitespace()).collect();
    let same = match counts {
        Some(attr) => flat == attr || flat.strip_prefix(attr).is_some_and(|d| d.starts_with('|')),
        None => flat == "1",
    };
    if !same {
        let want = counts.map_or("\"1\"".to_string(), |a| format!("`{a}`"));
        return not(
            report,
            format!("value `{value}` is not what the standard {name} counts ({want})"),
        );
    }
    // The standard TCP counters have no buckets and keep the `istio_` namespace.
    report.unread_entry_fields(at, path, entry, &[]);
    report_unread_fields(report, o, params);
    let dims = dimensions(report, o, entry, params);
    let labels = TCP_METRICS
        .iter()
        .find(|m| m.name == name)
        .map_or(0, |m| m.label_count);
    let remove: Vec<&str> = STANDARD_LABELS
        .iter()
        .take(labels)
        .copied()
        .filter(|l| !dims.contains_key(*l))
        .collect();
    Some(json!({"name": name, "tags_to_remove": remove, "dimensions": dims}))
}

/// The standard TCP metrics the input did not reshape, when it reshaped any: dropped, as
/// the HTTP ones are, so that exactly Mixer's metrics are emitted.
pub fn unshaped(reshaped: &[String]) -> Vec<&'static str> {
    if reshaped.is_empty() {
        return Vec::new();
    }
    TCP_METRICS
        .iter()
        .map(|m| m.name)
        .filter(|n| !reshaped.iter().any(|r| r == n))
        .collect()
}
