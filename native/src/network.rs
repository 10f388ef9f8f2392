//! The network filter's event hooks (`DynamicModuleNetworkFilter`, TCP).
//!
//! Envoy 1.40's network-filter ABI defines metrics without labels, and only at config time
//! (`network_filter_config_define_counter(config, name, &id)`, checked in the binary), so
//! the `istio_tcp_*` series, one per label tuple, cannot be written from here: the filter
//! runs (byte counts, the final report and its access-log entries) but records no TCP
//! metric. The native build's TCP metrics therefore come from the Wasm network filter
//! (`dist/meshstats.wasm` as `envoy.filters.network.wasm`: a per-connection cost); this
//! filter stays, compiled and loadable, for an Envoy whose network ABI has labelled metrics
//! (docs/native.md).

use crate::abi::{self, EnvoyBuffer, EnvoyPtr, FilterKind};
use crate::host::Defined;
use crate::worker::{with_root, Config};
use meshstats_filter::plugin::Stream;
use std::ffi::c_void;

struct Filter {
    config: *const c_void,
    stream: Stream,
    reported: bool,
}

const CONTINUE: u32 = 0;
/// `envoy_dynamic_module_type_network_connection_event`: `RemoteClose`, `LocalClose`.
const REMOTE_CLOSE: u32 = 0;
const LOCAL_CLOSE: u32 = 1;

/// Never null, for the reason the HTTP config never is.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_network_filter_config_new(
    _config_envoy: EnvoyPtr,
    name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    let name = String::from_utf8_lossy(&abi::hook_buffer(name)).into_owned();
    let text = String::from_utf8_lossy(&abi::hook_buffer(config)).into_owned();
    abi::into_module_ptr(Box::new(Config::new(
        FilterKind::Network,
        name,
        text,
        Defined::new(),
    )))
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_network_filter_config_destroy(config: *const c_void) {
    abi::drop_module_ptr::<Config>(config);
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_network_filter_new(
    config: *const c_void,
    _e: EnvoyPtr,
) -> *const c_void {
    abi::into_module_ptr(Box::new(Filter {
        config,
        stream: Stream::default(),
        reported: false,
    }))
}

fn on_conn(
    filter_envoy: EnvoyPtr,
    filter: *const c_void,
    f: impl FnOnce(&mut meshstats_filter::plugin::Root, &crate::host::StreamHost, &mut Filter),
) {
    let Some(filter) = abi::module_mut::<Filter>(filter) else {
        return;
    };
    let Some(config) = abi::module_ref::<Config>(filter.config) else {
        return;
    };
    with_root(config, filter_envoy, None, |root, host| {
        f(root, host, filter)
    });
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_network_filter_new_connection(
    e: EnvoyPtr,
    filter: *const c_void,
) -> u32 {
    on_conn(e, filter, |root, _, f| {
        root.on_new_connection(&mut f.stream)
    });
    CONTINUE
}

/// Per data chunk: counted only, no callback into Envoy.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_network_filter_read(
    e: EnvoyPtr,
    filter: *const c_void,
    len: usize,
    _eos: bool,
) -> u32 {
    on_conn(e, filter, |root, _, f| {
        root.on_downstream_data(&mut f.stream, len)
    });
    CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_network_filter_write(
    e: EnvoyPtr,
    filter: *const c_void,
    len: usize,
    _eos: bool,
) -> u32 {
    on_conn(e, filter, |root, _, f| {
        root.on_upstream_data(&mut f.stream, len)
    });
    CONTINUE
}

/// The connection's end: its last report, once.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_network_filter_event(
    e: EnvoyPtr,
    filter: *const c_void,
    event: u32,
) {
    if event != REMOTE_CLOSE && event != LOCAL_CLOSE {
        return;
    }
    on_conn(e, filter, |root, host, f| {
        if !f.reported && f.stream.is_tcp() {
            f.reported = true;
            root.report_tcp(host, &mut f.stream, true);
        }
    });
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_network_filter_destroy(filter: *const c_void) {
    abi::drop_module_ptr::<Filter>(filter);
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_network_filter_config_scheduled(
    _e: EnvoyPtr,
    _c: *const c_void,
    _event: u64,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_network_filter_scheduled(
    _e: EnvoyPtr,
    _f: *const c_void,
    _event: u64,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_network_filter_http_callout_done() {}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_network_filter_above_write_buffer_high_watermark(
    _e: EnvoyPtr,
    _f: *const c_void,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_network_filter_below_write_buffer_low_watermark(
    _e: EnvoyPtr,
    _f: *const c_void,
) {
}
