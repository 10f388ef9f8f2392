//! `render wasmplugin`, `envoyfilter`, `telemetry`, `mesh-config`, `proxy-config` and
//! `bootstrap-override`: the Istio manifests that deploy the filter.

use super::args::{BuildArgs, ChecksumArgs, ConfigArgs, FormatArgs, ResourceArgs, ScopeArgs};
use crate::input::{read_config, InputError};
use crate::output::Output;
use crate::render::access_log::has_filter_state_logs;
use crate::render::istio::{
    bootstrap_override, buckets, default_remote_cluster, envoy_filter, mesh_config,
    native_bootstrap_override, native_proxy_config_patch, plugin_config_object, proxy_config_patch,
    telemetry, wasm_plugins, Buckets, EnvoyFilterOptions, ModuleVolume, TelemetryOptions, WasmCode,
    WasmPluginOptions,
};
use crate::render::native::Build;
use clap::Args;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// `render wasmplugin`.
#[derive(Debug, Clone, Args)]
#[command(
    mut_arg("config", |a| a.help("Filter configuration (becomes `pluginConfig`); defaults to `{}`")),
    mut_arg("sha256", |a| a.help("The checksum Istio verifies: the image's manifest digest for `oci://`, the module's sha256 otherwise")),
    mut_arg("wasm", |a| a.help("Compute `sha256` from this .wasm file (for `oci://`: the digest of the image `meshstats package` builds from it)")),
    mut_arg("name", |a| a.help("The HTTP plugin's name; the TCP one is NAME-tcp")),
)]
pub struct WasmPluginArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Where Istio fetches the module: `oci://REGISTRY/REPO:TAG` (an image made by
    /// `meshstats package`), `https://…/meshstats.wasm` or `file:///path/on/the/proxy`.
    #[arg(long, value_name = "URL", value_parser = super::args::parse_url)]
    pub url: String,
    #[command(flatten)]
    pub checksum: ChecksumArgs,
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[command(flatten)]
    pub resource: ResourceArgs,
    /// Only the HTTP plugin (no `type: NETWORK` plugin for TCP traffic).
    #[arg(long)]
    pub no_tcp: bool,
    /// Secret with the registry's credentials, for a private `oci://` image.
    #[arg(long, value_name = "SECRET")]
    pub image_pull_secret: Option<String>,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// `render envoyfilter`.
#[derive(Debug, Clone, Args)]
#[command(
    mut_arg("config", |a| a.help("Filter configuration (the plugin's `configuration`, verbatim); defaults to `{}`")),
)]
pub struct EnvoyFilterArgs {
    #[command(flatten)]
    pub build: BuildArgs,
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The module's path on the proxy's filesystem (e.g. a volume mounted with
    /// `sidecar.istio.io/userVolume` / `userVolumeMount`); with `--build native`, the TCP
    /// filter's.
    #[arg(long, value_name = "PATH", conflicts_with = "url")]
    pub wasm_path: Option<String>,
    /// `--build native`: libmeshstats.so's path in the istio-proxy container (mounted as
    /// `render proxy-config --build native --module-path PATH` renders).
    #[arg(long, value_name = "PATH", conflicts_with = "url")]
    pub module_path: Option<String>,
    /// Have Envoy fetch the module over http(s) (needs `--sha256` or `--wasm`).
    #[arg(long, value_name = "URL", value_parser = super::args::parse_url)]
    pub url: Option<String>,
    #[command(flatten)]
    pub checksum: ChecksumArgs,
    /// The Envoy cluster `--url` is fetched over; defaults to Istio's `outbound|PORT||HOST`
    /// (the host needs a ServiceEntry).
    #[arg(long, value_name = "NAME", requires = "url")]
    pub remote_cluster: Option<String>,
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[command(flatten)]
    pub resource: ResourceArgs,
    /// Only the HTTP filter (no network filter before `tcp_proxy`).
    #[arg(long)]
    pub no_tcp: bool,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// `render telemetry`.
#[derive(Debug, Clone, Args)]
pub struct TelemetryArgs {
    /// Filter configuration; it must have `logs` delivered through filter state.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The access log provider's name (as in `render mesh-config`).
    #[arg(long, default_value = "meshstats-json")]
    pub provider: String,
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[command(flatten)]
    pub resource: ResourceArgs,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// `render mesh-config`.
#[derive(Debug, Clone, Args)]
pub struct MeshConfigArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The access log provider's name (as in `render telemetry`).
    #[arg(long, default_value = "meshstats-json")]
    pub provider: String,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// `render proxy-config`.
#[derive(Debug, Clone, Args)]
pub struct ProxyConfigArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// `native`: the annotations that mount libmeshstats.so and keep its series (no tags).
    #[command(flatten)]
    pub build: BuildArgs,
    /// `--build native`: libmeshstats.so's path in the istio-proxy container; its directory
    /// is where the volume is mounted.
    #[arg(long, value_name = "PATH")]
    pub module_path: Option<String>,
    /// `--build native`: mount this OCI image's files (a Kubernetes `image` volume) instead
    /// of the node's directory of --module-path (`hostPath`).
    #[arg(long, value_name = "REFERENCE", requires = "module_path")]
    pub module_image: Option<String>,
    /// The ConfigMap of `render bootstrap-override`, named when the buckets need it.
    #[arg(long, value_name = "NAME", default_value = "meshstats-bootstrap")]
    pub bootstrap_config_map: String,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// `render bootstrap-override`.
#[derive(Debug, Clone, Args)]
pub struct BootstrapOverrideArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// `native`: bucket matchers for the native build's stat names.
    #[command(flatten)]
    pub build: BuildArgs,
    #[arg(long, default_value = "meshstats-bootstrap")]
    pub name: String,
    /// The workload's namespace (a pod can only mount a ConfigMap of its own).
    #[arg(long, default_value = "default")]
    pub namespace: String,
    #[command(flatten)]
    pub format: FormatArgs,
}

pub fn render_wasmplugin(args: &WasmPluginArgs) -> Result<Output, InputError> {
    let (text, _) = args.config.load()?;
    let config_path = args.config.config.clone().unwrap_or_default();
    let plugin_config =
        plugin_config_object(&text).map_err(|e| InputError::new(&config_path, e))?;
    let opts = WasmPluginOptions {
        name: args.resource.name.clone(),
        namespace: args.resource.namespace.clone(),
        url: args.url.clone(),
        sha256: args.checksum.resolve(&args.url)?,
        scope: args.scope.scope(),
        plugin_config,
        tcp: !args.no_tcp,
        image_pull_secret: args.image_pull_secret.clone(),
    };
    Ok(Output::stdout(args.format.print(&[], &wasm_plugins(&opts))))
}

pub fn render_envoyfilter(args: &EnvoyFilterArgs) -> Result<Output, InputError> {
    let (config_json, _) = args.config.load()?;
    let (code, native_module) = match (args.build.build, &args.wasm_path, &args.module_path) {
        // TCP is the Wasm network filter under either build: Envoy 1.40's network
        // dynamic-module ABI has no labelled metrics (docs/native.md).
        (Build::Native, wasm, Some(path)) => {
            let code = match (wasm, &args.url) {
                    (Some(wasm), _) => WasmCode::Local(wasm.clone()),
                    (None, Some(url)) => remote_code(args, url)?,
                    (None, None) if args.no_tcp => WasmCode::Local(String::new()),
                    (None, None) => return Err(InputError::new(
                        Path::new("--wasm-path"),
                        "required with --build native unless --no-tcp (or --url): TCP metrics come from the Wasm network filter, as Envoy 1.40's network dynamic-module ABI has no labelled metrics",
                    )),
                };
            (code, Some(path.clone()))
        }
        (Build::Native, _, None) => {
            return Err(InputError::new(
                Path::new("--module-path"),
                "required with --build native: libmeshstats.so's path in the istio-proxy container",
            ))
        }
        (Build::Wasm, _, Some(_)) => {
            return Err(InputError::new(
                Path::new("--module-path"),
                "is the native build's: add --build native, or give --wasm-path / --url",
            ))
        }
        (Build::Wasm, Some(path), None) => (WasmCode::Local(path.clone()), None),
        (Build::Wasm, None, None) => match &args.url {
            Some(url) => (remote_code(args, url)?, None),
            None => {
                return Err(InputError::new(
                    Path::new("--wasm-path"),
                    "required (or --url, or --build native --module-path)",
                ))
            }
        },
    };
    let native = native_module.is_some();
    let opts = EnvoyFilterOptions {
        name: args.resource.name.clone(),
        namespace: args.resource.namespace.clone(),
        scope: args.scope.scope(),
        code,
        native_module,
        config_json,
        tcp: !args.no_tcp,
    };
    let mut out = Output::stdout(args.format.print(&[], &[envoy_filter(&opts)]));
    if native {
        out.stderr = "meshstats: the pods need the module mounted and its series kept: meshstats render proxy-config --build native --module-path PATH\n".to_string();
    }
    Ok(out)
}

/// `--url`, its checksum and the cluster Envoy fetches it over.
fn remote_code(args: &EnvoyFilterArgs, url: &str) -> Result<WasmCode, InputError> {
    let flag = Path::new("--url");
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(InputError::new(flag, "an EnvoyFilter can only have Envoy fetch http(s):// urls; use render wasmplugin for oci:// and file://, or --wasm-path"));
    }
    let Some(sha256) = args.checksum.resolve(url)? else {
        return Err(InputError::new(
            flag,
            "Envoy fetches a remote module only with its checksum: add --sha256 or --wasm",
        ));
    };
    let cluster = match &args.remote_cluster {
        Some(c) => c.clone(),
        None => default_remote_cluster(url)
            .ok_or_else(|| InputError::new(flag, "no host in the url: add --remote-cluster"))?,
    };
    Ok(WasmCode::Remote {
        uri: url.to_string(),
        cluster,
        sha256,
    })
}

pub fn render_telemetry(args: &TelemetryArgs) -> Result<Output, InputError> {
    let (_, config) = read_config(&args.config)?;
    if !has_filter_state_logs(&config) {
        return Err(InputError::new(
            &args.config,
            "has no `logs` delivered through filter state (`log_delivery: filter_state`), so there is nothing for an access logger to print",
        ));
    }
    let opts = TelemetryOptions {
        name: args.resource.name.clone(),
        namespace: args.resource.namespace.clone(),
        scope: args.scope.scope(),
        provider: args.provider.clone(),
    };
    Ok(Output::stdout(args.format.print(&[], &[telemetry(&opts)])))
}

pub fn render_mesh_config(args: &MeshConfigArgs) -> Result<Output, InputError> {
    let (_, config) = args.config.load()?;
    let comment = [
        "Mesh config for meshstats: merge into the istiod chart's values (`meshConfig:`) or an",
        "IstioOperator's spec.meshConfig. defaultConfig applies to proxies started after the",
        "change; histogram buckets cannot be set here (see `meshstats render proxy-config`).",
    ];
    let docs = [mesh_config(&config, &args.provider)];
    Ok(Output::stdout(args.format.print(&comment, &docs)))
}

pub fn render_proxy_config(args: &ProxyConfigArgs) -> Result<Output, InputError> {
    let (_, config) = args.config.load()?;
    let comment = [
        "Pod annotations for meshstats' labels and buckets, as a patch of the pod template:",
        "kubectl patch deployment NAME --patch-file THIS_FILE (pods restart with them).",
    ];
    let native_comment = [
        "Pod annotations for meshstats' native build (mount libmeshstats.so, keep its series,",
        "buckets), as a patch of the pod template: kubectl patch deployment NAME --patch-file",
        "THIS_FILE (pods restart with them). The istio-proxy image's Envoy must be the release",
        "the module was built for.",
    ];
    let (comment, docs) =
        match (args.build.build, &args.module_path) {
            (Build::Wasm, None) => (
                &comment[..],
                [proxy_config_patch(&config, &args.bootstrap_config_map)],
            ),
            (Build::Wasm, Some(_)) => {
                return Err(InputError::new(
                    Path::new("--module-path"),
                    "is the native build's: add --build native",
                ))
            }
            (Build::Native, None) => return Err(InputError::new(
                Path::new("--module-path"),
                "required with --build native: libmeshstats.so's path in the istio-proxy container",
            )),
            (Build::Native, Some(path)) => {
                let volume = match &args.module_image {
                    Some(image) => ModuleVolume::Image(image.clone()),
                    None => ModuleVolume::HostPath,
                };
                (
                    &native_comment[..],
                    [native_proxy_config_patch(
                        &config,
                        path,
                        &volume,
                        &args.bootstrap_config_map,
                    )],
                )
            }
        };
    let mut out = Output::stdout(args.format.print(comment, &docs));
    if buckets(&config) == Buckets::BootstrapOverride {
        // Infallible: writing to a String.
        let _ = writeln!(
            out.stderr,
            "meshstats: the configuration has several sets of histogram buckets, which the \
             statsHistogramBuckets annotation cannot tell apart; the pods need the ConfigMap \
             {:?} in their namespace: meshstats render bootstrap-override{} --name {:?} --namespace NAMESPACE",
            args.bootstrap_config_map,
            match args.build.build {
                Build::Wasm => "",
                Build::Native => " --build native",
            },
            args.bootstrap_config_map
        );
    }
    Ok(out)
}

pub fn render_bootstrap_override(args: &BootstrapOverrideArgs) -> Result<Output, InputError> {
    let (_, config) = args.config.load()?;
    let docs = [match args.build.build {
        Build::Wasm => bootstrap_override(&config, &args.name, &args.namespace),
        Build::Native => native_bootstrap_override(&config, &args.name, &args.namespace),
    }];
    Ok(Output::stdout(args.format.print(&[], &docs)))
}
