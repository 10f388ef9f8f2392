//! Test support for every crate that checks its output against a real Envoy. Dev-only: the
//! CLI's tests use it as a dev-dependency, `meshstats-integration` as a dependency (the CLI's
//! tests cannot use `meshstats-integration`, which depends on the CLI).
//!
//! - [`workspace_root`], [`artifact`]: the repository root and the build outputs in it.
//! - [`envoy_bin`]: the Envoy under test; [`native_module`]: the native build.
//! - [`envoy_validate`], [`envoy_validate_json`]: `envoy --mode validate` on a configuration.
//! - [`stand_in_filter`]: the smallest module Envoy accepts as a proxy-wasm filter.
//! - [`shared_dir`]: the project's shared test material (Istio CRDs and dashboards, Mixer
//!   configurations); [`MIXER_HTTP_LABELS`], [`MIXER_TCP_LABELS`]: what Istio 1.0's Mixer exported.

mod artifacts;
mod envoy;
mod shared;
mod stand_in;

pub use artifacts::{artifact, native_module, workspace_root};
pub use envoy::{envoy_bin, envoy_validate, envoy_validate_json};
pub use shared::{shared_dir, MIXER_HTTP_LABELS, MIXER_TCP_LABELS};
pub use stand_in::stand_in_filter;
