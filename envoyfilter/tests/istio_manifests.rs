//! The Istio targets of `meshstats render` (`WasmPlugin`, `Telemetry`, mesh and proxy
//! config, bootstrap override) carry the same plugins, tags, buckets and access log as
//! `render stats-config` / `render access-log` / `render envoy`.

mod common;

use common::{assert_rejected, example, meshstats, render_ok, s, scratch_dir, write, yaml_docs};
use meshstats_cli::render::access_log::{log_filter_expression, log_format, stdout_logger};
use meshstats_cli::render::istio::{
    self, istio_builtin_tags, Buckets, HISTOGRAM_BUCKETS_ANNOTATION, PROXY_CONFIG_ANNOTATION,
};
use meshstats_cli::stats_config;
use meshstats_filter::config::PluginConfig;
use meshstats_filter::metrics::{all_tag_names, bucket_settings};
use serde_json::{json, Value};

fn wasm_plugin_docs(args: &[&str]) -> Vec<Value> {
    let mut full = vec!["render", "wasmplugin"];
    full.extend(args);
    yaml_docs(&render_ok(&full))
}

#[test]
fn wasmplugins_are_http_and_network_stats_plugins_that_reload_on_failure() {
    let config = example("customized.json");
    let docs = wasm_plugin_docs(&[
        "--config",
        s(&config),
        "--url",
        "oci://r/m:1",
        "--selector",
        "app=ratings",
    ]);
    assert_eq!(docs.len(), 2);
    let text = std::fs::read_to_string(&config).unwrap();
    let parsed: Value = serde_json::from_str(&text).unwrap();
    for (doc, (name, ty)) in docs
        .iter()
        .zip([("meshstats", "HTTP"), ("meshstats-tcp", "NETWORK")])
    {
        assert_eq!(doc["apiVersion"], "extensions.istio.io/v1alpha1");
        assert_eq!(doc["kind"], "WasmPlugin");
        assert_eq!(doc["metadata"]["name"], name);
        assert_eq!(doc["metadata"]["namespace"], "istio-system");
        let spec = &doc["spec"];
        assert_eq!(spec["type"], ty);
        assert_eq!(spec["phase"], "STATS");
        assert_eq!(spec["failStrategy"], "FAIL_RELOAD");
        assert_eq!(spec["url"], "oci://r/m:1");
        assert_eq!(
            spec["pluginConfig"], parsed,
            "the configuration, structured"
        );
        assert_eq!(spec["selector"], json!({"matchLabels": {"app": "ratings"}}));
        assert!(spec.get("sha256").is_none());
        // What the filter receives (Istio marshals pluginConfig back to JSON) is valid.
        PluginConfig::parse(&spec["pluginConfig"].to_string()).unwrap();
    }
    // --no-tcp, --target-ref, --sha256
    let docs = wasm_plugin_docs(&[
        "--url",
        "https://x/m.wasm",
        "--no-tcp",
        "--target-ref",
        "Gateway/gw",
        "--sha256",
        &format!("sha256:{}", "b".repeat(64)),
    ]);
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["spec"]["pluginConfig"], json!({}));
    assert_eq!(docs[0]["spec"]["sha256"], "b".repeat(64));
    assert_eq!(
        docs[0]["spec"]["targetRefs"],
        json!([{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"}])
    );

    // --wasm: the module's sha256 for http/file, the image's manifest digest for oci.
    let dir = scratch_dir("istio-sha");
    let bytes = b"\0asm\x01\0\0\0";
    let wasm = dir.join("m.wasm");
    std::fs::write(&wasm, bytes).unwrap();
    let file = wasm_plugin_docs(&["--url", "file:///m.wasm", "--wasm", s(&wasm)]);
    assert_eq!(
        file[0]["spec"]["sha256"],
        meshstats_cli::render::package::sha256_hex(bytes)
    );
    assert_eq!(file[1]["spec"]["sha256"], file[0]["spec"]["sha256"]);
    let oci = wasm_plugin_docs(&["--url", "oci://r/m:1", "--wasm", s(&wasm)]);
    let image = meshstats_cli::render::package::image(bytes, "x").unwrap();
    assert_eq!(
        format!("sha256:{}", oci[0]["spec"]["sha256"].as_str().unwrap()),
        image.manifest.digest
    );

    // Refusals, each naming what is wrong.
    for (args, expected) in [
        (vec!["--url", "ftp://x/m.wasm"], "expected an oci://"),
        (
            vec!["--url", "oci://r/m", "--sha256", "abc"],
            "64 lower-case hex",
        ),
        (vec!["--url", "oci://r/m", "--selector", "app"], "key=value"),
        (
            vec!["--url", "oci://r/m", "--target-ref", "gw"],
            "Kind/name",
        ),
        (
            vec![
                "--url",
                "oci://r/m",
                "--selector",
                "a=b",
                "--target-ref",
                "Gateway/gw",
            ],
            "cannot be used with",
        ),
        (
            vec!["--url", "oci://r/m", "--wasm", s(&example("default.json"))],
            "not a WebAssembly module",
        ),
        (
            vec![
                "--url",
                "oci://r/m",
                "--config",
                s(&example("sidecar-node-metadata.json")),
            ],
            "unknown field",
        ),
    ] {
        let mut full = vec!["render", "wasmplugin"];
        full.extend(&args);
        assert_rejected(&full, expected);
    }
}

#[test]
fn telemetry_and_mesh_config_print_what_render_access_log_prints() {
    let config = example("new-log.json");
    let tel = yaml_docs(&render_ok(&["render", "telemetry", "--config", s(&config)])).remove(0);
    assert_eq!(tel["apiVersion"], "telemetry.istio.io/v1");
    assert_eq!(tel["metadata"]["namespace"], "istio-system");
    assert_eq!(
        tel["spec"],
        json!({"accessLogging": [{"providers": [{"name": "meshstats-json"}], "filter": {"expression": log_filter_expression()}}]})
    );
    let logger = stdout_logger();
    assert_eq!(
        logger["filter"]["extension_filter"]["typed_config"]["expression"],
        log_filter_expression()
    );

    let mesh = yaml_docs(&render_ok(&[
        "render",
        "mesh-config",
        "--config",
        s(&config),
        "--provider",
        "p",
    ]))
    .remove(0);
    let provider = &mesh["meshConfig"]["extensionProviders"][0];
    assert_eq!(provider["name"], "p");
    assert_eq!(provider["envoyFileAccessLog"]["path"], "/dev/stdout");
    assert_eq!(
        provider["envoyFileAccessLog"]["logFormat"]["text"],
        log_format()
    );
    assert_eq!(log_format(), "%FILTER_STATE(wasm.meshstats_log:PLAIN)%\n");
    assert_eq!(
        logger["typed_config"]["log_format"]["text_format_source"]["inline_string"],
        log_format()
    );

    // Without logs (or with proxy_log delivery) there is nothing to print.
    let out = meshstats(&[
        "render",
        "telemetry",
        "--config",
        s(&example("customized.json")),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("has no `logs` delivered through filter state"));
    let dir = scratch_dir("istio-proxy-log");
    let proxy_log = write(
        &dir,
        "p.json",
        r#"{"logs": [{"name": "a"}], "log_delivery": "proxy_log"}"#,
    );
    assert!(
        !meshstats(&["render", "telemetry", "--config", s(&proxy_log)])
            .status
            .success()
    );
    let mesh = yaml_docs(&render_ok(&[
        "render",
        "mesh-config",
        "--config",
        s(&proxy_log),
    ]))
    .remove(0);
    assert!(mesh["meshConfig"].get("extensionProviders").is_none());
    assert!(mesh["meshConfig"].get("defaultConfig").is_some());
}

/// Istio's bootstrap extracts its standard tags plus `extraStatTags`: together they must be
/// exactly `render stats-config`'s tags; the buckets must be its buckets.
#[test]
fn proxy_config_carries_every_tag_and_bucket_of_stats_config() {
    for name in [
        "default.json",
        "customized.json",
        "double-request-count.json",
        "new-log.json",
    ] {
        let config = example(name);
        let parsed = PluginConfig::parse(&std::fs::read_to_string(&config).unwrap()).unwrap();
        let out = meshstats(&["render", "proxy-config", "--config", s(&config)]);
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.starts_with("# "), "explains itself");
        let patch = yaml_docs(&text).remove(0);
        let annotations = patch["spec"]["template"]["metadata"]["annotations"]
            .as_object()
            .unwrap();
        let proxy_config: Value =
            serde_yaml_ng::from_str(annotations[PROXY_CONFIG_ANNOTATION].as_str().unwrap())
                .unwrap();
        let extra: Vec<String> =
            serde_json::from_value(proxy_config["extraStatTags"].clone()).unwrap();
        assert_eq!(
            proxy_config["proxyStatsMatcher"],
            json!({"inclusionPrefixes": ["wasmcustom."]})
        );
        // Same tags as stats-config, in its order after Istio's own.
        let stats_tags: Vec<String> = stats_config(&parsed)["stats_tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["tag_name"].as_str().unwrap().to_string())
            .collect();
        let mut istio: Vec<String> = istio_builtin_tags().iter().map(|s| s.to_string()).collect();
        istio.extend(extra.iter().cloned());
        assert_eq!(istio, stats_tags, "{name}");
        assert_eq!(&stats_tags, &{
            let mut v = all_tag_names(&parsed);
            let mut seen = std::collections::HashSet::new();
            v.retain(|t| seen.insert(t.clone()));
            v
        });
        // Buckets.
        let settings = bucket_settings(&parsed);
        match istio::buckets(&parsed) {
            Buckets::None => {
                assert!(settings.is_empty());
                assert!(!annotations.contains_key(HISTOGRAM_BUCKETS_ANNOTATION));
            }
            Buckets::Annotation(bounds) => {
                let value: Value = serde_json::from_str(
                    annotations[HISTOGRAM_BUCKETS_ANNOTATION].as_str().unwrap(),
                )
                .unwrap();
                assert_eq!(value, json!({"wasmcustom": bounds}));
                assert!(settings.iter().all(|s| s.bounds == bounds));
            }
            Buckets::BootstrapOverride => {
                assert_eq!(
                    annotations["sidecar.istio.io/bootstrapOverride"],
                    "meshstats-bootstrap"
                );
                assert!(String::from_utf8_lossy(&out.stderr).contains("render bootstrap-override"));
                let cm = yaml_docs(&render_ok(&[
                    "render",
                    "bootstrap-override",
                    "--config",
                    s(&config),
                    "--namespace",
                    "bookinfo",
                ]))
                .remove(0);
                assert_eq!(cm["kind"], "ConfigMap");
                assert_eq!(cm["metadata"]["namespace"], "bookinfo");
                let fragment: Value =
                    serde_json::from_str(cm["data"]["custom_bootstrap.json"].as_str().unwrap())
                        .unwrap();
                assert_eq!(
                    fragment["stats_config"]["histogram_bucket_settings"],
                    stats_config(&parsed)["histogram_bucket_settings"]
                );
                assert_eq!(
                    fragment.as_object().unwrap().len(),
                    1,
                    "only buckets: tags stay in extraStatTags"
                );
            }
        }
        // meshConfig.defaultConfig is the same ProxyConfig.
        let mesh = yaml_docs(&render_ok(&[
            "render",
            "mesh-config",
            "--config",
            s(&config),
        ]))
        .remove(0);
        assert_eq!(mesh["meshConfig"]["defaultConfig"], proxy_config);
    }
    // customized.json has two sets of buckets: the case that needs the override.
    let customized =
        PluginConfig::parse(&std::fs::read_to_string(example("customized.json")).unwrap()).unwrap();
    assert_eq!(istio::buckets(&customized), Buckets::BootstrapOverride);
}
