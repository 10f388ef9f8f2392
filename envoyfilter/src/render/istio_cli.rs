//! The command-line side of the Istio targets and `meshstats package`: arguments, file
//! loading and output (`crate::cli` only dispatches here).

use crate::cli::Output;
use crate::input::{read_config, InputError};
use crate::render::istio::{
    self, bootstrap_override, default_remote_cluster, envoy_filter, has_filter_state_logs,
    mesh_config, parse_label, plugin_config_object, proxy_config_patch, telemetry, wasm_plugins,
    Buckets, EnvoyFilterOptions, Format, Scope, TargetRef, TelemetryOptions, WasmCode,
    WasmPluginOptions,
};
use crate::render::package;
use clap::Args;
use meshstats_filter::config::PluginConfig;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Which workloads: `--selector` or `--target-ref`, not both (none: the whole namespace).
#[derive(Debug, Clone, Args)]
pub struct ScopeArgs {
    /// Workload label `key=value` the resource applies to (repeatable; all must match).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_label, conflicts_with = "target_ref")]
    pub selector: Vec<(String, String)>,
    /// `Kind/name` or `group/Kind/name` (`Gateway/NAME`, `Service/NAME`) the resource
    /// applies to (repeatable).
    #[arg(long, value_name = "KIND/NAME", value_parser = TargetRef::parse)]
    pub target_ref: Vec<TargetRef>,
}

impl ScopeArgs {
    fn scope(&self) -> Scope {
        Scope {
            selector: self.selector.clone(),
            target_refs: self.target_ref.clone(),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    #[arg(long, value_enum, default_value_t = Format::Yaml)]
    pub format: Format,
}

fn parse_sha256(text: &str) -> Result<String, String> {
    let hex = text.strip_prefix("sha256:").unwrap_or(text);
    if hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(hex.to_string())
    } else {
        Err(format!("expected 64 lower-case hex digits, got {text:?}"))
    }
}

fn parse_url(text: &str) -> Result<String, String> {
    match text.split_once("://") {
        Some(("oci" | "file" | "http" | "https", rest)) if !rest.is_empty() => Ok(text.to_string()),
        _ => Err(format!(
            "expected an oci://, file://, http:// or https:// url, got {text:?}"
        )),
    }
}

/// `render wasmplugin`.
#[derive(Debug, Clone, Args)]
pub struct WasmPluginArgs {
    /// Filter configuration (becomes `pluginConfig`); defaults to `{}`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where Istio fetches the module: `oci://REGISTRY/REPO:TAG` (an image made by
    /// `meshstats package`), `https://…/meshstats.wasm` or `file:///path/on/the/proxy`.
    #[arg(long, value_name = "URL", value_parser = parse_url)]
    pub url: String,
    /// The checksum Istio verifies: the image's manifest digest for `oci://`, the module's
    /// sha256 otherwise.
    #[arg(long, value_name = "HEX", value_parser = parse_sha256, conflicts_with = "wasm")]
    pub sha256: Option<String>,
    /// Compute `sha256` from this .wasm file (for `oci://`: the digest of the image `meshstats
    /// package` builds from it).
    #[arg(long, value_name = "FILE")]
    pub wasm: Option<PathBuf>,
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[arg(long, default_value = "istio-system")]
    pub namespace: String,
    /// The HTTP plugin's name; the TCP one is NAME-tcp.
    #[arg(long, default_value = "meshstats")]
    pub name: String,
    /// Only the HTTP plugin (no `type: NETWORK` plugin for TCP traffic).
    #[arg(long)]
    pub no_tcp: bool,
    /// Secret with the registry's credentials, for a private `oci://` image.
    #[arg(long, value_name = "SECRET")]
    pub image_pull_secret: Option<String>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `render envoyfilter`.
#[derive(Debug, Clone, Args)]
pub struct EnvoyFilterArgs {
    /// Filter configuration (the plugin's `configuration`, verbatim); defaults to `{}`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The module's path on the proxy's filesystem (e.g. a volume mounted with
    /// `sidecar.istio.io/userVolume` / `userVolumeMount`).
    #[arg(
        long,
        value_name = "PATH",
        required_unless_present = "url",
        conflicts_with = "url"
    )]
    pub wasm_path: Option<String>,
    /// Have Envoy fetch the module over http(s) (needs `--sha256` or `--wasm`).
    #[arg(long, value_name = "URL", value_parser = parse_url)]
    pub url: Option<String>,
    /// The module's sha256, for `--url`.
    #[arg(long, value_name = "HEX", value_parser = parse_sha256, conflicts_with = "wasm")]
    pub sha256: Option<String>,
    /// Compute `--sha256` from this .wasm file.
    #[arg(long, value_name = "FILE")]
    pub wasm: Option<PathBuf>,
    /// The Envoy cluster `--url` is fetched over; defaults to Istio's `outbound|PORT||HOST`
    /// (the host needs a ServiceEntry).
    #[arg(long, value_name = "NAME", requires = "url")]
    pub remote_cluster: Option<String>,
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[arg(long, default_value = "istio-system")]
    pub namespace: String,
    #[arg(long, default_value = "meshstats")]
    pub name: String,
    /// Only the HTTP filter (no network filter before `tcp_proxy`).
    #[arg(long)]
    pub no_tcp: bool,
    #[command(flatten)]
    pub output: OutputArgs,
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
    #[arg(long, default_value = "istio-system")]
    pub namespace: String,
    #[arg(long, default_value = "meshstats")]
    pub name: String,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `render mesh-config`.
#[derive(Debug, Clone, Args)]
pub struct MeshConfigArgs {
    /// Filter configuration; defaults to `{}`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The access log provider's name (as in `render telemetry`).
    #[arg(long, default_value = "meshstats-json")]
    pub provider: String,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `render proxy-config`.
#[derive(Debug, Clone, Args)]
pub struct ProxyConfigArgs {
    /// Filter configuration; defaults to `{}`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The ConfigMap of `render bootstrap-override`, named when the buckets need it.
    #[arg(long, value_name = "NAME", default_value = "meshstats-bootstrap")]
    pub bootstrap_config_map: String,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `render bootstrap-override`.
#[derive(Debug, Clone, Args)]
pub struct BootstrapOverrideArgs {
    /// Filter configuration; defaults to `{}`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[arg(long, default_value = "meshstats-bootstrap")]
    pub name: String,
    /// The workload's namespace (a pod can only mount a ConfigMap of its own).
    #[arg(long, default_value = "default")]
    pub namespace: String,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `meshstats package`.
#[derive(Debug, Clone, Args)]
pub struct PackageArgs {
    /// The filter module.
    #[arg(long, value_name = "FILE", default_value = "dist/meshstats.wasm")]
    pub wasm: PathBuf,
    /// The OCI image layout tarball to write (`oci-archive:FILE`).
    #[arg(
        long,
        value_name = "FILE.tar",
        default_value = "dist/meshstats-oci.tar"
    )]
    pub output: PathBuf,
    /// The image's name in the layout (`oci-archive:FILE:TAG`).
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    pub tag: String,
}

fn error(path: &Path, reason: impl Into<String>) -> InputError {
    InputError {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The configuration's text and parse; `{}` without a file.
fn load(config: &Option<PathBuf>) -> Result<(String, PluginConfig), InputError> {
    match config {
        Some(path) => read_config(path),
        None => Ok(("{}".to_string(), PluginConfig::default())),
    }
}

fn read_wasm(path: &Path) -> Result<Vec<u8>, InputError> {
    let bytes = std::fs::read(path).map_err(|e| error(path, format!("cannot read: {e}")))?;
    if !package::is_wasm(&bytes) {
        return Err(error(path, "not a WebAssembly module (no \\0asm header)"));
    }
    Ok(bytes)
}

/// The checksum of `wasm` as `url` needs it: an image's manifest digest for `oci://`.
fn checksum(url: &str, wasm: &Path) -> Result<String, InputError> {
    let bytes = read_wasm(wasm)?;
    if url.starts_with("oci://") {
        let image = package::image(&bytes, "").map_err(|e| error(wasm, e.to_string()))?;
        Ok(image
            .manifest
            .digest
            .trim_start_matches("sha256:")
            .to_string())
    } else {
        Ok(package::sha256_hex(&bytes))
    }
}

fn documents(format: Format, comment: &[&str], docs: &[Value]) -> Output {
    Output {
        stdout: match format {
            Format::Yaml => istio::to_yaml(comment, docs),
            Format::Json => istio::to_json(docs),
        },
        stderr: String::new(),
        success: true,
    }
}

pub fn render_wasmplugin(args: &WasmPluginArgs) -> Result<Output, InputError> {
    let (text, _) = load(&args.config)?;
    let config_path = args.config.clone().unwrap_or_default();
    let plugin_config = plugin_config_object(&text).map_err(|e| error(&config_path, e))?;
    let sha256 = match (&args.sha256, &args.wasm) {
        (Some(sha), _) => Some(sha.clone()),
        (None, Some(wasm)) => Some(checksum(&args.url, wasm)?),
        (None, None) => None,
    };
    let opts = WasmPluginOptions {
        name: args.name.clone(),
        namespace: args.namespace.clone(),
        url: args.url.clone(),
        sha256,
        scope: args.scope.scope(),
        plugin_config,
        tcp: !args.no_tcp,
        image_pull_secret: args.image_pull_secret.clone(),
    };
    Ok(documents(args.output.format, &[], &wasm_plugins(&opts)))
}

pub fn render_envoyfilter(args: &EnvoyFilterArgs) -> Result<Output, InputError> {
    let (config_json, _) = load(&args.config)?;
    let code = match (&args.wasm_path, &args.url) {
        (Some(path), _) => WasmCode::Local(path.clone()),
        (None, Some(url)) => {
            let flag = Path::new("--url");
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(error(flag, "an EnvoyFilter can only have Envoy fetch http(s):// urls; use render wasmplugin for oci:// and file://, or --wasm-path"));
            }
            let sha256 = match (&args.sha256, &args.wasm) {
                (Some(sha), _) => sha.clone(),
                (None, Some(wasm)) => checksum(url, wasm)?,
                (None, None) => return Err(error(
                    flag,
                    "Envoy fetches a remote module only with its checksum: add --sha256 or --wasm",
                )),
            };
            let cluster = match &args.remote_cluster {
                Some(c) => c.clone(),
                None => default_remote_cluster(url)
                    .ok_or_else(|| error(flag, "no host in the url: add --remote-cluster"))?,
            };
            WasmCode::Remote {
                uri: url.clone(),
                cluster,
                sha256,
            }
        }
        // clap requires one of the two.
        (None, None) => return Err(error(Path::new("--wasm-path"), "required")),
    };
    let opts = EnvoyFilterOptions {
        name: args.name.clone(),
        namespace: args.namespace.clone(),
        scope: args.scope.scope(),
        code,
        config_json,
        tcp: !args.no_tcp,
    };
    Ok(documents(args.output.format, &[], &[envoy_filter(&opts)]))
}

pub fn render_telemetry(args: &TelemetryArgs) -> Result<Output, InputError> {
    let (_, config) = read_config(&args.config)?;
    if !has_filter_state_logs(&config) {
        return Err(error(
            &args.config,
            "has no `logs` delivered through filter state (`log_delivery: filter_state`), so there is nothing for an access logger to print",
        ));
    }
    let opts = TelemetryOptions {
        name: args.name.clone(),
        namespace: args.namespace.clone(),
        scope: args.scope.scope(),
        provider: args.provider.clone(),
    };
    Ok(documents(args.output.format, &[], &[telemetry(&opts)]))
}

pub fn render_mesh_config(args: &MeshConfigArgs) -> Result<Output, InputError> {
    let (_, config) = load(&args.config)?;
    let comment = [
        "Mesh config for meshstats: merge into the istiod chart's values (`meshConfig:`) or an",
        "IstioOperator's spec.meshConfig. defaultConfig applies to proxies started after the",
        "change; histogram buckets cannot be set here (see `meshstats render proxy-config`).",
    ];
    Ok(documents(
        args.output.format,
        &comment,
        &[mesh_config(&config, &args.provider)],
    ))
}

pub fn render_proxy_config(args: &ProxyConfigArgs) -> Result<Output, InputError> {
    let (_, config) = load(&args.config)?;
    let comment = [
        "Pod annotations for meshstats' labels and buckets, as a patch of the pod template:",
        "kubectl patch deployment NAME --patch-file THIS_FILE (pods restart with them).",
    ];
    let mut out = documents(
        args.output.format,
        &comment,
        &[proxy_config_patch(&config, &args.bootstrap_config_map)],
    );
    if istio::buckets(&config) == Buckets::BootstrapOverride {
        // Infallible: writing to a String.
        let _ = writeln!(
            out.stderr,
            "meshstats: the configuration has several sets of histogram buckets, which the \
             statsHistogramBuckets annotation cannot tell apart; the pods need the ConfigMap \
             {:?} in their namespace: meshstats render bootstrap-override --name {:?} --namespace NAMESPACE",
            args.bootstrap_config_map, args.bootstrap_config_map
        );
    }
    Ok(out)
}

pub fn render_bootstrap_override(args: &BootstrapOverrideArgs) -> Result<Output, InputError> {
    let (_, config) = load(&args.config)?;
    Ok(documents(
        args.output.format,
        &[],
        &[bootstrap_override(&config, &args.name, &args.namespace)],
    ))
}

pub fn package(args: &PackageArgs) -> Result<Output, InputError> {
    let wasm = read_wasm(&args.wasm)?;
    let image = package::image(&wasm, &args.tag).map_err(|e| error(&args.output, e.to_string()))?;
    let archive = image
        .archive()
        .map_err(|e| error(&args.output, e.to_string()))?;
    if let Some(dir) = args.output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| error(dir, format!("cannot create: {e}")))?;
    }
    std::fs::write(&args.output, &archive)
        .map_err(|e| error(&args.output, format!("cannot write: {e}")))?;
    let out = &args.output.display();
    let mut stdout = String::new();
    let _ = writeln!(
        stdout,
        "{out}: OCI image layout, Wasm image (compat variant), tag {}",
        image.tag
    );
    let _ = writeln!(
        stdout,
        "manifest    {} ({} bytes): `sha256` of a WasmPlugin pulling this image",
        image.manifest.digest,
        image.manifest.bytes.len()
    );
    let _ = writeln!(
        stdout,
        "layer       {} ({} bytes): {}",
        image.layer.digest,
        image.layer.bytes.len(),
        package::PLUGIN_FILE
    );
    let _ = writeln!(
        stdout,
        "plugin.wasm sha256:{} ({} bytes): `sha256` for http(s):// and file:// urls",
        image.wasm_sha256, image.wasm_size
    );
    let _ = writeln!(stdout, "push:       skopeo copy --preserve-digests oci-archive:{out}:{} docker://REGISTRY/REPOSITORY:{}", image.tag, image.tag);
    Ok(Output {
        stdout,
        stderr: String::new(),
        success: true,
    })
}
