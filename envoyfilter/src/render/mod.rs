//! Envoy configuration derived from a filter configuration.

pub mod envoy;
pub mod stats_config;
