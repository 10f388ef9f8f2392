//! Rendered bootstraps must be accepted by a real Envoy (`envoy --mode validate`), with the
//! filter stood in for by [`stand_in_filter`].

mod common;

use common::{cluster_metadata, endpoint_metadata, example, options, scratch_dir};
use meshstats_cli::render::access_log::access_loggers;
use meshstats_cli::{envoy_bootstrap, Direction, SidecarOptions};
use meshstats_filter::config::PluginConfig;
use meshstats_testkit::{envoy_validate_json, stand_in_filter};
use std::path::Path;

/// Envoy's verdict on `opts`: Ok, or Err with its output.
fn validate(dir: &Path, name: &str, opts: &SidecarOptions) -> Result<(), String> {
    envoy_validate_json(dir, name, &envoy_bootstrap(opts))
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
            envoy_validate_json(&dir, &format!("tcp-{direction}"), &bootstrap),
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
            envoy_validate_json(&dir, &format!("grpc-{direction}"), &bootstrap),
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
    let err = envoy_validate_json(&dir, "typo", &bootstrap).unwrap_err();
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
    let err = envoy_validate_json(&dir, "cel", &bootstrap).unwrap_err();
    assert!(err.contains("Not able to parse filter expression"), "{err}");
}
