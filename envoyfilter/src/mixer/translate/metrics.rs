//! Mixer's prometheus handlers and the metric instances they export → `definitions` (and the
//! `metrics` overrides that carry rule matches and drop replaced standard metrics).

use super::metric_instance::{dimensions, report_unread_fields, value, Origin};
use super::prometheus::{buckets, safe_name};
use super::report::{object_keys, Report};
use super::rules::Routes;
use super::tcp_metrics;
use crate::mixer::resources::{field, resolve, Resource, Role};
use meshstats_filter::metrics::HTTP_METRICS;
use serde_json::{json, Map, Value};

/// The imported metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    pub definitions: Vec<Value>,
    pub overrides: Vec<Value>,
    /// The standard TCP metrics `overrides` reshape (`tcp_metrics`).
    pub tcp_reshaped: Vec<String>,
}

impl Metrics {
    /// A prometheus handler: one definition per `metrics` entry that rules feed.
    pub fn prometheus(&mut self, report: &mut Report, routes: &Routes, at: usize, params: &Value) {
        let resources = report.resources;
        for key in object_keys(params) {
            if ![
                "metrics",
                "metricsExpirationPolicy",
                "metrics_expiration_policy",
            ]
            .contains(&key.as_str())
            {
                report.warn(at, key, "not carried over");
            } else if key != "metrics" {
                report.warn(
                    at,
                    key,
                    "not carried over: Envoy keeps a series until it restarts",
                );
            }
        }
        let entries = field(params, &["metrics"])
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (mi, entry) in entries.iter().enumerate() {
            self.metric(report, routes, at, mi, entry);
        }
        // Instances this handler was sent but has no entry for: Mixer's handler refused them.
        for instance in routes.sent_to(at) {
            if report.accounted.contains(&instance) {
                continue;
            }
            let fqn = resources
                .get(instance)
                .map(Resource::fqn)
                .unwrap_or_default();
            let listed = entries.iter().any(|e| {
                field(e, &["instance_name", "instanceName"]).and_then(Value::as_str)
                    == Some(fqn.as_str())
            });
            if !listed {
                if let Some(Role::Instance { template, .. }) =
                    resources.get(instance).map(|r| &r.role)
                {
                    if template == "metric" {
                        report.warn(at, "metrics", format!("no entry for {fqn}, which rules send here: Mixer's handler refused it; not imported"));
                    } else {
                        report.warn(at, "", format!("rules send the {template} {fqn} here; the prometheus adapter takes metrics only; not imported"));
                    }
                    report.accounted.push(instance);
                }
            }
        }
    }

    fn metric(
        &mut self,
        report: &mut Report,
        routes: &Routes,
        at: usize,
        mi: usize,
        entry: &Value,
    ) {
        let resources = report.resources;
        let instance_name = field(entry, &["instance_name", "instanceName"])
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let raw_name = field(entry, &["name"])
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .unwrap_or(&instance_name);
        let name = safe_name(raw_name);
        let path = format!("metrics[{mi}] ({name})");
        let handler_ns = resources
            .get(at)
            .map(|r| r.namespace.clone())
            .unwrap_or_default();
        let Some(instance) = resolve(resources, &instance_name, &handler_ns, false) else {
            report.warn(
                at,
                format!("{path}.instance_name"),
                format!("no instance `{instance_name}` in the input; not imported"),
            );
            return;
        };
        let Some(Role::Instance { template, params }) =
            resources.get(instance).map(|r| r.role.clone())
        else {
            report.accounted.push(instance);
            return; // skipped: its own line says why
        };
        report.accounted.push(instance);
        let fqn = resources
            .get(instance)
            .map(Resource::fqn)
            .unwrap_or_default();
        if instance_name != fqn {
            // Mixer's handler looked each instance up by its full name; a shorter
            // instance_name named nothing and the metric stayed empty.
            report.warn(
                at,
                format!("{path}.instance_name"),
                format!("`{instance_name}` is not {fqn}, the fully qualified name Mixer's prometheus handler matched instances by (it never recorded this metric); imported from {fqn}"),
            );
        }
        if template != "metric" {
            report.warn(
                at,
                format!("{path}.instance_name"),
                format!("{instance_name} is a {template}, not a metric; not imported"),
            );
            return;
        }
        let origin = Origin {
            handler: at,
            instance,
            path: &path,
            name: &name,
            instance_name: &instance_name,
        };
        let Some(match_) = routes.combined_match(at, instance) else {
            let rules = routes.tcp_rules(at, instance);
            if rules.is_empty() {
                report.warn(
                    at,
                    path,
                    format!("no imported rule sends {instance_name} to this handler; not imported"),
                );
            } else if self.tcp_reshaped.contains(&name) {
                report.warn(
                    at,
                    path,
                    format!("a metric named {name} is already imported; this one is not"),
                );
            } else if let Some(over) = tcp_metrics::reshape(report, &origin, &rules, entry, &params)
            {
                self.tcp_reshaped.push(name.clone());
                self.overrides.push(over);
            }
            return;
        };
        let kind = match field(entry, &["kind"])
            .and_then(Value::as_str)
            .unwrap_or_default()
        {
            "COUNTER" => "COUNTER",
            "GAUGE" => "GAUGE",
            "DISTRIBUTION" => "HISTOGRAM",
            other => {
                report.warn(
                    at,
                    format!("{path}.kind"),
                    format!("kind {other:?} is not COUNTER, GAUGE or DISTRIBUTION; not imported"),
                );
                return;
            }
        };
        report.unread_entry_fields(at, &path, entry, &["buckets", "namespace"]);
        report_unread_fields(report, &origin, &params);
        let Some((value, seconds)) = value(report, &origin, kind == "HISTOGRAM", &params) else {
            return;
        };
        let dimensions = dimensions(report, &origin, entry, &params);
        let mut def = Map::new();
        def.insert("name".into(), Value::String(name.clone()));
        def.insert("type".into(), Value::String(kind.into()));
        def.insert("value".into(), Value::String(value));
        if let Some(ns) = field(entry, &["namespace"])
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty() && *n != "istio")
        {
            def.insert(
                "metric_name".into(),
                Value::String(format!("{}_{name}", safe_name(ns))),
            );
        }
        def.insert("dimensions".into(), Value::Object(dimensions));
        if kind == "HISTOGRAM" {
            match buckets(
                field(entry, &["buckets"]),
                if seconds { 1000.0 } else { 1.0 },
            ) {
                Ok(b) => {
                    def.insert("buckets".into(), b);
                }
                Err(reason) => report.warn(
                    at,
                    format!("{path}.buckets"),
                    format!("{reason}; Envoy's default buckets apply"),
                ),
            }
        } else if field(entry, &["buckets"]).is_some() {
            report.warn(
                at,
                format!("{path}.buckets"),
                "buckets apply to DISTRIBUTION only; ignored, as Mixer did",
            );
        }
        if self.definitions.iter().any(|d| {
            d.get("name") == def.get("name") && d.get("metric_name") == def.get("metric_name")
        }) {
            report.warn(
                at,
                path,
                format!("a metric named {name} is already imported; this one is not"),
            );
            return;
        }
        if let Some(m) = match_ {
            self.overrides.push(json!({"name": name, "match": m}));
        }
        self.definitions.push(Value::Object(def));
    }

    /// Imported metrics named like standard ones replace them (the filter's rule for
    /// definitions). When the input replaces any, it is a whole telemetry configuration, as
    /// Istio's default Mixer config was: the standard metrics it does not define are dropped,
    /// so that exactly Mixer's metrics are emitted.
    pub fn replace_standard(&mut self, report: &mut Report) {
        let resources = report.resources;
        let unshaped = tcp_metrics::unshaped(&self.tcp_reshaped);
        if !self.tcp_reshaped.is_empty() {
            let handler = resources
                .iter()
                .position(
                    |r| matches!(&r.role, Role::Handler { adapter, .. } if adapter == "prometheus"),
                )
                .unwrap_or(usize::MAX);
            let mut reason = format!(
                "for TCP connections, gives the standard {} Mixer's labels (metrics[])",
                self.tcp_reshaped.join(", ")
            );
            if !unshaped.is_empty() {
                reason.push_str(&format!("; the standard {}, not defined here, dropped so that only Mixer's TCP metrics are emitted", unshaped.join(", ")));
            }
            report.warn(handler, "metrics", reason);
        }
        for name in unshaped {
            self.overrides.push(json!({"name": name, "drop": true}));
        }
        let defined: Vec<String> = self
            .definitions
            .iter()
            .filter(|d| d.get("metric_name").is_none())
            .filter_map(|d| d.get("name").and_then(Value::as_str).map(str::to_string))
            .collect();
        let replaced: Vec<&str> = HTTP_METRICS
            .iter()
            .map(|m| m.name)
            .filter(|n| defined.iter().any(|d| d == n))
            .collect();
        if replaced.is_empty() {
            return;
        }
        let dropped: Vec<&str> = HTTP_METRICS
            .iter()
            .map(|m| m.name)
            .filter(|n| !replaced.contains(n))
            .collect();
        // Reported on the handler that defined the first replacement.
        let handler = resources
            .iter()
            .position(|r| matches!(&r.role, Role::Handler { adapter, params } if adapter == "prometheus"
                && field(params, &["metrics"]).and_then(Value::as_array).is_some_and(|ms| ms.iter().any(|m| m.get("name").and_then(Value::as_str) == replaced.first().copied()))))
            .unwrap_or(usize::MAX);
        let mut reason = format!(
            "defines {} in place of meshstats' standard metrics of those names",
            replaced.join(", ")
        );
        if !dropped.is_empty() {
            reason.push_str(&format!("; the standard {}, not defined here, dropped (`\"drop\": true` in metrics[]) so that only Mixer's metrics are emitted", dropped.join(", ")));
            for name in &dropped {
                self.overrides.push(json!({"name": name, "drop": true}));
            }
        }
        report.warn(handler, "metrics", reason);
    }
}
