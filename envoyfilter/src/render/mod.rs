//! Envoy configuration and Istio manifests derived from a filter configuration: pure
//! functions from typed options to JSON values (the command line is `crate::cli`).

pub mod access_log;
pub mod envoy;
pub mod istio;
pub mod native;
pub mod package;
pub mod stats_config;
