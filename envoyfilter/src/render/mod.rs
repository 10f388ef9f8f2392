//! Envoy configuration derived from a filter configuration.

pub mod access_log;
pub mod envoy;
pub mod stats_config;
