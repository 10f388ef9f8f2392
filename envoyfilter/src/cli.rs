//! The command line, kept in the library so tests drive exactly what users run.

use crate::input::{read_config, read_json_object, InputError};
use crate::render::access_log::{access_log, access_loggers};
use crate::render::envoy::{
    default_node_id, envoy_bootstrap, Direction, Protocol, SidecarOptions, TlsFiles,
};
use crate::render::istio_cli;
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
    /// Print Envoy configuration (JSON) or Istio manifests (YAML) on stdout.
    #[command(subcommand)]
    Render(Render),
    /// Write the filter as a Wasm OCI image (an OCI image layout tarball, `oci-archive:`).
    Package(crate::render::istio_cli::PackageArgs),
    /// Istio Mixer configuration.
    #[command(subcommand)]
    Mixer(Mixer),
}

#[derive(Debug, Subcommand)]
pub enum Mixer {
    /// Translate Mixer metric/logentry/prometheus/stdio/rule (and instance/handler) YAML into
    /// one meshstats configuration on stdout; what cannot be carried over is listed on stderr.
    Import {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
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
    /// Istio `WasmPlugin`s (HTTP and TCP) that load the filter from an image or url (YAML).
    Wasmplugin(Box<crate::render::istio_cli::WasmPluginArgs>),
    /// An Istio `EnvoyFilter` inserting the filter in sidecars and gateways (YAML).
    Envoyfilter(Box<crate::render::istio_cli::EnvoyFilterArgs>),
    /// An Istio `Telemetry` resource printing the filter's access log entries (YAML).
    Telemetry(Box<crate::render::istio_cli::TelemetryArgs>),
    /// Istio `meshConfig` values: the access log provider and every proxy's stats settings (YAML).
    MeshConfig(crate::render::istio_cli::MeshConfigArgs),
    /// Pod annotations carrying the filter's labels and buckets into Istio's bootstrap (YAML).
    ProxyConfig(crate::render::istio_cli::ProxyConfigArgs),
    /// The ConfigMap `proxy-config` names when buckets differ per metric (YAML).
    BootstrapOverride(crate::render::istio_cli::BootstrapOverrideArgs),
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
        Command::Render(Render::Wasmplugin(args)) => istio_cli::render_wasmplugin(args),
        Command::Render(Render::Envoyfilter(args)) => istio_cli::render_envoyfilter(args),
        Command::Render(Render::Telemetry(args)) => istio_cli::render_telemetry(args),
        Command::Render(Render::MeshConfig(args)) => istio_cli::render_mesh_config(args),
        Command::Render(Render::ProxyConfig(args)) => istio_cli::render_proxy_config(args),
        Command::Render(Render::BootstrapOverride(args)) => {
            istio_cli::render_bootstrap_override(args)
        }
        Command::Package(args) => istio_cli::package(args),
        Command::Mixer(Mixer::Import { files }) => crate::mixer::run(files),
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
