//! The `meshstats` binary as users run it: output streams, exit codes, error wording.

mod common;

use common::{example, meshstats, s, scratch_dir, write};
use meshstats_cli::cli::{sidecar_options, EnvoyArgs};
use meshstats_cli::{access_log, envoy_bootstrap, stats_config, Direction};
use meshstats_filter::config::PluginConfig;
use serde_json::Value;

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn validate_reports_every_file_and_fails_at_the_end() {
    let dir = scratch_dir("validate");
    let good = example("default.json");
    let bad_text = r#"{"metrics": [{"nmae": "requests_total"}]}"#;
    let bad = write(&dir, "bad.json", bad_text);
    let missing = dir.join("missing.json");
    let out = meshstats(&["validate", s(&bad), s(&good), s(&missing)]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout.lines().next(),
        Some(format!("{}: ok", good.display()).as_str()),
        "{stdout}"
    );
    // Then the metrics it emits, one indented line each.
    assert_eq!(stdout.lines().count(), 1 + 10, "{stdout}");
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    let config_error = PluginConfig::parse(bad_text).unwrap_err().to_string();
    assert_eq!(lines[0], format!("{}: {config_error}", bad.display()));
    assert!(
        lines[1].starts_with(&format!("{}: cannot read: ", missing.display())),
        "{stderr}"
    );

    let out = meshstats(&[
        "validate",
        s(&good),
        s(&example("sidecar-node-metadata.json")),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "node metadata is not a filter config"
    );
    let out = meshstats(&["validate", s(&good)]);
    assert!(out.status.success());
}

#[test]
fn render_stats_config_prints_the_json_object() {
    let out = meshstats(&["render", "stats-config"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, stats_config(&PluginConfig::default()));

    let dir = scratch_dir("stats-config");
    let cfg = write(
        &dir,
        "c.json",
        r#"{"metrics": [{"dimensions": {"route": "request.url_path"}}]}"#,
    );
    let out = meshstats(&["render", "stats-config", "--config", s(&cfg)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let tags = printed["stats_tags"].as_array().unwrap();
    assert!(tags.iter().any(|t| t["tag_name"] == "route"));
    assert_eq!(
        printed.get("histogram_bucket_settings"),
        None,
        "no buckets asked for"
    );

    let cfg = write(
        &dir,
        "b.json",
        r#"{"metrics": [{"name": "request_bytes", "buckets": {"explicit_buckets": {"bounds": [64, 1024]}}}]}"#,
    );
    let out = meshstats(&["render", "stats-config", "--config", s(&cfg)]);
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        printed["histogram_bucket_settings"],
        serde_json::json!([{"match": {"safe_regex": {"regex": "^wasmcustom\\.(.*;\\.;)?istio_request_bytes$"}}, "buckets": [64.0, 1024.0]}])
    );

    // A config with a broken expression is refused, with the filter's own words.
    let cfg = write(
        &dir,
        "bad.json",
        r#"{"metrics": [{"dimensions": {"route": "request.url_pth"}}]}"#,
    );
    let out = meshstats(&["render", "stats-config", "--config", s(&cfg)]);
    assert!(!out.status.success());
    assert_eq!(
        text(&out.stderr).trim(),
        format!(
            "meshstats: {}: invalid meshstats config at `metrics[0].dimensions.route`: column 1: unknown attribute `request.url_pth`; did you mean `request.url_path`? in `request.url_pth`",
            cfg.display()
        )
    );
}

#[test]
fn render_access_log_prints_the_list() {
    let config = example("new-log.json");
    let out = meshstats(&["render", "access-log", "--config", s(&config)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let parsed = PluginConfig::parse(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert_eq!(printed, access_log(&parsed));
    assert_eq!(printed.as_array().map(Vec::len), Some(1));
    assert_eq!(printed[0]["name"], "envoy.access_loggers.stdout");
    assert!(
        text(&out.stdout).ends_with("]\n"),
        "pretty JSON and a newline"
    );

    // Nothing to print on stdout: an empty list, still a success.
    let dir = scratch_dir("render-access-log");
    let proxy_log = write(
        &dir,
        "p.json",
        r#"{"logs": [{"name": "a"}], "log_delivery": "proxy_log"}"#,
    );
    for cfg in [example("default.json"), proxy_log] {
        let out = meshstats(&["render", "access-log", "--config", s(&cfg)]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "[]\n", "{}", cfg.display());
    }

    // The config is required, and must be valid.
    let out = meshstats(&["render", "access-log"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--config"),
        "{}",
        text(&out.stderr)
    );
    let bad = write(&dir, "bad.json", r#"{"logs": [{"nme": "a"}]}"#);
    let out = meshstats(&["render", "access-log", "--config", s(&bad)]);
    assert_eq!(out.status.code(), Some(1));
    let config_error = PluginConfig::parse(r#"{"logs": [{"nme": "a"}]}"#)
        .unwrap_err()
        .to_string();
    assert_eq!(
        text(&out.stderr).trim(),
        format!("meshstats: {}: {config_error}", bad.display())
    );
}

#[test]
fn render_envoy_includes_the_access_log() {
    let config = example("new-log.json");
    let node = example("sidecar-node-metadata.json");
    let out = meshstats(
        &[
            envoy_args(s(&config), s(&node)),
            vec!["--no-filter", "--access-log"],
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let hcm = &printed["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"];
    let parsed = PluginConfig::parse(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert_eq!(hcm["access_log"][0], access_log(&parsed)[0]);
    assert_eq!(
        hcm["access_log"][1]["name"], "envoy.access_loggers.stderr",
        "--access-log: Envoy's format on stderr"
    );
    assert_eq!(hcm["access_log"].as_array().map(Vec::len), Some(2));
}

fn envoy_args<'a>(config: &'a str, node: &'a str) -> Vec<&'a str> {
    vec![
        "render",
        "envoy",
        "--config",
        config,
        "--direction",
        "outbound",
        "--listen",
        "127.0.0.1:15001",
        "--upstream",
        "127.0.0.1:9080",
        "--admin",
        "127.0.0.1:15000",
        "--node-metadata",
        node,
    ]
}

#[test]
fn render_envoy_prints_the_library_bootstrap_with_an_absolute_wasm_path() {
    let dir = scratch_dir("render-envoy");
    let cm = write(
        &dir,
        "cluster.json",
        &common::cluster_metadata().to_string(),
    );
    let config = example("default.json");
    let node = example("sidecar-node-metadata.json");
    let mut args = envoy_args(s(&config), s(&node));
    args.extend([
        "--wasm",
        "target/meshstats.wasm",
        "--root-id",
        "stats_outbound",
        "--cluster-metadata",
        s(&cm),
    ]);
    let out = meshstats(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();

    let expected = envoy_bootstrap(
        &sidecar_options(&EnvoyArgs {
            config: config.clone(),
            direction: Direction::Outbound,
            listen: "127.0.0.1:15001".parse().unwrap(),
            upstream: "127.0.0.1:9080".parse().unwrap(),
            admin: "127.0.0.1:15000".parse().unwrap(),
            node_metadata: node,
            node_id: None,
            build: meshstats_cli::cli::BuildArgs {
                build: meshstats_cli::Build::Wasm,
            },
            module: None,
            wasm: Some(
                std::env::current_dir()
                    .unwrap()
                    .join("target/meshstats.wasm"),
            ),
            root_id: "stats_outbound".into(),
            cluster_metadata: Some(cm),
            endpoint_metadata: None,
            no_filter: false,
            access_log: false,
            protocol: meshstats_cli::render::envoy::Protocol::Http,
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            upstream_tls_cert: None,
            upstream_tls_key: None,
            upstream_tls_ca: None,
            grpc: false,
        })
        .unwrap(),
    );
    assert_eq!(printed, expected);
}

#[test]
fn render_envoy_tcp_with_mtls() {
    let tls = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tls");
    let file = |name: &str| tls.join(name).to_string_lossy().into_owned();
    let (config, node) = (
        example("default.json"),
        example("sidecar-node-metadata.json"),
    );
    let mut args: Vec<String> = [
        "render",
        "envoy",
        "--direction",
        "inbound",
        "--protocol",
        "tcp",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (flag, value) in [
        ("--config", config.to_string_lossy().into_owned()),
        ("--node-metadata", node.to_string_lossy().into_owned()),
        ("--listen", "127.0.0.1:15006".into()),
        ("--upstream", "127.0.0.1:9080".into()),
        ("--admin", "127.0.0.1:15000".into()),
        ("--wasm", "/opt/meshstats.wasm".into()),
        ("--tls-cert", file("cert.pem")),
        ("--tls-key", file("key.pem")),
        ("--tls-ca", file("ca.pem")),
    ] {
        args.extend([flag.to_string(), value]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = meshstats(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let chain = &printed["static_resources"]["listeners"][0]["filter_chains"][0];
    assert_eq!(chain["filters"][0]["name"], "envoy.filters.network.wasm");
    assert_eq!(
        chain["filters"][1]["typed_config"]["stat_prefix"],
        "inbound_tcp"
    );
    let tls_context = &chain["transport_socket"]["typed_config"];
    assert_eq!(tls_context["require_client_certificate"], true);
    assert_eq!(
        tls_context["common_tls_context"]["validation_context"]["trusted_ca"]["filename"],
        file("ca.pem")
    );
    // Istio's inbound ALPN for TCP metadata exchange, and the filter told to exchange.
    assert_eq!(
        tls_context["common_tls_context"]["alpn_protocols"],
        serde_json::json!(["istio-peer-exchange", "h2", "http/1.1"])
    );
    let configuration = chain["filters"][0]["typed_config"]["config"]["configuration"]["value"]
        .as_str()
        .unwrap();
    let configuration: Value = serde_json::from_str(configuration).unwrap();
    assert_eq!(configuration["tcp_metadata_exchange"], true);
    // A certificate without its key is refused by the command line.
    let out = meshstats(&["render", "envoy", "--tls-cert", "x.pem"]);
    assert!(!out.status.success());
}

/// `--grpc`: `grpc_stats` (writing filter state) before the Wasm filter, an HTTP/2 cluster.
#[test]
fn render_envoy_grpc() {
    let (config, node) = (
        example("default.json"),
        example("sidecar-node-metadata.json"),
    );
    let (config, node) = (
        config.to_string_lossy().into_owned(),
        node.to_string_lossy().into_owned(),
    );
    let args = [
        "render",
        "envoy",
        "--grpc",
        "--direction",
        "inbound",
        "--config",
        &config,
        "--node-metadata",
        &node,
        "--listen",
        "127.0.0.1:15006",
        "--upstream",
        "127.0.0.1:9080",
        "--admin",
        "127.0.0.1:15000",
        "--wasm",
        "/opt/meshstats.wasm",
    ];
    let out = meshstats(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let hcm = &printed["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"];
    assert_eq!(
        hcm["http_filters"][0]["name"],
        "envoy.filters.http.grpc_stats"
    );
    assert_eq!(
        hcm["http_filters"][0]["typed_config"]["emit_filter_state"],
        true
    );
    assert_eq!(hcm["http_filters"][1]["name"], "envoy.filters.http.wasm");
    let options = &printed["static_resources"]["clusters"][0]["typed_extension_protocol_options"]
        ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["explicit_http_config"];
    assert!(options["http2_protocol_options"].is_object(), "{options}");
}

#[test]
fn render_envoy_input_errors_name_the_file() {
    let dir = scratch_dir("render-errors");
    let config = example("default.json");
    let node = example("sidecar-node-metadata.json");
    let not_json = write(&dir, "node.json", "NAME: productpage");
    let missing = dir.join("nope.json");

    let out = meshstats(&[envoy_args(s(&config), s(&not_json)), vec!["--no-filter"]].concat());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!("{}: not valid JSON: ", not_json.display())),
        "{}",
        text(&out.stderr)
    );

    let out = meshstats(
        &[
            envoy_args(s(&config), s(&node)),
            vec!["--no-filter", "--endpoint-metadata", s(&missing)],
        ]
        .concat(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!("{}: cannot read: ", missing.display())),
        "{}",
        text(&out.stderr)
    );

    let bad_config = write(&dir, "config.json", r#"{"stat_prefix": "envoy"}"#);
    let out = meshstats(&[envoy_args(s(&bad_config), s(&node)), vec!["--no-filter"]].concat());
    assert_eq!(out.status.code(), Some(1));
    let config_error = PluginConfig::parse(r#"{"stat_prefix": "envoy"}"#)
        .unwrap_err()
        .to_string();
    assert!(
        text(&out.stderr).contains(&format!("{}: {config_error}", bad_config.display())),
        "{}",
        text(&out.stderr)
    );

    let out = meshstats(&envoy_args(s(&config), s(&node)));
    // The handler's check (not clap's): with `--build native` the module is `--module`.
    assert_eq!(
        out.status.code(),
        Some(1),
        "--wasm is required with the filter"
    );
    assert!(
        text(&out.stderr).contains("--wasm"),
        "{}",
        text(&out.stderr)
    );
}

/// Istio's customized scenario: the expression that does not parse is a problem (exit 1), the
/// one that cannot be evaluated a warning, and every metric is listed with its labels, so a
/// user sees that a definition has only the labels `metrics[]` gave it.
#[test]
fn validate_tells_parse_errors_from_unevaluable_dimensions_and_lists_labels() {
    let file = example("istio-e2e/customized.cel.json");
    let f = file.display();
    let out = meshstats(&["validate", s(&file)]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "{f}: invalid meshstats config at `metrics[3].dimensions.destination_app`: column 8: expected end of expression, found `_` in `cannot _ parse | 1`\n\
             {f}: warning: invalid meshstats config at `metrics[3].dimensions.destination_workload`: column 1: unknown attribute `cannot_evaluate` in `cannot_evaluate`; the label is `unknown`\n"
        )
    );
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!("{f}: 1 problem, 1 warning; the filter loads the rest")
    );
    assert!(
        lines.contains(&"  istio_custom COUNTER: reporter, source_principal"),
        "{stdout}"
    );
    let requests = lines
        .iter()
        .find(|l| l.starts_with("  istio_requests_total COUNTER: "))
        .unwrap();
    assert!(
        requests.contains("destination_workload")
            && !requests.contains("destination_app")
            && requests.ends_with("configurable_metric_a, route_name, source_principal"),
        "{requests}"
    );
    assert!(
        !stdout.contains("istio_request_duration_milliseconds"),
        "dropped: {stdout}"
    );

    // Only the warning: accepted.
    let dir = scratch_dir("validate-warning");
    let only = write(
        &dir,
        "w.json",
        r#"{"definitions": [{"name": "d", "value": "1"}], "metrics": [{"name": "d", "dimensions": {"x": "request.hots"}}]}"#,
    );
    let out = meshstats(&["validate", s(&only)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout.lines().next(),
        Some(format!("{}: ok, 1 warning", only.display()).as_str())
    );
    assert!(stdout.contains("\n  istio_d COUNTER: x\n"), "{stdout}");
    assert!(
        text(&out.stderr).contains("did you mean `request.host`?"),
        "the suggestion stays"
    );
}
