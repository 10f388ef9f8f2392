//! An in-memory host for tests: properties and headers are set up by the test, and every
//! host call is recorded so tests can assert exact names, values and call counts.

use super::{Data, Headers, Host, LogLevel};
use crate::config::MetricKind;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

/// A Prometheus series: metric name and its labels, sorted by name.
pub type SeriesKey = (String, Vec<(String, String)>);

/// What a series holds: a counter's or gauge's value, or a histogram's samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeriesValue {
    Value(i64),
    Samples(Vec<u64>),
}

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
    /// Labelled mode ([`FakeHost::labelled`]): the host of the native build.
    pub labelled: bool,
    /// Labelled metrics by id: kind, name, label names.
    pub labelled_metrics: RefCell<Vec<(MetricKind, String, Vec<String>)>>,
    /// Labelled counter totals / gauge values and histogram samples, by series.
    pub labelled_values: RefCell<BTreeMap<SeriesKey, i64>>,
    pub labelled_samples: RefCell<BTreeMap<SeriesKey, Vec<u64>>>,
    /// The bytes the current TCP data callback holds, per direction (`Host::data`); `None`:
    /// the host cannot edit data, as the native build.
    pub data: Option<RefCell<[Vec<u8>; 2]>>,
}

impl FakeHost {
    /// A host that can read and edit TCP data, as the Wasm adapter.
    pub fn editing_data() -> FakeHost {
        FakeHost {
            data: Some(RefCell::new([Vec::new(), Vec::new()])),
            ..FakeHost::default()
        }
    }

    /// Appends bytes that arrived on `which`, as Envoy's buffer grows; returns its length.
    pub fn arrive(&self, which: Data, bytes: &[u8]) -> usize {
        let Some(d) = &self.data else {
            return bytes.len();
        };
        let mut d = d.borrow_mut();
        let b = &mut d[data_index(which)];
        b.extend_from_slice(bytes);
        b.len()
    }

    /// What the filter let through on `which` (the callback continued): taken out, as Envoy
    /// moves it on.
    pub fn pass(&self, which: Data) -> Vec<u8> {
        self.data
            .as_ref()
            .map(|d| std::mem::take(&mut d.borrow_mut()[data_index(which)]))
            .unwrap_or_default()
    }

    /// A host with labelled metrics, as Envoy's dynamic modules have.
    pub fn labelled() -> FakeHost {
        FakeHost {
            labelled: true,
            ..FakeHost::default()
        }
    }

    /// Every series as Prometheus would show it, in either mode: stat names taken apart
    /// with [`FakeHost::stats_tags`], labelled series as recorded. Labels sorted by name.
    pub fn series(&self) -> BTreeMap<SeriesKey, SeriesValue> {
        let tags = self.stats_tags.borrow();
        let key = |name: &str| {
            let (rest, mut labels) = crate::stat_name::extract(name, &tags);
            labels.sort();
            (rest, labels)
        };
        let mut out = BTreeMap::new();
        for (name, v) in self.values.borrow().iter() {
            out.insert(key(name), SeriesValue::Value(*v));
        }
        for (name, s) in self.samples.borrow().iter() {
            out.insert(key(name), SeriesValue::Samples(s.clone()));
        }
        for (k, v) in self.labelled_values.borrow().iter() {
            out.insert(k.clone(), SeriesValue::Value(*v));
        }
        for (k, s) in self.labelled_samples.borrow().iter() {
            out.insert(k.clone(), SeriesValue::Samples(s.clone()));
        }
        out
    }

    /// The series of labelled metric `id` with `values`; a value count that does not match
    /// the label names shows as a label of its own, so tests see it.
    fn labelled_series(&self, id: u32, values: &[&str]) -> (MetricKind, SeriesKey) {
        let (kind, name, labels) = self.labelled_metrics.borrow()[id as usize].clone();
        let mut pairs: Vec<(String, String)> = labels
            .into_iter()
            .zip(values)
            .map(|(l, v)| (l, v.to_string()))
            .collect();
        if pairs.len() != values.len() {
            pairs.push(("__value_count".into(), values.len().to_string()));
        }
        pairs.sort();
        (kind, (name, pairs))
    }

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
    fn edits_data(&self) -> bool {
        self.data.is_some()
    }
    fn data(&self, which: Data, len: usize) -> Option<Vec<u8>> {
        self.calls
            .borrow_mut()
            .push(format!("data {which:?} {len}"));
        let d = self.data.as_ref()?.borrow();
        let b = &d[data_index(which)];
        Some(b[..len.min(b.len())].to_vec())
    }
    fn replace_data_start(&self, which: Data, drain: usize, prepend: &[u8]) -> bool {
        self.calls.borrow_mut().push(format!(
            "replace_data_start {which:?} {drain} {}",
            prepend.len()
        ));
        let Some(d) = &self.data else { return false };
        let mut d = d.borrow_mut();
        let b = &mut d[data_index(which)];
        let rest = b.split_off(drain.min(b.len()));
        *b = prepend.to_vec();
        b.extend_from_slice(&rest);
        true
    }
    fn labelled_metrics(&self) -> bool {
        self.labelled
    }
    fn define_labelled_metric(&self, kind: MetricKind, name: &str, labels: &[&str]) -> Option<u32> {
        self.calls.borrow_mut().push(format!(
            "define_labelled_metric {kind:?} {name} [{}]",
            labels.join(",")
        ));
        let mut metrics = self.labelled_metrics.borrow_mut();
        let labels = labels.iter().map(|l| l.to_string()).collect();
        metrics.push((kind, name.to_string(), labels));
        u32::try_from(metrics.len() - 1).ok()
    }
    fn increment_labelled_metric(&self, id: u32, values: &[&str], delta: i64) {
        self.calls
            .borrow_mut()
            .push(format!("increment_labelled_metric {id}"));
        let (_, series) = self.labelled_series(id, values);
        *self.labelled_values.borrow_mut().entry(series).or_default() += delta;
    }
    fn record_labelled_metric(&self, id: u32, values: &[&str], value: u64) {
        self.calls
            .borrow_mut()
            .push(format!("record_labelled_metric {id}"));
        match self.labelled_series(id, values) {
            (MetricKind::Histogram, series) => self
                .labelled_samples
                .borrow_mut()
                .entry(series)
                .or_default()
                .push(value),
            (_, series) => {
                self.labelled_values
                    .borrow_mut()
                    .insert(series, value as i64);
            }
        }
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

fn data_index(which: Data) -> usize {
    match which {
        Data::Downstream => 0,
        Data::Upstream => 1,
    }
}
