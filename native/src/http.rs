//! The HTTP filter's event hooks (`DynamicModuleFilter`). Envoy 1.40 requires every hook it
//! knows to be exported; the ones the filter does not use continue at once.

use crate::abi::{self, EnvoyBuffer, EnvoyPtr, FilterKind};
use crate::host::{DefiningHost, StreamClock};
use crate::worker::{with_root, Config};
use meshstats_filter::host::Host;
use meshstats_filter::plugin::{Root, Stream};
use std::cell::RefCell;
use std::ffi::c_void;

/// One stream: its configuration (outlives it: Envoy destroys a config after its filters)
/// and what the stream learned.
struct Filter {
    config: *const c_void,
    stream: Stream,
    /// When the request began, for `request.time` and `request.duration` (Envoy 1.40 returns
    /// neither as an attribute).
    clock: StreamClock,
}

const CONTINUE: u32 = 0;

/// Compiles the configuration once on the main thread against a defining host (metrics can
/// only be defined now). Never null: a null would make Envoy reject the configuration, and a
/// bad configuration must not stop traffic (`Root::configure` logs it, counts it in
/// `meshstats_config_errors_total` and serves with the defaults of `{}`).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    config_envoy: EnvoyPtr,
    name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    let name = String::from_utf8_lossy(&abi::hook_buffer(name)).into_owned();
    let text = String::from_utf8_lossy(&abi::hook_buffer(config)).into_owned();
    let defining = DefiningHost {
        config: config_envoy,
        filter_name: &name,
        defined: RefCell::default(),
    };
    let _ = Root::configure(&defining, &text);
    // The filter defines the rejection counter at the first rejection, on a worker; Envoy
    // lets metrics be defined only here, so define it now (it shows 0 until a rejection).
    let _ = defining.define_metric(
        meshstats_filter::config::MetricKind::Counter,
        meshstats_filter::metrics::PEER_REJECTED_METRIC,
    );
    let defined = defining.defined.into_inner();
    abi::into_module_ptr(Box::new(Config::new(FilterKind::Http, name, text, defined)))
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(config: *const c_void) {
    abi::drop_module_ptr::<Config>(config);
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: *const c_void,
    _filter_envoy: EnvoyPtr,
) -> *const c_void {
    abi::into_module_ptr(Box::new(Filter {
        config,
        stream: Stream::default(),
        // A stream's filter is made when its request begins: the closest the module gets
        // to Envoy's own start time.
        clock: StreamClock::now(),
    }))
}

fn on_stream(
    filter_envoy: EnvoyPtr,
    filter: *const c_void,
    f: impl FnOnce(&mut Root, &crate::host::StreamHost, &mut Stream),
) {
    let Some(filter) = abi::module_mut::<Filter>(filter) else {
        return;
    };
    let Some(config) = abi::module_ref::<Config>(filter.config) else {
        return;
    };
    let clock = filter.clock;
    let stream = &mut filter.stream;
    with_root(config, filter_envoy, Some(clock), |root, host| {
        f(root, host, stream)
    });
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    filter_envoy: EnvoyPtr,
    filter: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    on_stream(filter_envoy, filter, |root, host, stream| {
        root.on_request_headers(host, stream)
    });
    CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    filter_envoy: EnvoyPtr,
    filter: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    on_stream(filter_envoy, filter, |root, host, stream| {
        root.on_response_headers(host, stream)
    });
    CONTINUE
}

/// Once per stream, whatever happened to it, before access logs are flushed: the report
/// (and the log entries the access logger then prints) happen here.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    filter_envoy: EnvoyPtr,
    filter: *const c_void,
) {
    on_stream(filter_envoy, filter, |root, host, stream| {
        root.on_log(host, stream)
    });
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(filter: *const c_void) {
    abi::drop_module_ptr::<Filter>(filter);
}

// Hooks the filter does not use: bodies and trailers pass through.

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    _e: EnvoyPtr,
    _f: *const c_void,
    _eos: bool,
) -> u32 {
    CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    _e: EnvoyPtr,
    _f: *const c_void,
) -> u32 {
    CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    _e: EnvoyPtr,
    _f: *const c_void,
    _eos: bool,
) -> u32 {
    CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _e: EnvoyPtr,
    _f: *const c_void,
) -> u32 {
    CONTINUE
}

/// A local reply (e.g. no route) continues; the stream still completes and is reported.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_local_reply(
    _e: EnvoyPtr,
    _f: *const c_void,
    _code: u32,
    _details: EnvoyBuffer,
    _reset_imminent: bool,
) -> u32 {
    CONTINUE
}

/// No per-route configuration: a null means none (Envoy rejects a per-route config then,
/// and meshstats has no per-route settings to accept).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_new(
    _name: EnvoyBuffer,
    _config: EnvoyBuffer,
) -> *const c_void {
    std::ptr::null()
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_destroy(
    _config: *const c_void,
) {
}

// Never triggered: the module schedules nothing, makes no callouts and opens no streams.

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    _e: EnvoyPtr,
    _f: *const c_void,
    _event: u64,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
    _e: EnvoyPtr,
    _c: *const c_void,
    _event: u64,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done() {}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers() {}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data() {}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers() {}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete() {}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset() {}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_callout_done() {}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_headers() {}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_data() {}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_trailers() {}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_complete() {}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_reset() {}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _e: EnvoyPtr,
    _f: *const c_void,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _e: EnvoyPtr,
    _f: *const c_void,
) {
}
