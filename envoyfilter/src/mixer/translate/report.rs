//! The report an import builds up while it translates: each warning, at the resource it is
//! about, and which instances some output already accounts for.

use crate::mixer::resources::Resource;
use crate::mixer::warning::Warning;
use serde_json::Value;

pub struct Report<'r> {
    pub resources: &'r [Resource],
    pub warnings: Vec<(usize, Warning)>,
    /// Instances that some output used, or whose absence a handler line already explains.
    pub accounted: Vec<usize>,
}

impl<'r> Report<'r> {
    pub fn new(resources: &'r [Resource]) -> Report<'r> {
        Report {
            resources,
            warnings: Vec::new(),
            accounted: Vec::new(),
        }
    }

    pub fn warn(&mut self, at: usize, field: impl Into<String>, reason: impl Into<String>) {
        let id = self
            .resources
            .get(at)
            .map_or_else(|| "meshstats".to_string(), Resource::id);
        self.warnings.push((at, Warning::new(id, field, reason)));
    }

    /// One line for each field of a prometheus handler's `metrics[]` entry at `path` that the
    /// import does not carry over: `description`, and any not in `carried` (besides the
    /// fields every entry's translation reads).
    pub fn unread_entry_fields(&mut self, at: usize, path: &str, entry: &Value, carried: &[&str]) {
        const READ: [&str; 6] = [
            "name",
            "instance_name",
            "instanceName",
            "kind",
            "label_names",
            "labelNames",
        ];
        for key in object_keys(entry) {
            if key == "description" {
                self.warn(
                    at,
                    format!("{path}.{key}"),
                    "not carried over: Envoy's Prometheus output has no HELP text",
                );
            } else if !READ.contains(&key.as_str()) && !carried.contains(&key.as_str()) {
                self.warn(at, format!("{path}.{key}"), "not carried over");
            }
        }
    }
}

pub fn absent_reason(attr: &str, now: &str) -> String {
    format!("attribute `{attr}` is not available in the filter (docs/attributes.md); treated as absent, as Mixer did when nothing supplied it: `{now}`")
}

pub fn object_keys(v: &Value) -> Vec<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}
