//! Envoy configuration derived from a filter configuration.

pub mod access_log;
pub mod envoy;
pub mod istio;
pub mod istio_cli;
pub mod package;
pub mod stats_config;
