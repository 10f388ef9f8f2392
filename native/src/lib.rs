//! meshstats as an Envoy dynamic module (`libmeshstats.so`, Envoy 1.40): the adapter between
//! Envoy's dynamic-module ABI and the filter's logic (`meshstats-filter`, which knows no
//! ABI). `abi` holds the hand-written bindings (the only `unsafe`), `host` implements
//! [`meshstats_filter::host::Host`] over them, `http` and `network` export the event hooks.
//!
//! Threads: a filter configuration is created on Envoy's main thread (`*_config_new`), where
//! the configuration is compiled once against a defining host, the only time Envoy lets
//! metrics be defined; streams run on worker threads, each of which keeps its own
//! [`meshstats_filter::plugin::Root`] per configuration (a thread-local map, configured on the
//! worker's first stream), so the per-request path takes no lock.
//!
//! A panic cannot cross into Envoy: the release profile aborts on panic, and clippy denies
//! every panicking shortcut in this crate; an abort would take the Envoy process down, which
//! is why the code has no panicking path.
#![allow(unsafe_code)] // `#[no_mangle]` exports; the only `unsafe` blocks are in `abi`.

mod abi;
mod host;
mod http;
mod network;
mod node;
mod worker;

/// Envoy calls this once at load; a null return would unload the module.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const u8 {
    // Read the environment once, on the main thread, before any worker needs it.
    let _ = node::get();
    abi::ABI_VERSION.as_ptr()
}
