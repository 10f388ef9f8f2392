//! Rendered bootstraps must be accepted by a real Envoy (`envoy --mode validate`).
//!
//! Validate mode loads the Wasm module and starts the plugin, so a nonexistent or empty
//! file fails; the filter is stood in for by the smallest module Envoy accepts as
//! proxy-wasm (the real filter is exercised by the integration tests).

mod common;

use common::{cluster_metadata, endpoint_metadata, example, options, scratch_dir, write};
use meshstats_cli::render::access_log::access_loggers;
use meshstats_cli::{envoy_bootstrap, Direction, SidecarOptions};
use meshstats_filter::config::PluginConfig;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `ENVOY_BIN`, else the copy `make test` installs in the workspace's `.venv`. Missing Envoy
/// is a failure, not a skip: a check that silently passes would hide broken bootstraps.
fn envoy() -> PathBuf {
    if let Some(bin) = std::env::var_os("ENVOY_BIN") {
        let bin = PathBuf::from(bin);
        assert!(bin.is_file(), "ENVOY_BIN={} is not a file", bin.display());
        return bin;
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let venv = workspace.join(".venv/bin/envoy");
    assert!(
        venv.is_file(),
        "no Envoy to validate bootstraps with: run `make test` (installs {}) or set ENVOY_BIN=/path/to/envoy",
        venv.display()
    );
    venv
}

const STAND_IN_FILTER: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_delete") (param i32)))"#;

fn stand_in_filter(dir: &Path) -> PathBuf {
    let path = dir.join("stand-in.wasm");
    std::fs::write(&path, wat::parse_str(STAND_IN_FILTER).unwrap()).unwrap();
    path
}

/// Envoy's verdict on `opts`: Ok, or Err with its output.
fn validate(dir: &Path, name: &str, opts: &SidecarOptions) -> Result<(), String> {
    validate_json(dir, name, &envoy_bootstrap(opts))
}

fn validate_json(dir: &Path, name: &str, bootstrap: &Value) -> Result<(), String> {
    let bootstrap = serde_json::to_string_pretty(bootstrap).unwrap();
    let file = write(dir, &format!("{name}.json"), &bootstrap);
    let out = Command::new(envoy())
        .args(["--mode", "validate", "--log-level", "warn", "-c"])
        .arg(&file)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn full_options(dir: &Path, direction: Direction) -> SidecarOptions {
    let mut opts = options(direction);
    opts.wasm_path = Some(stand_in_filter(dir));
    opts.cluster_metadata = Some(cluster_metadata());
    opts.endpoint_metadata = Some(endpoint_metadata());
    // The access log `render envoy` adds for a configuration with `logs`, and the debugging
    // one after it.
    let config = std::fs::read_to_string(example("new-log.json")).unwrap();
    opts.access_log = access_loggers(&PluginConfig::parse(&config).unwrap());
    opts.config_json = config;
    opts.debug_access_log = true;
    opts
}

#[test]
fn filtered_sidecars_validate() {
    let dir = scratch_dir("validate-filtered");
    for direction in [Direction::Inbound, Direction::Outbound] {
        let result = validate(&dir, direction.as_str(), &full_options(&dir, direction));
        assert_eq!(result, Ok(()), "{direction} bootstrap rejected");
    }
}

#[test]
fn bare_sidecars_validate() {
    let dir = scratch_dir("validate-bare");
    for direction in [Direction::Inbound, Direction::Outbound] {
        let mut opts = options(direction);
        opts.with_filter = false;
        opts.wasm_path = None;
        assert_eq!(
            validate(&dir, direction.as_str(), &opts),
            Ok(()),
            "{direction} bootstrap rejected"
        );
    }
}

/// TCP sidecars (network Wasm filter before `tcp_proxy`) with mTLS on both ends: the
/// server's listener requires client certificates, the client's cluster presents one. The PEM
/// files in `tests/tls` (a CA and a `spiffe://cluster.local/ns/default/sa/ratings`
/// certificate) exist only for Envoy to load; the real mTLS runs make their own.
#[test]
fn tcp_mtls_sidecars_validate() {
    use meshstats_cli::render::envoy::{Protocol, TlsFiles};
    let dir = scratch_dir("validate-tcp-mtls");
    let tls_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tls");
    let tls = TlsFiles {
        cert: tls_dir.join("cert.pem"),
        key: tls_dir.join("key.pem"),
        ca: tls_dir.join("ca.pem"),
    };
    for direction in [Direction::Inbound, Direction::Outbound] {
        let mut opts = full_options(&dir, direction);
        opts.protocol = Protocol::Tcp;
        opts.downstream_tls = (direction == Direction::Inbound).then(|| tls.clone());
        opts.upstream_tls = (direction == Direction::Outbound).then(|| tls.clone());
        let bootstrap = envoy_bootstrap(&opts);
        let filters = &bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"];
        assert_eq!(filters[0]["name"], "envoy.filters.network.wasm");
        assert_eq!(filters[1]["name"], "envoy.filters.network.tcp_proxy");
        assert_eq!(
            validate_json(&dir, &format!("tcp-{direction}"), &bootstrap),
            Ok(()),
            "{direction} TCP bootstrap rejected"
        );
    }
}

/// gRPC sidecars (`--grpc`): `grpc_stats` with `emit_filter_state` before the Wasm filter,
/// an HTTP/2 upstream cluster.
#[test]
fn grpc_sidecars_validate() {
    let dir = scratch_dir("validate-grpc");
    for direction in [Direction::Inbound, Direction::Outbound] {
        let mut opts = full_options(&dir, direction);
        opts.grpc = true;
        let bootstrap = envoy_bootstrap(&opts);
        let hcm = &bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
            ["typed_config"];
        let names: Vec<&str> = hcm["http_filters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "envoy.filters.http.grpc_stats",
                "envoy.filters.http.wasm",
                "envoy.filters.http.router"
            ]
        );
        assert_eq!(
            hcm["http_filters"][0]["typed_config"]["emit_filter_state"],
            true
        );
        let options = &bootstrap["static_resources"]["clusters"][0]
            ["typed_extension_protocol_options"]
            ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
        assert!(
            options["explicit_http_config"]["http2_protocol_options"].is_object(),
            "{options}"
        );
        assert_eq!(
            validate_json(&dir, &format!("grpc-{direction}"), &bootstrap),
            Ok(()),
            "{direction} gRPC bootstrap rejected"
        );
    }
}

/// Guards the two tests above against passing vacuously (an Envoy that accepts anything).
#[test]
fn envoy_really_checks_the_filter() {
    let dir = scratch_dir("validate-negative");
    let mut opts = full_options(&dir, Direction::Inbound);
    opts.wasm_path = Some(dir.join("missing.wasm"));
    let err = validate(&dir, "missing", &opts).unwrap_err();
    assert!(err.contains("missing.wasm"), "{err}");

    let mut bootstrap = envoy_bootstrap(&full_options(&dir, Direction::Inbound));
    bootstrap["static_resources"]["clusters"][0]["conect_timeout"] = "1s".into();
    let err = validate_json(&dir, "typo", &bootstrap).unwrap_err();
    assert!(err.contains("conect_timeout"), "{err}");

    // The access log's CEL expression is compiled, so the one we render really is valid CEL.
    let mut bootstrap = envoy_bootstrap(&full_options(&dir, Direction::Inbound));
    let hcm = "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config";
    let expression = bootstrap
        .pointer_mut(&format!(
            "{hcm}/access_log/0/filter/extension_filter/typed_config/expression"
        ))
        .unwrap();
    *expression = "'wasm.meshstats_log' in filter_state &&".into();
    let err = validate_json(&dir, "cel", &bootstrap).unwrap_err();
    assert!(err.contains("Not able to parse filter expression"), "{err}");
}
