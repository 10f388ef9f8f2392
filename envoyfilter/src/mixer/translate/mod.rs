//! Mixer resources → one meshstats configuration (docs/migrating-from-mixer.md has the
//! mapping). Every part that cannot be carried over becomes a [`Warning`]. Rules are read
//! first (`rules`), then each handler in input order: prometheus into `metrics`, stdio into
//! `logs`; `report` collects what they say along the way.

mod logs;
mod metric_instance;
mod metrics;
mod prometheus;
mod report;
mod rules;
mod tcp_metrics;

use super::resources::{Resource, Role};
use super::warning::Warning;
use logs::Logs;
use metrics::Metrics;
use report::Report;
use rules::Routes;
use serde_json::{Map, Value};

pub use prometheus::safe_name;

/// The configuration (`None` when nothing was imported) and the report.
pub fn translate(resources: &[Resource]) -> (Option<Value>, Vec<(usize, Warning)>) {
    let mut report = Report::new(resources);
    let routes = Routes::read(&mut report);
    let mut metrics = Metrics::default();
    let mut logs = Logs::default();
    for (i, resource) in resources.iter().enumerate() {
        match &resource.role {
            Role::Handler { adapter, params } if adapter == "prometheus" => {
                metrics.prometheus(&mut report, &routes, i, params)
            }
            Role::Handler { adapter, params } if adapter == "stdio" => {
                logs.stdio(&mut report, &routes, i, params)
            }
            _ => {}
        }
    }
    for (i, resource) in resources.iter().enumerate() {
        if matches!(resource.role, Role::Instance { .. }) && !report.accounted.contains(&i) {
            let tcp = routes.tcp_rules_sending(i);
            let reason = if tcp.is_empty() {
                "not sent to a prometheus or stdio handler by any imported rule; not imported"
                    .to_string()
            } else {
                format!("only rule {} sends it, for TCP connections only: the filter writes log entries (logs[]) at the end of HTTP requests only, a TCP connection's reports record metrics and no log entry (docs/access-logs.md, docs/tcp.md); not imported", tcp.join(", "))
            };
            report.warn(i, "", reason);
        }
    }
    metrics.replace_standard(&mut report);
    let mut config = Map::new();
    if !metrics.definitions.is_empty() {
        config.insert("definitions".into(), Value::Array(metrics.definitions));
    }
    if !metrics.overrides.is_empty() {
        config.insert("metrics".into(), Value::Array(metrics.overrides));
    }
    if !logs.entries.is_empty() {
        config.insert("logs".into(), Value::Array(logs.entries));
    }
    let imported = config.contains_key("definitions")
        || config.contains_key("logs")
        || !metrics.tcp_reshaped.is_empty();
    (imported.then_some(Value::Object(config)), report.warnings)
}
