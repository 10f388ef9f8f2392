//! The proxy-wasm ABI: the only module that calls into Envoy. It adapts proxy-wasm's
//! contexts to [`Root`]/[`Stream`] and its host calls to [`Host`]; every host error becomes
//! "absent" or a no-op, never a panic.

use super::{Headers, Host, LogLevel};
use crate::config::MetricKind;
use crate::plugin::{Root, Stream};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, MapType, MetricType};
use std::cell::RefCell;
use std::rc::Rc;

struct ProxyHost;

fn map_type(map: Headers) -> MapType {
    match map {
        Headers::Request => MapType::HttpRequestHeaders,
        Headers::Response => MapType::HttpResponseHeaders,
        Headers::ResponseTrailers => MapType::HttpResponseTrailers,
    }
}

impl Host for ProxyHost {
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        hostcalls::get_property(path.to_vec()).ok().flatten()
    }
    fn header(&self, map: Headers, name: &str) -> Option<String> {
        hostcalls::get_map_value(map_type(map), name).ok().flatten()
    }
    fn header_map(&self, map: Headers) -> Vec<(String, String)> {
        hostcalls::get_map(map_type(map)).unwrap_or_default()
    }
    fn set_header(&self, map: Headers, name: &str, value: Option<&str>) {
        let _ = hostcalls::set_map_value(map_type(map), name, value);
    }
    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<u32> {
        let kind = match kind {
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Gauge => MetricType::Gauge,
            MetricKind::Histogram => MetricType::Histogram,
        };
        hostcalls::define_metric(kind, name).ok()
    }
    fn increment_metric(&self, id: u32, delta: i64) {
        let _ = hostcalls::increment_metric(id, delta);
    }
    fn record_metric(&self, id: u32, value: u64) {
        let _ = hostcalls::record_metric(id, value);
    }
    fn log(&self, level: LogLevel, message: &str) {
        let level = match level {
            LogLevel::Debug => proxy_wasm::types::LogLevel::Debug,
            LogLevel::Info => proxy_wasm::types::LogLevel::Info,
            LogLevel::Warn => proxy_wasm::types::LogLevel::Warn,
            LogLevel::Error => proxy_wasm::types::LogLevel::Error,
        };
        let _ = hostcalls::log(level, message);
    }
}

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(MeshstatsRoot { root: Rc::new(RefCell::new(None)) })
    });
}}

/// How long cached cluster metadata may be stale.
const CACHE_PERIOD: std::time::Duration = std::time::Duration::from_secs(30);

struct MeshstatsRoot {
    /// Shared with the streams; `None` until Envoy delivers the configuration.
    root: Rc<RefCell<Option<Root>>>,
}

impl Context for MeshstatsRoot {}

impl RootContext for MeshstatsRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        *self.root.borrow_mut() = Some(Root::configure(&ProxyHost, &text));
        let _ = hostcalls::set_tick_period(CACHE_PERIOD);
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
