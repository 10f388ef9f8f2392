//! An in-memory host for tests: properties and headers are set up by the test, and every
//! host call is recorded so tests can assert exact names, values and call counts.

use super::{Headers, Host, LogLevel};
use crate::config::MetricKind;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

#[derive(Default)]
pub struct FakeHost {
    pub properties: RefCell<BTreeMap<String, Vec<u8>>>,
    pub request_headers: RefCell<BTreeMap<String, String>>,
    pub response_headers: RefCell<BTreeMap<String, String>>,
    pub response_trailers: RefCell<BTreeMap<String, String>>,
    /// Metric names by id, one entry per `define_metric` call: like Envoy, a name defined
    /// twice gets a second id, so tests see every re-definition.
    pub metrics: RefCell<Vec<(MetricKind, String)>>,
    /// Counter totals and gauge values by metric name; histograms keep every sample.
    pub values: RefCell<BTreeMap<String, i64>>,
    pub samples: RefCell<BTreeMap<String, Vec<u64>>>,
    pub logs: RefCell<Vec<(LogLevel, String)>>,
    /// Every property path read, to check the per-request path reads each at most once.
    pub reads: RefCell<Vec<String>>,
    /// Every host call, in order (`property xds.cluster_name`, `set_header Request x`,
    /// `define_metric Counter name`, `log Warn message`, …): each costs about 1.5 µs in
    /// Envoy's V8, so tests pin how many a request makes.
    pub calls: RefCell<Vec<String>>,
    /// Every `set_property`, in order: the path joined by `.` and the value.
    pub properties_set: RefCell<Vec<(String, Vec<u8>)>>,
    /// The `stats_tags` (tag, regex) the test's Envoy would run, for `stat_name::extract`;
    /// tests set them from the configured table (`MetricTable::stats_tags`).
    pub stats_tags: RefCell<Vec<(String, String)>>,
    /// Behave like the Wasm adapter on an Envoy with `expr_evaluate`: batch reads
    /// (`prepare_properties`/`properties`) and whole-map header edits in one call. Off, the
    /// host cannot batch (`prepare_properties` is `None`, a `properties` call fails) and
    /// header edits go one header at a time, as before.
    pub batch: Cell<bool>,
    /// The prepared batches' paths, by id.
    pub batches: RefCell<Vec<Vec<String>>>,
}

impl FakeHost {
    pub fn set(&self, path: &[&str], value: impl Into<Vec<u8>>) {
        self.properties
            .borrow_mut()
            .insert(path.join("."), value.into());
    }
    pub fn set_int(&self, path: &[&str], value: i64) {
        self.set(path, value.to_le_bytes().to_vec());
    }
    pub fn set_bool(&self, path: &[&str], value: bool) {
        self.set(path, vec![u8::from(value)]);
    }
    fn map(&self, map: Headers) -> &RefCell<BTreeMap<String, String>> {
        match map {
            Headers::Request => &self.request_headers,
            Headers::Response => &self.response_headers,
            Headers::ResponseTrailers => &self.response_trailers,
        }
    }
    pub fn value(&self, name: &str) -> Option<i64> {
        self.values.borrow().get(name).copied()
    }
}

impl Host for FakeHost {
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        let key = path.join(".");
        self.calls.borrow_mut().push(format!("property {key}"));
        self.reads.borrow_mut().push(key.clone());
        self.properties.borrow().get(&key).cloned()
    }
    fn header(&self, map: Headers, name: &str) -> Option<String> {
        self.calls
            .borrow_mut()
            .push(format!("header {map:?} {name}"));
        self.map(map).borrow().get(name).cloned()
    }
    fn header_map(&self, map: Headers) -> Vec<(String, String)> {
        self.calls.borrow_mut().push(format!("header_map {map:?}"));
        self.map(map)
            .borrow()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
    fn set_header(&self, map: Headers, name: &str, value: Option<&str>) {
        self.calls
            .borrow_mut()
            .push(format!("set_header {map:?} {name}"));
        let headers = self.map(map);
        match value {
            Some(v) => headers.borrow_mut().insert(name.to_string(), v.to_string()),
            None => headers.borrow_mut().remove(name),
        };
    }
    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<u32> {
        self.calls
            .borrow_mut()
            .push(format!("define_metric {kind:?} {name}"));
        let mut metrics = self.metrics.borrow_mut();
        metrics.push((kind, name.to_string()));
        u32::try_from(metrics.len() - 1).ok()
    }
    fn increment_metric(&self, id: u32, delta: i64) {
        self.calls
            .borrow_mut()
            .push(format!("increment_metric {id}"));
        let name = self.metrics.borrow()[id as usize].1.clone();
        *self.values.borrow_mut().entry(name).or_default() += delta;
    }
    fn record_metric(&self, id: u32, value: u64) {
        self.calls.borrow_mut().push(format!("record_metric {id}"));
        let (kind, name) = self.metrics.borrow()[id as usize].clone();
        match kind {
            MetricKind::Histogram => self
                .samples
                .borrow_mut()
                .entry(name)
                .or_default()
                .push(value),
            _ => {
                self.values.borrow_mut().insert(name, value as i64);
            }
        }
    }
    fn log(&self, level: LogLevel, message: &str) {
        self.calls
            .borrow_mut()
            .push(format!("log {level:?} {message}"));
        self.logs.borrow_mut().push((level, message.to_string()));
    }
    fn set_property(&self, path: &[&str], value: &[u8]) {
        let key = path.join(".");
        self.calls.borrow_mut().push(format!("set_property {key}"));
        self.properties_set.borrow_mut().push((key, value.to_vec()));
    }
    fn edit_headers(
        &self,
        map: Headers,
        current: &[(String, String)],
        remove: &[&str],
        add: &[(&str, &str)],
    ) {
        if !self.batch.get() {
            return super::edit_headers_one_by_one(self, map, current, remove, add);
        }
        let removing = current.iter().any(|(k, _)| remove.contains(&k.as_str()));
        if !removing && add.is_empty() {
            return;
        }
        self.calls
            .borrow_mut()
            .push(format!("set_header_map {map:?}"));
        let mut headers = self.map(map).borrow_mut();
        for name in remove {
            headers.remove(*name);
        }
        for (k, v) in add {
            headers.insert(k.to_string(), v.to_string());
        }
    }
    fn prepare_properties(&self, paths: &[&[&str]]) -> Option<u32> {
        // Off, this host lacks the capability, as the trait's default: no call at all.
        if !self.batch.get() {
            return None;
        }
        let joined: Vec<String> = paths.iter().map(|p| p.join(".")).collect();
        self.calls
            .borrow_mut()
            .push(format!("prepare_properties [{}]", joined.join(", ")));
        let mut batches = self.batches.borrow_mut();
        batches.push(joined);
        u32::try_from(batches.len() - 1).ok()
    }
    fn properties(&self, batch: u32) -> Option<Vec<Option<Vec<u8>>>> {
        let paths = match self.batches.borrow().get(batch as usize) {
            Some(paths) if self.batch.get() => paths.clone(),
            _ => {
                self.calls
                    .borrow_mut()
                    .push(format!("properties {batch} failed"));
                return None;
            }
        };
        self.calls
            .borrow_mut()
            .push(format!("properties [{}]", paths.join(", ")));
        self.reads.borrow_mut().extend(paths.iter().cloned());
        let props = self.properties.borrow();
        Some(paths.iter().map(|p| props.get(p).cloned()).collect())
    }
}
