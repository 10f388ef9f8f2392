//! `meshstats` command-line tool as a library: checks filter configurations and renders the
//! Envoy configuration that runs the filter, so tests and the binary share one implementation.
//!
//! `cli` (arguments and handlers) is the only module that reads files or builds an [`Output`];
//! `render` and `mixer` are pure: typed inputs in, JSON values out.

pub mod cli;
pub mod input;
pub mod mixer;
pub mod output;
pub mod render;

pub use input::InputError;
pub use render::access_log::access_log;
pub use render::envoy::{
    default_cluster_name, default_node_id, envoy_bootstrap, Direction, SidecarOptions,
};
pub use render::native::{native_stats_config, Build};
pub use render::stats_config::{stats_config, stats_config_for};
