//! A hostile [`Host`]: every property the filter reads and every header map it asks for is
//! drawn from the fuzzer's bytes the first time it is read (then kept, as Envoy's are for one
//! request), and everything the filter writes is recorded for the targets' checks.

use crate::gen;
use arbitrary::Unstructured;
use meshstats_filter::config::MetricKind;
use meshstats_filter::host::{Headers, Host, LogLevel};
use meshstats_filter::peer::{METADATA_HEADER, METADATA_ID_HEADER};
use std::cell::RefCell;
use std::collections::HashMap;

/// Header names the filter looks at; the rest of a map is arbitrary.
const HEADER_NAMES: &[&str] = &[
    METADATA_HEADER,
    METADATA_ID_HEADER,
    ":status",
    ":authority",
    ":path",
    ":method",
    "content-type",
    "host",
    "x-user",
    "grpc-status",
    "user-agent",
];

#[derive(Default)]
pub struct Recorded {
    /// Every `define_metric`: (kind, name); the id is the index.
    pub metrics: Vec<(MetricKind, String)>,
    pub logs: Vec<(LogLevel, String)>,
    pub properties_set: Vec<(Vec<String>, Vec<u8>)>,
}

pub struct FuzzHost<'a> {
    u: RefCell<Unstructured<'a>>,
    properties: RefCell<HashMap<String, Option<Vec<u8>>>>,
    headers: RefCell<HashMap<u8, Vec<(String, String)>>>,
    pub out: RefCell<Recorded>,
}

impl<'a> FuzzHost<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        FuzzHost {
            u: RefCell::new(Unstructured::new(data)),
            properties: RefCell::default(),
            headers: RefCell::default(),
            out: RefCell::default(),
        }
    }

    /// A property as the filter was given it: `None` when absent or never read.
    pub fn property_drawn(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.properties
            .borrow()
            .get(&path.join("\u{0}"))
            .cloned()
            .flatten()
    }

    fn draw_property(&self, path: &[&str]) -> Option<Vec<u8>> {
        let u = &mut *self.u.borrow_mut();
        match gen::below(u, 8) {
            0 => None,
            // Integers, durations and timestamps are 8 bytes little endian.
            1 | 2 => Some(gen::int(u).to_le_bytes().to_vec()),
            3 if path.last() == Some(&"workload") => {
                // `istio.workload` endpoint metadata: name;namespace;canonical;revision;cluster.
                let parts: Vec<String> = (0..gen::below(u, 7)).map(|_| gen::string(u, 3)).collect();
                Some(parts.join(";").into_bytes())
            }
            3 | 4 => Some(gen::string(u, 6).into_bytes()),
            _ => {
                let len = gen::below(u, 64);
                Some(u.bytes(len).map(<[u8]>::to_vec).unwrap_or_default())
            }
        }
    }

    fn draw_headers(&self) -> Vec<(String, String)> {
        let u = &mut *self.u.borrow_mut();
        let mut map = gen::pairs(u, HEADER_NAMES, 8);
        if gen::flag(u) {
            // A peer that encodes well, so hostile strings reach the labels, not just the decoder.
            let node = crate::targets::peer::arbitrary_node(u);
            map.push((METADATA_HEADER.to_string(), node.to_header_value()));
            map.push((METADATA_ID_HEADER.to_string(), gen::string(u, 2)));
        }
        map
    }
}

fn map_key(map: Headers) -> u8 {
    match map {
        Headers::Request => 0,
        Headers::Response => 1,
        Headers::ResponseTrailers => 2,
    }
}

impl Host for FuzzHost<'_> {
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        let key = path.join("\u{0}");
        if let Some(v) = self.properties.borrow().get(&key) {
            return v.clone();
        }
        let v = self.draw_property(path);
        self.properties.borrow_mut().insert(key, v.clone());
        v
    }

    fn header(&self, map: Headers, name: &str) -> Option<String> {
        self.header_map(map)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    fn header_map(&self, map: Headers) -> Vec<(String, String)> {
        let key = map_key(map);
        if let Some(h) = self.headers.borrow().get(&key) {
            return h.clone();
        }
        let h = self.draw_headers();
        self.headers.borrow_mut().insert(key, h.clone());
        h
    }

    fn set_header(&self, map: Headers, name: &str, value: Option<&str>) {
        let key = map_key(map);
        let mut headers = self.headers.borrow_mut();
        let h = headers.entry(key).or_default();
        h.retain(|(k, _)| k != name);
        if let Some(v) = value {
            h.push((name.to_string(), v.to_string()));
        }
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<u32> {
        let mut out = self.out.borrow_mut();
        out.metrics.push((kind, name.to_string()));
        u32::try_from(out.metrics.len() - 1).ok()
    }

    fn increment_metric(&self, _id: u32, _delta: i64) {}

    fn record_metric(&self, _id: u32, _value: u64) {}

    fn log(&self, level: LogLevel, message: &str) {
        self.out
            .borrow_mut()
            .logs
            .push((level, message.to_string()));
    }

    fn set_property(&self, path: &[&str], value: &[u8]) {
        let path = path.iter().map(|s| s.to_string()).collect();
        self.out
            .borrow_mut()
            .properties_set
            .push((path, value.to_vec()));
    }
}

/// Runs one HTTP request through a filter configured with `config`, on `host`.
pub fn one_request(host: &FuzzHost<'_>, config: &str) -> meshstats_filter::plugin::Root {
    use meshstats_filter::plugin::{Root, Stream};
    let mut root = Root::configure(host, config);
    let mut stream = Stream::default();
    root.on_request_headers(host, &mut stream);
    root.on_response_headers(host, &mut stream);
    root.on_log(host, &mut stream);
    root
}
