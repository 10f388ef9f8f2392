//! `render stats-config`, `access-log` and `envoy`: plain Envoy configuration, for sidecars
//! that are not Istio's.

use super::args::{BuildArgs, ConfigArgs};
use crate::input::{read_config, read_json_object, InputError};
use crate::output::Output;
use crate::render::access_log::{access_log, access_loggers};
use crate::render::envoy::{
    default_node_id, envoy_bootstrap, Direction, Protocol, SidecarOptions, TlsFiles,
};
use crate::render::istio::{http_wasm_filter, network_wasm_filter, WasmCode};
use crate::render::native::{
    native_http_filter, native_network_filter, native_stats_config, node_environment, Build,
    SEARCH_PATH_ENV,
};
use crate::render::stats_config::{stats_config, stats_config_for};
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
    /// `native`: only the histogram buckets (the native build's labels need no `stats_tags`).
    #[command(flatten)]
    pub build: BuildArgs,
}

/// `render http-filter` and `render network-filter`: one filter entry, for a user's own
/// `http_filters` (before the router) or filter chain (before `tcp_proxy`).
#[derive(Debug, Clone, Args)]
#[command(
    mut_arg("config", |a| a.help("Filter configuration, passed to the filter verbatim; defaults to `{}`")),
)]
pub struct FilterArgs {
    #[command(flatten)]
    pub build: BuildArgs,
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The module file (made absolute): meshstats.wasm for `--build wasm` (required),
    /// libmeshstats.so for `--build native` (without it Envoy looks for libmeshstats.so in
    /// $ENVOY_DYNAMIC_MODULES_SEARCH_PATH).
    #[arg(long, value_name = "PATH")]
    pub module: Option<PathBuf>,
    /// The side the filter reports for: root id / filter_name `stats_inbound` or
    /// `stats_outbound`. Without it (or --root-id) the listener's traffic_direction decides.
    #[arg(long, value_enum, conflicts_with = "root_id")]
    pub direction: Option<Direction>,
    /// The root id (Wasm) / filter_name (native) as is.
    #[arg(long, value_name = "ID")]
    pub root_id: Option<String>,
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
    #[command(flatten)]
    pub build: BuildArgs,
    /// The filter's .wasm file (made absolute, so Envoy can run from any directory); with
    /// `--build native`, the TCP filter's (`--protocol tcp`).
    #[arg(long, value_name = "PATH", conflicts_with = "no_filter")]
    pub wasm: Option<PathBuf>,
    /// The filter's module file, made absolute: libmeshstats.so for `--build native`
    /// (meshstats.wasm for `--build wasm`, like --wasm).
    #[arg(long, value_name = "PATH", conflicts_with = "no_filter")]
    pub module: Option<PathBuf>,
    /// The plugin's root id (default empty; the native build's filter_name); Istio uses
    /// stats_inbound / stats_outbound.
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
    Ok(Output::json(&match args.build.build {
        Build::Wasm => stats_config(&config),
        Build::Native => native_stats_config(&config),
    }))
}

pub fn render_http_filter(args: &FilterArgs) -> Result<Output, InputError> {
    render_filter(args, Protocol::Http)
}

pub fn render_network_filter(args: &FilterArgs) -> Result<Output, InputError> {
    render_filter(args, Protocol::Tcp)
}

fn render_filter(args: &FilterArgs, protocol: Protocol) -> Result<Output, InputError> {
    let (config_json, _) = args.config.load()?;
    let root_id = match (&args.root_id, args.direction) {
        (Some(id), _) => id.clone(),
        (None, Some(direction)) => format!("stats_{direction}"),
        (None, None) => String::new(),
    };
    let module = args.module.as_deref().map(absolute);
    let (filter, note) = match (args.build.build, module) {
        (Build::Wasm, None) => {
            return Err(InputError::new(
                Path::new("--module"),
                "required with --build wasm: the meshstats.wasm file Envoy loads",
            ))
        }
        (Build::Wasm, Some(path)) => {
            let code = WasmCode::Local(path.to_string_lossy().into_owned());
            let filter = match protocol {
                Protocol::Http => http_wasm_filter(&root_id, &code, &config_json),
                Protocol::Tcp => network_wasm_filter(&root_id, &code, &config_json),
            };
            (filter, None)
        }
        (Build::Native, module) => {
            let note = module.is_none().then(|| {
                format!(
                    "meshstats: no --module: start Envoy with {SEARCH_PATH_ENV}=DIR, DIR holding libmeshstats.so\n"
                )
            });
            let (filter, note) = match protocol {
                Protocol::Http => (
                    native_http_filter(&root_id, module.as_deref(), &config_json),
                    note,
                ),
                Protocol::Tcp => (
                    native_network_filter(&root_id, module.as_deref(), &config_json),
                    Some(format!(
                        "{}meshstats: Envoy 1.40's network dynamic-module ABI has no labelled metrics: this filter records no istio_tcp_* series; render the TCP filter with --build wasm (docs/native.md)\n",
                        note.unwrap_or_default()
                    )),
                ),
            };
            (filter, note)
        }
    };
    let mut out = Output::json(&filter);
    if let Some(note) = note {
        out.stderr = note;
    }
    Ok(out)
}

pub fn render_access_log(args: &AccessLogArgs) -> Result<Output, InputError> {
    let (_, config) = read_config(&args.config)?;
    Ok(Output::json(&access_log(&config)))
}

pub fn render_envoy(args: &EnvoyArgs) -> Result<Output, InputError> {
    let opts = sidecar_options(args)?;
    let bootstrap = envoy_bootstrap(&opts);
    let mut out = Output::json(&bootstrap);
    if opts.native_module.is_some() {
        // Shell words, so the line can be pasted before `envoy -c FILE`.
        let env: Vec<String> = node_environment(&bootstrap)
            .into_iter()
            .map(|(k, v)| format!("{k}='{}'", v.replace('\'', "'\\''")))
            .collect();
        out.stderr = format!(
            "meshstats: the native module reads the node from its environment (Envoy 1.40's ABI cannot read node.metadata): start Envoy as {} envoy -c FILE\n",
            env.join(" ")
        );
    }
    Ok(out)
}

/// Loads the files `render envoy` names and fills in the defaults.
pub fn sidecar_options(args: &EnvoyArgs) -> Result<SidecarOptions, InputError> {
    let (config_json, config) = read_config(&args.config)?;
    let node_metadata = read_json_object(&args.node_metadata)?;
    // What the filter's AUTO encoding will pick on this node.
    let encoding = config
        .stat_name_encoding
        .resolve(node_metadata.get("ISTIO_VERSION").is_some());
    let optional = |p: &Option<PathBuf>| p.as_deref().map(read_json_object).transpose();
    // TCP is the Wasm network filter under either build: Envoy 1.40's network dynamic-module
    // ABI has no labelled metrics (docs/native.md).
    if let (Build::Native, Protocol::Tcp, false, None) =
        (args.build.build, args.protocol, args.no_filter, &args.wasm)
    {
        return Err(InputError::new(
            Path::new("--wasm"),
            "required with --build native --protocol tcp: TCP metrics come from the Wasm network filter (Envoy 1.40's network dynamic-module ABI has no labelled metrics)",
        ));
    }
    let build = match args.protocol {
        Protocol::Tcp => Build::Wasm,
        Protocol::Http => args.build.build,
    };
    let native_module = match (build, args.no_filter, &args.wasm, &args.module) {
        (Build::Native, false, Some(_), _) => {
            return Err(InputError::new(
                Path::new("--wasm"),
                "names the Wasm build's module, which --build native uses for --protocol tcp only; for HTTP give --module PATH (libmeshstats.so)",
            ))
        }
        (Build::Native, false, None, Some(path)) => Some(absolute(path)),
        (Build::Native, false, None, None) => {
            return Err(InputError::new(
                Path::new("--module"),
                "required with --build native (the libmeshstats.so file), or --no-filter",
            ))
        }
        (Build::Wasm, false, None, None) => {
            return Err(InputError::new(
                Path::new("--wasm"),
                "required (the meshstats.wasm file), or --module, or --no-filter",
            ))
        }
        _ => None,
    };
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
        wasm_path: match (args.no_filter, build) {
            (false, Build::Wasm) => args
                .wasm
                .as_deref()
                .or(args.module.as_deref())
                .map(absolute),
            _ => None,
        },
        native_module,
        config_json,
        root_id: args.root_id.clone(),
        cluster_name: None,
        cluster_metadata: optional(&args.cluster_metadata)?,
        endpoint_metadata: optional(&args.endpoint_metadata)?,
        with_filter: !args.no_filter,
        access_log: access_loggers(&config),
        debug_access_log: args.access_log,
        stats_config: match build {
            Build::Wasm => stats_config_for(&config, encoding),
            Build::Native => native_stats_config(&config),
        },
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
