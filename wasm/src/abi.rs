//! The proxy-wasm host functions the filter calls, declared directly.
//!
//! Not through the proxy-wasm Rust SDK: its wrappers (`proxy_wasm::hostcalls`) panic on any
//! status they do not expect (`SerializationFailure` for a metadata value that is not a
//! string, for one), unwrap UTF-8 and index into host-provided buffers; a panic traps the VM
//! and fails the request. These bindings return the status instead, so the filter can treat
//! every failure as "absent" or "not done". Statuses are plain `u32`: an unknown value from a
//! newer host is just an error.
//!
//! This is the only `unsafe` in the project: calling imported functions, and taking
//! ownership of buffers the host allocated through our `proxy_on_memory_allocate` export in
//! `lib.rs` (a boxed slice of exactly `size` bytes, which `Vec::from_raw_parts(ptr, size,
//! size)` owns).
#![allow(unsafe_code)]

use std::ptr::null_mut;

/// A failed host call: the proxy-wasm status code.
pub type Status = u32;

const OK: Status = 0;
const NOT_FOUND: Status = 1;

// Numbering from the proxy-wasm ABI (0.2.1).
pub const MAP_REQUEST_HEADERS: u32 = 0;
pub const MAP_RESPONSE_HEADERS: u32 = 2;
pub const MAP_RESPONSE_TRAILERS: u32 = 3;
pub const BUFFER_DOWNSTREAM_DATA: u32 = 2;
pub const BUFFER_UPSTREAM_DATA: u32 = 3;
pub const BUFFER_PLUGIN_CONFIGURATION: u32 = 7;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> Status;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        value_data: *mut *mut u8,
        value_size: *mut usize,
    ) -> Status;
    fn proxy_set_property(
        path_data: *const u8,
        path_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> Status;
    fn proxy_get_header_map_pairs(map_type: u32, data: *mut *mut u8, size: *mut usize) -> Status;
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *mut *mut u8,
        value_size: *mut usize,
    ) -> Status;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> Status;
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize)
        -> Status;
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> Status;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> Status;
    fn proxy_record_metric(metric_id: u32, value: u64) -> Status;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> Status;
    fn proxy_set_buffer_bytes(
        buffer_type: u32,
        start: usize,
        size: usize,
        data: *const u8,
        data_size: usize,
    ) -> Status;
    fn proxy_set_tick_period_milliseconds(period: u32) -> Status;
    fn proxy_set_header_map_pairs(map_type: u32, data: *const u8, size: usize) -> Status;
    fn proxy_call_foreign_function(
        name_data: *const u8,
        name_size: usize,
        arguments_data: *const u8,
        arguments_size: usize,
        results_data: *mut *mut u8,
        results_size: *mut usize,
    ) -> Status;
    fn proxy_set_effective_context(context_id: u32) -> Status;
}

fn status(s: Status) -> Result<(), Status> {
    if s == OK {
        Ok(())
    } else {
        Err(s)
    }
}

/// Takes ownership of a host-allocated buffer (`Ok(None)` for NotFound or no buffer).
fn owned(s: Status, data: *mut u8, size: usize) -> Result<Option<Vec<u8>>, Status> {
    match s {
        OK if data.is_null() => Ok(None),
        // SAFETY: the host returned `data` from our allocator for exactly `size` bytes and
        // hands ownership to us; nothing else refers to it.
        OK => Ok(Some(unsafe { Vec::from_raw_parts(data, size, size) })),
        NOT_FOUND => Ok(None),
        other => Err(other),
    }
}

/// proxy-wasm's property path encoding: segments joined by NUL.
fn path_bytes(path: &[&str]) -> Vec<u8> {
    path.join("\0").into_bytes()
}

pub fn log(level: u32, message: &str) -> Result<(), Status> {
    // SAFETY: pointer and length of a live string.
    status(unsafe { proxy_log(level, message.as_ptr(), message.len()) })
}

pub fn get_property(path: &[&str]) -> Result<Option<Vec<u8>>, Status> {
    let p = path_bytes(path);
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: live input buffer; out-pointers to locals.
    let s = unsafe { proxy_get_property(p.as_ptr(), p.len(), &mut data, &mut size) };
    owned(s, data, size)
}

pub fn set_property(path: &[&str], value: &[u8]) -> Result<(), Status> {
    let p = path_bytes(path);
    // SAFETY: live input buffers.
    status(unsafe { proxy_set_property(p.as_ptr(), p.len(), value.as_ptr(), value.len()) })
}

/// The serialized pairs of a header map (decode with `host::decode::pairs`).
pub fn get_header_map_pairs(map_type: u32) -> Result<Option<Vec<u8>>, Status> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: out-pointers to locals.
    let s = unsafe { proxy_get_header_map_pairs(map_type, &mut data, &mut size) };
    owned(s, data, size)
}

pub fn get_header_map_value(map_type: u32, key: &str) -> Result<Option<Vec<u8>>, Status> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: live input buffer; out-pointers to locals.
    let s = unsafe {
        proxy_get_header_map_value(map_type, key.as_ptr(), key.len(), &mut data, &mut size)
    };
    // A present but empty value comes back as no buffer: keep it distinct from absent.
    match owned(s, data, size)? {
        None if s == OK => Ok(Some(Vec::new())),
        v => Ok(v),
    }
}

pub fn replace_header_map_value(map_type: u32, key: &str, value: &str) -> Result<(), Status> {
    // SAFETY: live input buffers.
    status(unsafe {
        proxy_replace_header_map_value(
            map_type,
            key.as_ptr(),
            key.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

/// Replaces the whole map with `pairs` (serialized proxy-wasm pairs), in one call.
pub fn set_header_map_pairs(map_type: u32, pairs: &[u8]) -> Result<(), Status> {
    // SAFETY: live input buffer.
    status(unsafe { proxy_set_header_map_pairs(map_type, pairs.as_ptr(), pairs.len()) })
}

/// Calls the host's foreign function `name` (Envoy: `expr_create`, `expr_evaluate`, …).
pub fn call_foreign_function(name: &str, arguments: &[u8]) -> Result<Option<Vec<u8>>, Status> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: live input buffers; out-pointers to locals.
    let s = unsafe {
        proxy_call_foreign_function(
            name.as_ptr(),
            name.len(),
            arguments.as_ptr(),
            arguments.len(),
            &mut data,
            &mut size,
        )
    };
    owned(s, data, size)
}

pub fn remove_header_map_value(map_type: u32, key: &str) -> Result<(), Status> {
    // SAFETY: live input buffer.
    status(unsafe { proxy_remove_header_map_value(map_type, key.as_ptr(), key.len()) })
}

pub fn define_metric(metric_type: u32, name: &str) -> Result<u32, Status> {
    let mut id = 0u32;
    // SAFETY: live input buffer; out-pointer to a local.
    status(unsafe { proxy_define_metric(metric_type, name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

pub fn increment_metric(id: u32, offset: i64) -> Result<(), Status> {
    // SAFETY: plain values.
    status(unsafe { proxy_increment_metric(id, offset) })
}

pub fn record_metric(id: u32, value: u64) -> Result<(), Status> {
    // SAFETY: plain values.
    status(unsafe { proxy_record_metric(id, value) })
}

pub fn get_buffer(buffer_type: u32) -> Result<Option<Vec<u8>>, Status> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: out-pointers to locals.
    let s = unsafe { proxy_get_buffer_bytes(buffer_type, 0, usize::MAX, &mut data, &mut size) };
    owned(s, data, size)
}

/// The first `len` bytes of a buffer (TCP data: what the current callback holds).
pub fn get_buffer_start(buffer_type: u32, len: usize) -> Result<Option<Vec<u8>>, Status> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: out-pointers to locals.
    let s = unsafe { proxy_get_buffer_bytes(buffer_type, 0, len, &mut data, &mut size) };
    owned(s, data, size)
}

/// Envoy's rule for network data (`Buffer::copyFrom`): at start 0, drains `drain` bytes and
/// prepends `data`.
pub fn replace_buffer_start(buffer_type: u32, drain: usize, data: &[u8]) -> Result<(), Status> {
    // SAFETY: live input buffer.
    status(unsafe { proxy_set_buffer_bytes(buffer_type, 0, drain, data.as_ptr(), data.len()) })
}

pub fn set_tick_period(ms: u32) -> Result<(), Status> {
    // SAFETY: plain value.
    status(unsafe { proxy_set_tick_period_milliseconds(ms) })
}

/// Makes later host calls act on stream `context_id` (from a root callback such as a tick).
pub fn set_effective_context(context_id: u32) -> Result<(), Status> {
    // SAFETY: plain value.
    status(unsafe { proxy_set_effective_context(context_id) })
}
