//! The command line, kept in the library so tests drive exactly what users run. Each
//! submodule holds one command family's arguments and handlers; handlers load files, call
//! the pure renderers of `crate::render` / `crate::mixer` and return an [`Output`].

mod args;
mod envoy;
mod istio;
mod mixer;
mod package;
mod validate;

pub use args::{BuildArgs, ChecksumArgs, ConfigArgs, Format, FormatArgs, ResourceArgs, ScopeArgs};
pub use envoy::{sidecar_options, AccessLogArgs, EnvoyArgs, FilterArgs, StatsConfigArgs};
pub use istio::{
    BootstrapOverrideArgs, EnvoyFilterArgs, MeshConfigArgs, ProxyConfigArgs, TelemetryArgs,
    WasmPluginArgs,
};
pub use mixer::ImportArgs;
pub use package::PackageArgs;
pub use validate::ValidateArgs;

use crate::input::InputError;
use crate::output::Output;
use clap::{Parser, Subcommand};

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
    Validate(ValidateArgs),
    /// Print Envoy configuration (JSON) or Istio manifests (YAML) on stdout.
    #[command(subcommand)]
    Render(Render),
    /// Write the filter as a Wasm OCI image (an OCI image layout tarball, `oci-archive:`).
    Package(PackageArgs),
    /// Istio Mixer configuration.
    #[command(subcommand)]
    Mixer(Mixer),
}

#[derive(Debug, Subcommand)]
pub enum Mixer {
    /// Translate Mixer metric/logentry/prometheus/stdio/rule (and instance/handler) YAML into
    /// one meshstats configuration on stdout; what cannot be carried over is listed on stderr.
    Import(ImportArgs),
}

#[derive(Debug, Subcommand)]
pub enum Render {
    /// The bootstrap `stats_config` that turns meshstats' labels into Prometheus labels
    /// (`--build native`: only the histogram buckets).
    StatsConfig(StatsConfigArgs),
    /// The HTTP filter entry (Wasm or native), for your own `http_filters` before the router.
    HttpFilter(Box<FilterArgs>),
    /// The network filter entry (Wasm or native) for TCP metrics, before `tcp_proxy`.
    NetworkFilter(Box<FilterArgs>),
    /// The connection manager `access_log` list that prints the filter's JSON log entries
    /// (`logs[]`) on stdout, one line each; `[]` when there are none to print this way.
    AccessLog(AccessLogArgs),
    /// A complete standalone sidecar bootstrap: one listener, one upstream cluster.
    Envoy(Box<EnvoyArgs>),
    /// Istio `WasmPlugin`s (HTTP and TCP) that load the filter from an image or url (YAML).
    Wasmplugin(Box<WasmPluginArgs>),
    /// An Istio `EnvoyFilter` inserting the filter in sidecars and gateways (YAML).
    Envoyfilter(Box<EnvoyFilterArgs>),
    /// An Istio `Telemetry` resource printing the filter's access log entries (YAML).
    Telemetry(Box<TelemetryArgs>),
    /// Istio `meshConfig` values: the access log provider and every proxy's stats settings (YAML).
    MeshConfig(MeshConfigArgs),
    /// Pod annotations carrying the filter's labels and buckets into Istio's bootstrap (YAML).
    ProxyConfig(ProxyConfigArgs),
    /// The ConfigMap `proxy-config` names when buckets differ per metric (YAML).
    BootstrapOverride(BootstrapOverrideArgs),
}

/// Runs one command. `Err` is an unusable input file; `validate` instead reports each
/// file and fails at the end, so one bad file does not hide the others.
pub fn run(cli: &Cli) -> Result<Output, InputError> {
    match &cli.command {
        Command::Validate(args) => Ok(validate::validate(args)),
        Command::Render(Render::StatsConfig(args)) => envoy::render_stats_config(args),
        Command::Render(Render::HttpFilter(args)) => envoy::render_http_filter(args),
        Command::Render(Render::NetworkFilter(args)) => envoy::render_network_filter(args),
        Command::Render(Render::AccessLog(args)) => envoy::render_access_log(args),
        Command::Render(Render::Envoy(args)) => envoy::render_envoy(args),
        Command::Render(Render::Wasmplugin(args)) => istio::render_wasmplugin(args),
        Command::Render(Render::Envoyfilter(args)) => istio::render_envoyfilter(args),
        Command::Render(Render::Telemetry(args)) => istio::render_telemetry(args),
        Command::Render(Render::MeshConfig(args)) => istio::render_mesh_config(args),
        Command::Render(Render::ProxyConfig(args)) => istio::render_proxy_config(args),
        Command::Render(Render::BootstrapOverride(args)) => istio::render_bootstrap_override(args),
        Command::Package(args) => package::package(args),
        Command::Mixer(Mixer::Import(args)) => mixer::mixer_import(args),
    }
}
