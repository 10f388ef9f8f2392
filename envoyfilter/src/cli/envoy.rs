//! `render stats-config`, `access-log` and `envoy`: plain Envoy configuration, for sidecars
//! that are not Istio's.

use super::args::ConfigArgs;
use crate::input::{read_config, read_json_object, InputError};
use crate::output::Output;
use crate::render::access_log::{access_log, access_loggers};
use crate::render::envoy::{
    default_node_id, envoy_bootstrap, Direction, Protocol, SidecarOptions, TlsFiles,
};
use crate::render::stats_config::stats_config;
use clap::builder::PossibleValue;
use clap::{Args, ValueEnum};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// `render stats-config`.
#[derive(Debug, Clone, Args)]
#[command(
    mut_arg("config", |a| a.help("Filter configuration (its custom dimensions add tags); defaults to `{}`")),
)]
pub struct StatsConfigArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// `render access-log`.
#[derive(Debug, Clone, Args)]
pub struct AccessLogArgs {
    /// Filter configuration.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

/// `render envoy`.
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
    /// `tcp`: a `tcp_proxy` listener with the network Wasm filter (Istio's TCP metrics).
    #[arg(long, value_enum, default_value = "http")]
    pub protocol: Protocol,
    /// gRPC message metrics: adds Envoy's `grpc_stats` filter (emit_filter_state) before
    /// the Wasm filter and makes the upstream cluster HTTP/2. HTTP listeners only.
    #[arg(long)]
    pub grpc: bool,
    /// The listener's TLS certificate (PEM); with --tls-key and --tls-ca the listener
    /// requires client certificates signed by that CA (mTLS).
    #[arg(long, value_name = "FILE", requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<PathBuf>,
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_ca: Option<PathBuf>,
    /// The client certificate (PEM) the upstream cluster presents; with
    /// --upstream-tls-key and --upstream-tls-ca (which must have signed the server's).
    #[arg(long, value_name = "FILE", requires_all = ["upstream_tls_key", "upstream_tls_ca"])]
    pub upstream_tls_cert: Option<PathBuf>,
    #[arg(long, value_name = "FILE", requires = "upstream_tls_cert")]
    pub upstream_tls_key: Option<PathBuf>,
    #[arg(long, value_name = "FILE", requires = "upstream_tls_cert")]
    pub upstream_tls_ca: Option<PathBuf>,
}

// The renderer's enums stay free of clap; their command-line spelling is Istio's word.
impl ValueEnum for Direction {
    fn value_variants<'a>() -> &'a [Self] {
        &[Direction::Inbound, Direction::Outbound]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.as_str()))
    }
}

impl ValueEnum for Protocol {
    fn value_variants<'a>() -> &'a [Self] {
        &[Protocol::Http, Protocol::Tcp]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(match self {
            Protocol::Http => "http",
            Protocol::Tcp => "tcp",
        }))
    }
}

pub fn render_stats_config(args: &StatsConfigArgs) -> Result<Output, InputError> {
    let (_, config) = args.config.load()?;
    Ok(Output::json(&stats_config(&config)))
}

pub fn render_access_log(args: &AccessLogArgs) -> Result<Output, InputError> {
    let (_, config) = read_config(&args.config)?;
    Ok(Output::json(&access_log(&config)))
}

pub fn render_envoy(args: &EnvoyArgs) -> Result<Output, InputError> {
    Ok(Output::json(&envoy_bootstrap(&sidecar_options(args)?)))
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
        protocol: args.protocol,
        downstream_tls: tls_files(&args.tls_cert, &args.tls_key, &args.tls_ca),
        upstream_tls: tls_files(
            &args.upstream_tls_cert,
            &args.upstream_tls_key,
            &args.upstream_tls_ca,
        ),
        grpc: args.grpc,
    })
}

/// All three files (clap makes them come together), made absolute like the .wasm.
fn tls_files(
    cert: &Option<PathBuf>,
    key: &Option<PathBuf>,
    ca: &Option<PathBuf>,
) -> Option<TlsFiles> {
    match (cert, key, ca) {
        (Some(cert), Some(key), Some(ca)) => Some(TlsFiles {
            cert: absolute(cert),
            key: absolute(key),
            ca: absolute(ca),
        }),
        _ => None,
    }
}

// Envoy resolves a relative filename against its own working directory, not ours.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
