//! The proxy-wasm ABI: the only module that calls into Envoy. It adapts proxy-wasm's
//! contexts to [`Root`]/[`Stream`] and its host calls to [`Host`]; every host error becomes
//! "absent" or a no-op, never a panic.

use super::{abi, decode, Headers, Host, LogLevel};
use crate::config::MetricKind;
use crate::plugin::{Root, Stream};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};
use std::cell::RefCell;
use std::rc::Rc;

/// Host calls through `abi`, never the SDK's panicking wrappers.
struct ProxyHost;

fn map_type(map: Headers) -> u32 {
    match map {
        Headers::Request => abi::MAP_REQUEST_HEADERS,
        Headers::Response => abi::MAP_RESPONSE_HEADERS,
        Headers::ResponseTrailers => abi::MAP_RESPONSE_TRAILERS,
    }
}

impl Host for ProxyHost {
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        abi::get_property(path).ok().flatten()
    }
    // Header values may carry bytes 0x80-0xFF (Envoy lets them through): decoded lossily.
    fn header(&self, map: Headers, name: &str) -> Option<String> {
        abi::get_header_map_value(map_type(map), name).ok().flatten().map(decode::string)
    }
    fn header_map(&self, map: Headers) -> Vec<(String, String)> {
        abi::get_header_map_pairs(map_type(map)).ok().flatten().map(|b| decode::pairs(&b)).unwrap_or_default()
    }
    fn set_header(&self, map: Headers, name: &str, value: Option<&str>) {
        let _ = match value {
            Some(v) => abi::replace_header_map_value(map_type(map), name, v),
            None => abi::remove_header_map_value(map_type(map), name),
        };
    }
    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<u32> {
        let kind = match kind {
            MetricKind::Counter => 0,
            MetricKind::Gauge => 1,
            MetricKind::Histogram => 2,
        };
        abi::define_metric(kind, name).ok()
    }
    fn increment_metric(&self, id: u32, delta: i64) {
        let _ = abi::increment_metric(id, delta);
    }
    fn record_metric(&self, id: u32, value: u64) {
        let _ = abi::record_metric(id, value);
    }
    fn log(&self, level: LogLevel, message: &str) {
        let level = match level {
            LogLevel::Debug => 1,
            LogLevel::Info => 2,
            LogLevel::Warn => 3,
            LogLevel::Error => 4,
        };
        let _ = abi::log(level, message);
    }
    fn set_property(&self, path: &[&str], value: &[u8]) {
        let _ = abi::set_property(path, value);
    }
}

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(MeshstatsRoot { root: Rc::new(RefCell::new(None)) })
    });
}}

/// How long cached cluster metadata may be stale, in milliseconds.
const CACHE_PERIOD_MS: u32 = 30_000;

struct MeshstatsRoot {
    /// Shared with the streams; `None` until Envoy delivers the configuration.
    root: Rc<RefCell<Option<Root>>>,
}

impl Context for MeshstatsRoot {}

impl RootContext for MeshstatsRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = abi::get_buffer(abi::BUFFER_PLUGIN_CONFIGURATION).ok().flatten().unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        *self.root.borrow_mut() = Some(Root::configure(&ProxyHost, &text));
        let _ = abi::set_tick_period(CACHE_PERIOD_MS);
        // Returning false would stop Envoy from serving with this filter: never do that.
        true
    }

    fn on_tick(&mut self) {
        if let Ok(mut guard) = self.root.try_borrow_mut() {
            if let Some(root) = guard.as_mut() {
                root.on_tick();
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(MeshstatsStream { root: Rc::clone(&self.root), stream: Stream::default() }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct MeshstatsStream {
    root: Rc<RefCell<Option<Root>>>,
    stream: Stream,
}

impl MeshstatsStream {
    fn with_root(&mut self, f: impl FnOnce(&mut Root, &mut Stream)) {
        // try_borrow_mut: a re-entrant call must skip telemetry, not panic.
        if let Ok(mut guard) = self.root.try_borrow_mut() {
            if let Some(root) = guard.as_mut() {
                f(root, &mut self.stream);
            }
        }
    }
}

impl Context for MeshstatsStream {}

impl HttpContext for MeshstatsStream {
    fn on_http_request_headers(&mut self, _n: usize, _end_of_stream: bool) -> Action {
        self.with_root(|root, stream| root.on_request_headers(&ProxyHost, stream));
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _n: usize, _end_of_stream: bool) -> Action {
        self.with_root(|root, stream| root.on_response_headers(&ProxyHost, stream));
        Action::Continue
    }

    fn on_log(&mut self) {
        self.with_root(|root, stream| root.on_log(&ProxyHost, stream));
    }
}
