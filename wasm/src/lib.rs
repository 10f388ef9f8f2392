//! meshstats as a proxy-wasm module (ABI 0.2.1): the adapter between Envoy's Wasm host and the
//! filter's logic (`meshstats-filter`, which knows no ABI). It exports the callbacks Envoy
//! calls, dispatches them to [`Root`]/[`Stream`], and implements [`Host`] over the raw host
//! functions in `abi`.
//!
//! The callbacks are exported here rather than through the proxy-wasm SDK's dispatcher: the
//! SDK panics on unexpected input (an unknown context id, a context of the "wrong" kind), a
//! panic traps the VM and fails the request, and its dispatcher fixes a root's stream kind
//! (HTTP or TCP) up front. Only the callbacks the filter uses are exported, so Envoy does not
//! call into the VM for request bodies, trailers or metadata at all.
//!
//! On any target but `wasm32` the crate is empty (it imports the proxy-wasm host functions).
#![cfg(target_arch = "wasm32")]
#![allow(unsafe_code)] // `#[no_mangle]` exports

mod abi;

use hashbrown::HashMap;
use meshstats_filter::attributes::batch;
use meshstats_filter::config::MetricKind;
use meshstats_filter::host::{decode, edit_headers_one_by_one, Data, Headers, Host, LogLevel};
use meshstats_filter::plugin::{DataAction, Root, Stream};
use std::cell::{Cell, RefCell};

/// Host calls through `abi`, never a panicking wrapper.
struct ProxyHost;

fn map_type(map: Headers) -> u32 {
    match map {
        Headers::Request => abi::MAP_REQUEST_HEADERS,
        Headers::Response => abi::MAP_RESPONSE_HEADERS,
        Headers::ResponseTrailers => abi::MAP_RESPONSE_TRAILERS,
    }
}

fn buffer_type(which: Data) -> u32 {
    match which {
        Data::Downstream => abi::BUFFER_DOWNSTREAM_DATA,
        Data::Upstream => abi::BUFFER_UPSTREAM_DATA,
    }
}

impl Host for ProxyHost {
    fn edits_data(&self) -> bool {
        true
    }
    fn data(&self, which: Data, len: usize) -> Option<Vec<u8>> {
        // An empty buffer comes back as none: zero bytes, not an error.
        abi::get_buffer_start(buffer_type(which), len)
            .ok()
            .map(Option::unwrap_or_default)
    }
    fn replace_data_start(&self, which: Data, drain: usize, prepend: &[u8]) -> bool {
        abi::replace_buffer_start(buffer_type(which), drain, prepend).is_ok()
    }
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        abi::get_property(path).ok().flatten()
    }
    // Header values may carry bytes 0x80-0xFF (Envoy lets them through): decoded lossily.
    fn header(&self, map: Headers, name: &str) -> Option<String> {
        abi::get_header_map_value(map_type(map), name)
            .ok()
            .flatten()
            .map(decode::string)
    }
    fn header_map(&self, map: Headers) -> Vec<(String, String)> {
        abi::get_header_map_pairs(map_type(map))
            .ok()
            .flatten()
            .map(|b| decode::pairs(&b))
            .unwrap_or_default()
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
    // One `proxy_set_header_map_pairs` instead of a call per header: each call costs a
    // crossing (1.5–4 µs), while Envoy re-adding a typical map of 10–15 headers costs well
    // under one. A value decoded lossily (bytes 0x80-0xFF) would be written back changed, so
    // such a map keeps the per-header calls.
    fn edit_headers(
        &self,
        map: Headers,
        current: &[(String, String)],
        remove: &[&str],
        add: &[(&str, &str)],
    ) {
        let drop = |k: &str| remove.contains(&k) || add.iter().any(|(a, _)| *a == k);
        let removing = current.iter().any(|(k, _)| remove.contains(&k.as_str()));
        let edits = usize::from(removing) + add.len();
        let lossy = current
            .iter()
            .any(|(k, v)| k.contains('\u{fffd}') || v.contains('\u{fffd}'));
        if edits < 2 || lossy {
            return edit_headers_one_by_one(self, map, current, remove, add);
        }
        let pairs: Vec<(&str, &str)> = current
            .iter()
            .filter(|(k, _)| !drop(k))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(add.iter().copied())
            .collect();
        if abi::set_header_map_pairs(map_type(map), &decode::encode_pairs(&pairs)).is_err() {
            edit_headers_one_by_one(self, map, current, remove, add);
        }
    }
    /// Envoy's CEL foreign function: the list of all `paths` compiled once in this root
    /// context; a stream context of the root evaluates it by the returned token.
    fn prepare_properties(&self, paths: &[&[&str]]) -> Option<u32> {
        let outcome = batch::expression(paths).ok_or(0).and_then(|expr| {
            let token = abi::call_foreign_function("expr_create", expr.as_bytes())?;
            let bytes: [u8; 4] = token
                .as_deref()
                .and_then(|t| t.try_into().ok())
                .ok_or(0u32)?;
            Ok(u32::from_le_bytes(bytes))
        });
        note_prepared(&outcome, paths.len());
        outcome.ok()
    }
    // The filter checks the result has one value per path (`Batch::read`).
    fn properties(&self, batch: u32) -> Option<Vec<Option<Vec<u8>>>> {
        let values = match abi::call_foreign_function("expr_evaluate", &batch.to_le_bytes()) {
            Ok(Some(bytes)) => batch::decode(&bytes).ok_or(0),
            Ok(None) => Err(0),
            Err(status) => Err(status),
        };
        if let Err(status) = values {
            // Once per VM: a failing batch is a bug worth seeing, but not once per request.
            if !EVALUATE_FAILED
                .try_with(|f| f.replace(true))
                .unwrap_or(true)
            {
                self.log(
                    LogLevel::Warn,
                    &format!("meshstats: expr_evaluate failed (status {status}, 0: no or undecodable result); such requests read their attributes one property at a time"),
                );
            }
        }
        values.ok()
    }
}

/// What this configure's `prepare_properties` calls did, for its one log line.
#[derive(Default, Clone, Copy)]
struct Prepared {
    batches: usize,
    attributes: usize,
    failed: Option<u32>,
}

fn note_prepared(outcome: &Result<u32, u32>, attributes: usize) {
    let _ = PREPARED.try_with(|p| {
        let mut now = p.get();
        match outcome {
            Ok(_) => {
                now.batches += 1;
                now.attributes += attributes;
            }
            Err(status) => now.failed = Some(*status),
        }
        p.set(now);
    });
}

/// One line per configuration saying how request attributes are read (an Envoy without the
/// CEL foreign functions, or one whose CEL rejects the expression, reads them one by one).
fn log_read_path() {
    let Ok(p) = PREPARED.try_with(|p| p.take()) else {
        return;
    };
    let line = match p {
        Prepared { failed: Some(status), .. } => format!(
            "meshstats: expr_create failed (status {status}): request attributes are read one property at a time"
        ),
        Prepared { batches: 0, .. } => return,
        Prepared { batches, attributes, .. } => format!(
            "meshstats: request attributes are read with expr_evaluate, one host call per stream end ({batches} expressions, {attributes} attributes)"
        ),
    };
    ProxyHost.log(LogLevel::Info, &line);
}

/// Per root context id: its configuration's state (`None` until `on_configure`).
/// Per stream context id: its root's id and what the stream learned.
#[derive(Default)]
struct Contexts {
    roots: HashMap<u32, Option<Root>>,
    streams: HashMap<u32, (u32, Stream)>,
}

thread_local! {
    static CONTEXTS: RefCell<Contexts> = RefCell::new(Contexts::default());
    static PREPARED: Cell<Prepared> = Cell::new(Prepared::default());
    static EVALUATE_FAILED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the contexts; a re-entrant call (impossible in practice: the host does not
/// call back into the VM from inside a host call the filter makes) is skipped, never a panic.
fn with_contexts(f: impl FnOnce(&mut Contexts)) {
    let _ = CONTEXTS.try_with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            f(&mut c);
        }
    });
}

/// Runs `f` on stream `context_id` and its configured root; unknown ids are ignored.
fn with_stream(context_id: u32, f: impl FnOnce(&mut Root, &mut Stream)) {
    with_contexts(|c| {
        let Some((root_id, stream)) = c.streams.get_mut(&context_id) else {
            return;
        };
        if let Some(Some(root)) = c.roots.get_mut(root_id) {
            f(root, stream);
        }
    });
}

const CONTINUE: u32 = 0;
/// A network filter's `StopIteration`: Envoy keeps the data and calls again when more arrives.
const STOP_ITERATION: u32 = 1;
const TRUE: u32 = 1;

#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// Buffers the host hands to the filter (property values, header maps): `abi::owned` takes
/// them back as a `Vec` of exactly this size.
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    Box::into_raw(vec![0u8; size].into_boxed_slice()).cast::<u8>()
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(context_id: u32, root_context_id: u32) {
    with_contexts(|c| {
        if root_context_id == 0 {
            c.roots.insert(context_id, None);
        } else {
            c.streams
                .insert(context_id, (root_context_id, Stream::default()));
        }
    });
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_root_context_id: u32, _vm_configuration_size: usize) -> u32 {
    TRUE
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(root_context_id: u32, _configuration_size: usize) -> u32 {
    let bytes = abi::get_buffer(abi::BUFFER_PLUGIN_CONFIGURATION)
        .ok()
        .flatten()
        .unwrap_or_default();
    let root = Root::configure(&ProxyHost, &String::from_utf8_lossy(&bytes));
    log_read_path();
    // One timer for cache expiry, TCP and gRPC reports and counter flushes (`Root::tick`).
    let period = root.tick_period_ms();
    with_contexts(|c| {
        // A new configuration mid-traffic: what the old one counted goes out before it is
        // dropped (its metric ids stay valid, Envoy keeps the VM's stats).
        if let Some(Some(old)) = c.roots.insert(root_context_id, Some(root)) {
            old.flush(&ProxyHost);
        }
    });
    let _ = abi::set_tick_period(period);
    // Returning false would stop Envoy from serving with this filter: never do that.
    TRUE
}

#[no_mangle]
pub extern "C" fn proxy_on_tick(root_context_id: u32) {
    with_contexts(|c| {
        let Contexts { roots, streams } = c;
        let Some(Some(root)) = roots.get_mut(&root_context_id) else {
            return;
        };
        if !root.tick() {
            root.flush(&ProxyHost);
            return;
        }
        let mut switched = false;
        for (id, (owner, stream)) in streams.iter_mut() {
            // Only open TCP connections and open gRPC streams (with message metrics) report;
            // other streams cost nothing here.
            let (tcp, grpc) = (stream.tcp_open(), stream.grpc_open());
            if *owner != root_context_id || !(tcp || grpc) {
                continue;
            }
            // Property reads then see this stream, not the root; if the host refuses, the
            // report waits for the next tick rather than read the wrong context.
            if abi::set_effective_context(*id).is_ok() {
                switched = true;
                if tcp {
                    root.report_tcp(&ProxyHost, stream, false);
                } else {
                    root.report_grpc(&ProxyHost, stream);
                }
            }
        }
        if switched {
            let _ = abi::set_effective_context(root_context_id);
        }
        // After the reports, so their counters go out in this tick too.
        root.flush(&ProxyHost);
    });
}

/// A network filter's connection: from here on the stream is TCP (`plugin::tcp`).
#[no_mangle]
pub extern "C" fn proxy_on_new_connection(context_id: u32) -> u32 {
    with_stream(context_id, |root, stream| root.on_new_connection(stream));
    CONTINUE
}

/// Per data chunk: counted, no host call, except while the TCP metadata exchange looks at a
/// connection's first bytes (`plugin::tcp_exchange`).
#[no_mangle]
pub extern "C" fn proxy_on_downstream_data(
    context_id: u32,
    data_size: usize,
    end_of_stream: u32,
) -> u32 {
    on_data(context_id, Data::Downstream, data_size, end_of_stream)
}

#[no_mangle]
pub extern "C" fn proxy_on_upstream_data(
    context_id: u32,
    data_size: usize,
    end_of_stream: u32,
) -> u32 {
    on_data(context_id, Data::Upstream, data_size, end_of_stream)
}

fn on_data(context_id: u32, which: Data, size: usize, end_of_stream: u32) -> u32 {
    let mut action = DataAction::Continue;
    with_stream(context_id, |root, stream| {
        action = root.on_data(&ProxyHost, stream, which, size, end_of_stream != 0);
    });
    match action {
        DataAction::Continue => CONTINUE,
        DataAction::Pause => STOP_ITERATION,
    }
}

/// Nothing to do: Envoy calls `proxy_on_log` once the connection is closed, where the last
/// report happens. Exported so that Envoy's calls find a function.
#[no_mangle]
pub extern "C" fn proxy_on_downstream_connection_close(_context_id: u32, _peer_type: u32) {}

#[no_mangle]
pub extern "C" fn proxy_on_upstream_connection_close(_context_id: u32, _peer_type: u32) {}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(
    context_id: u32,
    _headers: u32,
    _end_of_stream: u32,
) -> u32 {
    with_stream(context_id, |root, stream| {
        root.on_request_headers(&ProxyHost, stream)
    });
    CONTINUE
}

#[no_mangle]
pub extern "C" fn proxy_on_response_headers(
    context_id: u32,
    _headers: u32,
    _end_of_stream: u32,
) -> u32 {
    with_stream(context_id, |root, stream| {
        root.on_response_headers(&ProxyHost, stream)
    });
    CONTINUE
}

#[no_mangle]
pub extern "C" fn proxy_on_log(context_id: u32) {
    with_stream(context_id, |root, stream| {
        // For a network filter: the connection's end, its last TCP report.
        if stream.is_tcp() {
            root.report_tcp(&ProxyHost, stream, true);
        } else {
            root.on_log(&ProxyHost, stream);
        }
    });
}

/// For a root context: its configuration or the VM is going away, so the counters summed
/// since the last tick go out now (never lost to a config change or a shutdown).
#[no_mangle]
pub extern "C" fn proxy_on_done(context_id: u32) -> u32 {
    with_contexts(|c| {
        if let Some(Some(root)) = c.roots.get(&context_id) {
            root.flush(&ProxyHost);
        }
    });
    TRUE
}

#[no_mangle]
pub extern "C" fn proxy_on_delete(context_id: u32) {
    with_contexts(|c| {
        if c.streams.remove(&context_id).is_none() {
            // Anything a stream counted after `proxy_on_done`; usually nothing, no host call.
            if let Some(Some(root)) = c.roots.remove(&context_id) {
                root.flush(&ProxyHost);
            }
        }
    });
}
