//! The command line, kept in the library so tests drive exactly what users run.

use crate::input::{read_config, read_json_object, InputError};
use crate::render::access_log::{access_log, access_loggers};
use crate::render::envoy::{default_node_id, envoy_bootstrap, Direction, SidecarOptions};
use crate::render::stats_config::stats_config;
use clap::{Args, Parser, Subcommand};
use meshstats_filter::config::PluginConfig;
use serde_json::Value;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Checks meshstats filter configurations and renders the Envoy configuration that runs them.
#[derive(Debug, Parser)]
#[command(name = "meshstats", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check filter configuration files exactly as the filter will parse them.
    Validate {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Print Envoy configuration (JSON) on stdout.
    #[command(subcommand)]
    Render(Render),
}

#[derive(Debug, Subcommand)]
pub enum Render {
    /// The bootstrap `stats_config` that turns meshstats' labels into Prometheus labels.
    StatsConfig {
        /// Filter configuration (its custom dimensions add tags); defaults to `{}`.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// The connection manager `access_log` list that prints the filter's JSON log entries
    /// (`logs[]`) on stdout, one line each; `[]` when there are none to print this way.
    AccessLog {
        /// Filter configuration.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// A complete standalone sidecar bootstrap: one listener, one upstream cluster.
    Envoy(Box<EnvoyArgs>),
}

#[derive(Debug, Args)]
pub struct EnvoyArgs {
    /// Filter configuration, passed to the filter verbatim.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Sets the listener's traffic_direction, which decides the filter's reporter.
    #[arg(long, value_enum)]
    pub direction: Direction,
    /// Address of the sidecar's listener.
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: SocketAddr,
    /// The one endpoint of the upstream cluster.
    #[arg(long, value_name = "HOST:PORT")]
    pub upstream: SocketAddr,
    /// Envoy's admin interface (where /stats/prometheus is read).
    #[arg(long, value_name = "HOST:PORT")]
    pub admin: SocketAddr,
    /// JSON object for `node.metadata` (Istio's NAME, NAMESPACE, WORKLOAD_NAME, LABELS, ...).
    #[arg(long, value_name = "FILE")]
    pub node_metadata: PathBuf,
    /// Defaults to Istio's `sidecar~127.0.0.1~NAME.NAMESPACE~NAMESPACE.svc.cluster.local`.
    #[arg(long, value_name = "ID")]
    pub node_id: Option<String>,
    /// The filter's .wasm file (made absolute, so Envoy can run from any directory).
    #[arg(
        long,
        value_name = "PATH",
        required_unless_present = "no_filter",
        conflicts_with = "no_filter"
    )]
    pub wasm: Option<PathBuf>,
    /// The plugin's root id (default empty); Istio uses stats_inbound / stats_outbound.
    #[arg(long, value_name = "ID", default_value = "", hide_default_value = true)]
    pub root_id: String,
    /// JSON object for the cluster's `metadata.filter_metadata`.
    #[arg(long, value_name = "FILE")]
    pub cluster_metadata: Option<PathBuf>,
    /// JSON object for the endpoint's `metadata.filter_metadata`.
    #[arg(long, value_name = "FILE")]
    pub endpoint_metadata: Option<PathBuf>,
    /// Render a bare Envoy (same listener, cluster and stats_config) as a baseline.
    #[arg(long)]
    pub no_filter: bool,
    /// Also log every request in Envoy's default format, to stderr (stdout carries only the
    /// filter's JSON log entries).
    #[arg(long)]
    pub access_log: bool,
}

/// What a command printed and whether it succeeded; the binary only writes it out.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub success: bool,
}

/// Runs one command. `Err` is an unusable input file; `validate` instead reports each
/// file and fails at the end, so one bad file does not hide the others.
pub fn run(cli: &Cli) -> Result<Output, InputError> {
    match &cli.command {
        Command::Validate { files } => Ok(validate(files)),
        Command::Render(Render::StatsConfig { config }) => {
            let config = match config {
                Some(path) => read_config(path)?.1,
                None => PluginConfig::default(),
            };
            Ok(json_output(&stats_config(&config)))
        }
        Command::Render(Render::AccessLog { config }) => {
            Ok(json_output(&access_log(&read_config(config)?.1)))
        }
        Command::Render(Render::Envoy(args)) => {
            Ok(json_output(&envoy_bootstrap(&sidecar_options(args)?)))
        }
    }
}

fn validate(files: &[PathBuf]) -> Output {
    let mut out = Output {
        success: true,
        ..Output::default()
    };
    for path in files {
        // Infallible: writing to a String.
        let _ = match read_config(path) {
            Ok(_) => writeln!(out.stdout, "{}: ok", path.display()),
            Err(e) => {
                out.success = false;
                writeln!(out.stderr, "{e}")
            }
        };
    }
    out
}

fn json_output(value: &Value) -> Output {
    let mut stdout = serde_json::to_string_pretty(value).unwrap_or_default();
    stdout.push('\n');
    Output {
        stdout,
        stderr: String::new(),
        success: true,
    }
}

/// Loads the files `render envoy` names and fills in the defaults.
pub fn sidecar_options(args: &EnvoyArgs) -> Result<SidecarOptions, InputError> {
    let (config_json, config) = read_config(&args.config)?;
    let node_metadata = read_json_object(&args.node_metadata)?;
    let optional = |p: &Option<PathBuf>| p.as_deref().map(read_json_object).transpose();
    Ok(SidecarOptions {
        direction: args.direction,
        listen: args.listen,
        upstream: args.upstream,
        admin: args.admin,
        node_id: args
            .node_id
            .clone()
            .unwrap_or_else(|| default_node_id(&node_metadata)),
        node_metadata,
        wasm_path: if args.no_filter {
            None
        } else {
            args.wasm.as_deref().map(absolute)
        },
        config_json,
        root_id: args.root_id.clone(),
        cluster_name: None,
        cluster_metadata: optional(&args.cluster_metadata)?,
        endpoint_metadata: optional(&args.endpoint_metadata)?,
        with_filter: !args.no_filter,
        access_log: access_loggers(&config),
        debug_access_log: args.access_log,
        stats_config: stats_config(&config),
    })
}

// Envoy resolves a relative filename against its own working directory, not ours.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
