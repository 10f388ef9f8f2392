//! The raw dynamic-module ABI of Envoy 1.40 (`source/extensions/dynamic_modules/abi/abi.h`):
//! only the callbacks and types this module uses, declared by hand, and a safe wrapper for
//! each. This is the only module with `unsafe` code.
//!
//! Every signature here was checked against the Envoy 1.40.0 binary itself (the stored header
//! is newer than 1.40): `nm -D --defined-only envoy | grep envoy_dynamic_module_callback`
//! lists each symbol, and the argument registers each one reads were checked in its
//! disassembly (docs/native.md). A C struct of a pointer and a length passed by value takes
//! the same two registers as the two separate arguments older headers used.
//!
//! Safety contract shared by all wrappers: `filter`/`config` is the pointer Envoy handed to
//! the current event hook, used only during that hook (Envoy guarantees it is valid until the
//! filter's / config's destroy hook), and on the thread that hook runs on. Buffers Envoy
//! returns are copied before the wrapper returns, so no Envoy-owned memory outlives a call.
#![allow(unsafe_code)]

use std::ffi::c_void;

/// An opaque Envoy-side object (`DynamicModuleHttpFilter*`, `...Config*`, ...).
pub type EnvoyPtr = *mut c_void;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyBuffer {
    pub ptr: *const u8,
    pub length: usize,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct ModuleBuffer {
    pub ptr: *const u8,
    pub length: usize,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyHttpHeader {
    pub key_ptr: *const u8,
    pub key_length: usize,
    pub value_ptr: *const u8,
    pub value_length: usize,
}

impl ModuleBuffer {
    fn of(s: &[u8]) -> ModuleBuffer {
        ModuleBuffer {
            ptr: s.as_ptr(),
            length: s.len(),
        }
    }
}

/// `envoy_dynamic_module_type_http_header_type`.
pub const HEADER_REQUEST: u32 = 0;
pub const HEADER_RESPONSE: u32 = 2;
pub const HEADER_RESPONSE_TRAILER: u32 = 3;

/// `envoy_dynamic_module_type_metadata_source`.
pub const METADATA_CLUSTER: u32 = 2;
pub const METADATA_HOST: u32 = 3;

/// `envoy_dynamic_module_type_log_level`.
pub const LOG_DEBUG: u32 = 1;
pub const LOG_INFO: u32 = 2;
pub const LOG_WARN: u32 = 3;
pub const LOG_ERROR: u32 = 4;

/// `envoy_dynamic_module_type_metrics_result_Success`.
const METRICS_SUCCESS: u32 = 0;

/// The ABI version this module was written against; Envoy 1.40 only warns on a mismatch.
pub static ABI_VERSION: &[u8] = b"v0.1.0\0";

extern "C" {
    fn envoy_dynamic_module_callback_log(level: u32, message: ModuleBuffer);

    fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        config: EnvoyPtr,
        name: ModuleBuffer,
        labels: *const ModuleBuffer,
        labels_len: usize,
        id: *mut usize,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_define_gauge(
        config: EnvoyPtr,
        name: ModuleBuffer,
        labels: *const ModuleBuffer,
        labels_len: usize,
        id: *mut usize,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_define_histogram(
        config: EnvoyPtr,
        name: ModuleBuffer,
        labels: *const ModuleBuffer,
        labels_len: usize,
        id: *mut usize,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_increment_counter(
        config: EnvoyPtr,
        id: usize,
        values: *const ModuleBuffer,
        values_len: usize,
        delta: u64,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_set_gauge(
        config: EnvoyPtr,
        id: usize,
        values: *const ModuleBuffer,
        values_len: usize,
        value: u64,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_increment_counter(
        filter: EnvoyPtr,
        id: usize,
        values: *const ModuleBuffer,
        values_len: usize,
        delta: u64,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_increment_gauge(
        filter: EnvoyPtr,
        id: usize,
        values: *const ModuleBuffer,
        values_len: usize,
        delta: u64,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_decrement_gauge(
        filter: EnvoyPtr,
        id: usize,
        values: *const ModuleBuffer,
        values_len: usize,
        delta: u64,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_set_gauge(
        filter: EnvoyPtr,
        id: usize,
        values: *const ModuleBuffer,
        values_len: usize,
        value: u64,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_record_histogram_value(
        filter: EnvoyPtr,
        id: usize,
        values: *const ModuleBuffer,
        values_len: usize,
        value: u64,
    ) -> u32;

    fn envoy_dynamic_module_callback_http_get_headers_size(filter: EnvoyPtr, map: u32) -> usize;
    fn envoy_dynamic_module_callback_http_get_headers(
        filter: EnvoyPtr,
        map: u32,
        out: *mut EnvoyHttpHeader,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_get_header(
        filter: EnvoyPtr,
        map: u32,
        key: ModuleBuffer,
        out: *mut EnvoyBuffer,
        index: usize,
        total: *mut usize,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_set_header(
        filter: EnvoyPtr,
        map: u32,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;

    fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
        filter: EnvoyPtr,
        id: u32,
        out: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_filter_get_attribute_int(
        filter: EnvoyPtr,
        id: u32,
        out: *mut u64,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_filter_get_attribute_bool(
        filter: EnvoyPtr,
        id: u32,
        out: *mut bool,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_get_metadata_string(
        filter: EnvoyPtr,
        source: u32,
        namespace: ModuleBuffer,
        key: ModuleBuffer,
        out: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_get_filter_state_bytes(
        filter: EnvoyPtr,
        key: ModuleBuffer,
        out: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_set_filter_state_bytes(
        filter: EnvoyPtr,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;

    fn envoy_dynamic_module_callback_network_filter_get_attribute_string(
        filter: EnvoyPtr,
        id: u32,
        out: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_network_filter_get_attribute_int(
        filter: EnvoyPtr,
        id: u32,
        out: *mut u64,
    ) -> bool;
    fn envoy_dynamic_module_callback_network_filter_get_attribute_bool(
        filter: EnvoyPtr,
        id: u32,
        out: *mut bool,
    ) -> bool;
    fn envoy_dynamic_module_callback_network_set_filter_state_bytes(
        filter: EnvoyPtr,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
}

/// Copies an Envoy-owned buffer; a null pointer reads as empty.
fn copy(buf: EnvoyBuffer) -> Vec<u8> {
    if buf.ptr.is_null() || buf.length == 0 {
        return Vec::new();
    }
    // SAFETY: Envoy returned `ptr` valid for `length` bytes until the hook returns; it is
    // copied here, inside the hook.
    unsafe { std::slice::from_raw_parts(buf.ptr, buf.length) }.to_vec()
}

const EMPTY: EnvoyBuffer = EnvoyBuffer {
    ptr: std::ptr::null(),
    length: 0,
};

fn values(values: &[&str]) -> Vec<ModuleBuffer> {
    values
        .iter()
        .map(|v| ModuleBuffer::of(v.as_bytes()))
        .collect()
}

pub fn log(level: u32, message: &str) {
    // SAFETY: the message buffer is valid for the call; Envoy copies it.
    unsafe { envoy_dynamic_module_callback_log(level, ModuleBuffer::of(message.as_bytes())) }
}

/// Which of Envoy's per-config metric tables an id belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Defines a metric with `labels` in the HTTP filter config; `None` when Envoy refuses
/// (`Frozen` after config time, or another error).
pub fn http_config_define(
    config: EnvoyPtr,
    kind: Kind,
    name: &str,
    labels: &[&str],
) -> Option<usize> {
    if config.is_null() {
        return None;
    }
    let labels = values(labels);
    let mut id = 0usize;
    let f = match kind {
        Kind::Counter => envoy_dynamic_module_callback_http_filter_config_define_counter,
        Kind::Gauge => envoy_dynamic_module_callback_http_filter_config_define_gauge,
        Kind::Histogram => envoy_dynamic_module_callback_http_filter_config_define_histogram,
    };
    // SAFETY: `config` is the hook's config pointer; the name and label buffers live
    // through the call (Envoy interns them); `id` is a valid out pointer.
    let r = unsafe {
        f(
            config,
            ModuleBuffer::of(name.as_bytes()),
            labels.as_ptr(),
            labels.len(),
            &mut id,
        )
    };
    (r == METRICS_SUCCESS).then_some(id)
}

/// Config-level write (main thread, config time: `istio_build`, the config-error counter).
pub fn http_config_write(
    config: EnvoyPtr,
    kind: Kind,
    id: usize,
    vals: &[&str],
    value: u64,
) -> bool {
    if config.is_null() {
        return false;
    }
    let vals = values(vals);
    // SAFETY: as `http_config_define`; the value buffers live through the call.
    let r = unsafe {
        match kind {
            Kind::Counter => envoy_dynamic_module_callback_http_filter_config_increment_counter(
                config,
                id,
                vals.as_ptr(),
                vals.len(),
                value,
            ),
            Kind::Gauge => envoy_dynamic_module_callback_http_filter_config_set_gauge(
                config,
                id,
                vals.as_ptr(),
                vals.len(),
                value,
            ),
            Kind::Histogram => return false,
        }
    };
    r == METRICS_SUCCESS
}

/// What a per-stream metric write does.
#[derive(Debug, Clone, Copy)]
pub enum Write {
    Add(u64),
    Sub(u64),
    Set(u64),
    Record(u64),
}

pub fn http_filter_write(filter: EnvoyPtr, id: usize, vals: &[&str], write: Write) -> bool {
    if filter.is_null() {
        return false;
    }
    let vals = values(vals);
    let (p, n) = (vals.as_ptr(), vals.len());
    // SAFETY: `filter` is the hook's filter pointer; the value buffers live through the call.
    let r = unsafe {
        match write {
            Write::Add(v) => {
                envoy_dynamic_module_callback_http_filter_increment_counter(filter, id, p, n, v)
            }
            Write::Sub(v) => {
                envoy_dynamic_module_callback_http_filter_decrement_gauge(filter, id, p, n, v)
            }
            Write::Set(v) => {
                envoy_dynamic_module_callback_http_filter_set_gauge(filter, id, p, n, v)
            }
            Write::Record(v) => envoy_dynamic_module_callback_http_filter_record_histogram_value(
                filter, id, p, n, v,
            ),
        }
    };
    r == METRICS_SUCCESS
}

/// A gauge increment (a counter's is `Write::Add`).
pub fn http_filter_gauge_add(filter: EnvoyPtr, id: usize, vals: &[&str], delta: u64) -> bool {
    if filter.is_null() {
        return false;
    }
    let vals = values(vals);
    // SAFETY: as `http_filter_write`.
    let r = unsafe {
        envoy_dynamic_module_callback_http_filter_increment_gauge(
            filter,
            id,
            vals.as_ptr(),
            vals.len(),
            delta,
        )
    };
    r == METRICS_SUCCESS
}

/// The whole header map, in one call for the size and one for the entries; at most `max`
/// entries are copied.
pub fn http_headers(filter: EnvoyPtr, map: u32, max: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    if filter.is_null() {
        return Vec::new();
    }
    // SAFETY: `filter` is the hook's filter pointer.
    let n = unsafe { envoy_dynamic_module_callback_http_get_headers_size(filter, map) };
    if n == 0 {
        return Vec::new();
    }
    let empty = EnvoyHttpHeader {
        key_ptr: std::ptr::null(),
        key_length: 0,
        value_ptr: std::ptr::null(),
        value_length: 0,
    };
    let mut out = vec![empty; n];
    // SAFETY: `out` has room for the `n` entries Envoy just said the map holds (the map does
    // not change between the two calls: both run inside one hook on Envoy's thread).
    let ok =
        unsafe { envoy_dynamic_module_callback_http_get_headers(filter, map, out.as_mut_ptr()) };
    if !ok {
        return Vec::new();
    }
    out.iter()
        .take(max)
        .map(|h| {
            (
                copy(EnvoyBuffer {
                    ptr: h.key_ptr,
                    length: h.key_length,
                }),
                copy(EnvoyBuffer {
                    ptr: h.value_ptr,
                    length: h.value_length,
                }),
            )
        })
        .collect()
}

pub fn http_header(filter: EnvoyPtr, map: u32, name: &str) -> Option<Vec<u8>> {
    if filter.is_null() {
        return None;
    }
    let mut out = EMPTY;
    let mut total = 0usize;
    // SAFETY: `filter` is the hook's filter pointer; `out`/`total` are valid out pointers.
    let ok = unsafe {
        envoy_dynamic_module_callback_http_get_header(
            filter,
            map,
            ModuleBuffer::of(name.as_bytes()),
            &mut out,
            0,
            &mut total,
        )
    };
    (ok && total > 0).then(|| copy(out))
}

/// Sets `name` to `value`, or removes it (`None`: Envoy removes on a null value pointer).
pub fn http_set_header(filter: EnvoyPtr, map: u32, name: &str, value: Option<&str>) -> bool {
    if filter.is_null() {
        return false;
    }
    let value = match value {
        Some(v) => ModuleBuffer::of(v.as_bytes()),
        None => ModuleBuffer {
            ptr: std::ptr::null(),
            length: 0,
        },
    };
    // SAFETY: `filter` is the hook's filter pointer; Envoy copies key and value.
    unsafe {
        envoy_dynamic_module_callback_http_set_header(
            filter,
            map,
            ModuleBuffer::of(name.as_bytes()),
            value,
        )
    }
}

/// Which filter kind a pointer is: the attribute callbacks differ by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterKind {
    Http,
    Network,
}

pub fn attribute_string(kind: FilterKind, filter: EnvoyPtr, id: u32) -> Option<Vec<u8>> {
    if filter.is_null() {
        return None;
    }
    let mut out = EMPTY;
    // SAFETY: `filter` is the hook's pointer of this kind; `out` is a valid out pointer.
    let ok = unsafe {
        match kind {
            FilterKind::Http => {
                envoy_dynamic_module_callback_http_filter_get_attribute_string(filter, id, &mut out)
            }
            FilterKind::Network => {
                envoy_dynamic_module_callback_network_filter_get_attribute_string(
                    filter, id, &mut out,
                )
            }
        }
    };
    ok.then(|| copy(out))
}

pub fn attribute_int(kind: FilterKind, filter: EnvoyPtr, id: u32) -> Option<u64> {
    if filter.is_null() {
        return None;
    }
    let mut out = 0u64;
    // SAFETY: as `attribute_string`.
    let ok = unsafe {
        match kind {
            FilterKind::Http => {
                envoy_dynamic_module_callback_http_filter_get_attribute_int(filter, id, &mut out)
            }
            FilterKind::Network => {
                envoy_dynamic_module_callback_network_filter_get_attribute_int(filter, id, &mut out)
            }
        }
    };
    ok.then_some(out)
}

pub fn attribute_bool(kind: FilterKind, filter: EnvoyPtr, id: u32) -> Option<bool> {
    if filter.is_null() {
        return None;
    }
    let mut out = false;
    // SAFETY: as `attribute_string`.
    let ok = unsafe {
        match kind {
            FilterKind::Http => {
                envoy_dynamic_module_callback_http_filter_get_attribute_bool(filter, id, &mut out)
            }
            FilterKind::Network => envoy_dynamic_module_callback_network_filter_get_attribute_bool(
                filter, id, &mut out,
            ),
        }
    };
    ok.then_some(out)
}

/// A string value in metadata `source` (cluster, host), namespace `ns`, key `key`.
pub fn http_metadata_string(filter: EnvoyPtr, source: u32, ns: &str, key: &str) -> Option<Vec<u8>> {
    if filter.is_null() {
        return None;
    }
    let mut out = EMPTY;
    // SAFETY: `filter` is the hook's filter pointer; `out` is a valid out pointer.
    let ok = unsafe {
        envoy_dynamic_module_callback_http_get_metadata_string(
            filter,
            source,
            ModuleBuffer::of(ns.as_bytes()),
            ModuleBuffer::of(key.as_bytes()),
            &mut out,
        )
    };
    ok.then(|| copy(out))
}

pub fn http_filter_state(filter: EnvoyPtr, key: &str) -> Option<Vec<u8>> {
    if filter.is_null() {
        return None;
    }
    let mut out = EMPTY;
    // SAFETY: `filter` is the hook's filter pointer; `out` is a valid out pointer.
    let ok = unsafe {
        envoy_dynamic_module_callback_http_get_filter_state_bytes(
            filter,
            ModuleBuffer::of(key.as_bytes()),
            &mut out,
        )
    };
    ok.then(|| copy(out))
}

pub fn set_filter_state(kind: FilterKind, filter: EnvoyPtr, key: &str, value: &[u8]) -> bool {
    if filter.is_null() {
        return false;
    }
    let (k, v) = (ModuleBuffer::of(key.as_bytes()), ModuleBuffer::of(value));
    // SAFETY: `filter` is the hook's pointer of this kind; Envoy copies key and value.
    unsafe {
        match kind {
            FilterKind::Http => {
                envoy_dynamic_module_callback_http_set_filter_state_bytes(filter, k, v)
            }
            FilterKind::Network => {
                envoy_dynamic_module_callback_network_set_filter_state_bytes(filter, k, v)
            }
        }
    }
}

/// An Envoy buffer handed to a hook (a config's name or bytes), copied.
pub fn hook_buffer(buf: EnvoyBuffer) -> Vec<u8> {
    copy(buf)
}

/// Hands a module object to Envoy (a config or a filter): Envoy keeps the pointer and gives
/// it back in later hooks until the matching destroy hook.
pub fn into_module_ptr<T>(value: Box<T>) -> *const c_void {
    Box::into_raw(value) as *const c_void
}

/// The object behind a pointer [`into_module_ptr::<T>`] returned, for the duration of a hook.
///
/// Contract: `ptr` is null or came from `into_module_ptr::<T>` and has not been passed to
/// [`drop_module_ptr`]; Envoy calls a filter's hooks on one thread, one at a time, so no
/// other reference to the object is live.
pub fn module_mut<'a, T>(ptr: *const c_void) -> Option<&'a mut T> {
    // SAFETY: see the contract above; null is refused.
    unsafe { (ptr as *mut T).as_mut() }
}

/// Shared access to a config object (read on many worker threads; it is never mutated after
/// `config_new` returns, and Envoy destroys it only after every filter made from it).
pub fn module_ref<'a, T>(ptr: *const c_void) -> Option<&'a T> {
    // SAFETY: as `module_mut`, for an object only ever read.
    unsafe { (ptr as *const T).as_ref() }
}

/// Takes back and drops an object at its destroy hook.
pub fn drop_module_ptr<T>(ptr: *const c_void) {
    if !ptr.is_null() {
        // SAFETY: `ptr` came from `into_module_ptr::<T>`, and Envoy calls the destroy hook
        // once, after the last hook that uses it.
        drop(unsafe { Box::from_raw(ptr as *mut T) });
    }
}
