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
}

pub fn absent_reason(attr: &str, now: &str) -> String {
    format!("attribute `{attr}` is not available in the filter (docs/attributes.md); treated as absent, as Mixer did when nothing supplied it: `{now}`")
}

pub fn object_keys(v: &Value) -> Vec<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}
