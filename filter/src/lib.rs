//! meshstats: Istio-grade request telemetry, the filter's logic.
//!
//! This crate knows no ABI: it is plain Rust written against [`host::Host`] and tests on the
//! host with `cargo test`. The adapter crates on top (`meshstats-wasm`) export the callbacks
//! a proxy calls and implement `Host` over its host functions.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod access_log;
pub mod attributes;
pub mod config;
pub mod expr;
pub mod host;
pub mod identity;
pub mod labels;
pub mod metrics;
pub mod peer;
pub mod plugin;
pub mod stat_name;

pub use plugin::compile;

/// The version reported as `istio_build{tag}` when the node has no `ISTIO_VERSION`.
pub const VERSION: &str = concat!("meshstats-", env!("CARGO_PKG_VERSION"));
