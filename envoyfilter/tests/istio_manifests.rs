//! Every Istio manifest `meshstats render` prints is valid against Istio's CRD schemas (the
//! OpenAPI v3 schemas in `../shared/istio-crds/`, with unknown fields as errors, as a
//! structural schema would silently prune them), the Envoy configuration inside an
//! `EnvoyFilter` is accepted by a real Envoy, and the Istio targets carry the same tags,
//! buckets and access log as `render stats-config` / `render access-log` / `render envoy`.

mod common;

use common::{example, scratch_dir, write};
use jsonschema::Validator;
use meshstats_cli::render::access_log::{log_filter_expression, log_format, stdout_logger};
use meshstats_cli::render::istio::{
    self, http_wasm_filter, istio_builtin_tags, Buckets, WasmCode, HISTOGRAM_BUCKETS_ANNOTATION,
    PROXY_CONFIG_ANNOTATION,
};
use meshstats_cli::{envoy_bootstrap, stats_config, Direction};
use meshstats_filter::config::PluginConfig;
use meshstats_filter::metrics::{all_tag_names, bucket_settings};
use meshstats_filter::stat_name::tag_regex;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn crd_dir() -> PathBuf {
    let dir = workspace().join("../shared/istio-crds");
    assert!(
        dir.is_dir(),
        "no Istio CRDs at {}: the project's shared/ directory belongs beside the checkout",
        dir.display()
    );
    dir
}

/// `additionalProperties: false` wherever the schema lists `properties` and does not keep
/// unknown fields, recursively: what a structural schema prunes is an error here.
fn strict(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            let preserves = map.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
            if map.contains_key("properties")
                && !map.contains_key("additionalProperties")
                && !preserves
            {
                map.insert("additionalProperties".into(), json!(false));
            }
            for value in map.values_mut() {
                strict(value);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strict),
        _ => {}
    }
}

/// The schema of `apiVersion`/`kind` from the CRDs, made strict; the object's top level gets
/// the fields every Kubernetes object has (the CRD schemas leave them out).
fn schemas() -> BTreeMap<(String, String), Validator> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(crd_dir()).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with(".crd.yaml") {
            continue;
        }
        let crd: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let group = crd["spec"]["group"].as_str().unwrap();
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap();
        for version in crd["spec"]["versions"].as_array().unwrap() {
            if version["served"] != json!(true) {
                continue;
            }
            let mut schema = version["schema"]["openAPIV3Schema"].clone();
            let props = schema["properties"].as_object_mut().unwrap();
            props.insert("apiVersion".into(), json!({"type": "string"}));
            props.insert("kind".into(), json!({"type": "string"}));
            props.insert(
                "metadata".into(),
                json!({"type": "object", "required": ["name"], "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "namespace": {"type": "string", "minLength": 1},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                }}),
            );
            strict(&mut schema);
            let api_version = format!("{group}/{}", version["name"].as_str().unwrap());
            let validator = jsonschema::validator_for(&schema).unwrap();
            out.insert((api_version, kind.to_string()), validator);
        }
    }
    out
}

/// Problems with `doc` under its CRD's schema, and under the CEL rules
/// (`x-kubernetes-validations`) the schema validator cannot run, written out here.
fn problems(schemas: &BTreeMap<(String, String), Validator>, doc: &Value) -> Vec<String> {
    let key = (
        doc["apiVersion"].as_str().unwrap_or_default().to_string(),
        doc["kind"].as_str().unwrap_or_default().to_string(),
    );
    let Some(validator) = schemas.get(&key) else {
        return vec![format!("no served CRD version for {key:?}")];
    };
    let mut out: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{e} at `{}`", e.instance_path()))
        .collect();
    let spec = &doc["spec"];
    let scopes = ["selector", "workloadSelector", "targetRef", "targetRefs"]
        .iter()
        .filter(|f| spec.get(**f).is_some())
        .count();
    if scopes > 1 {
        out.push("only one of targetRefs or selector can be set".into());
    }
    for labels in [
        &spec["selector"]["matchLabels"],
        &spec["workloadSelector"]["labels"],
    ] {
        for (k, v) in labels.as_object().into_iter().flatten() {
            if k.is_empty() || k.contains('*') || v.as_str().unwrap_or("*").contains('*') {
                out.push(format!("bad label {k}={v}"));
            }
        }
    }
    if let Some(url) = spec["url"].as_str() {
        let scheme = url.split_once("://").map(|(s, _)| s);
        if !matches!(scheme, Some("http" | "https" | "oci" | "file")) {
            out.push(format!(
                "url must have schema one of [http, https, file, oci]: {url}"
            ));
        }
    }
    for patch in spec["configPatches"].as_array().into_iter().flatten() {
        if patch["match"].get("waypoint").is_some() != (patch["match"]["context"] == "WAYPOINT") {
            out.push("only support waypointMatch when context is WAYPOINT".into());
        }
    }
    out
}

fn meshstats(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_meshstats"))
        .args(args)
        .output()
        .unwrap()
}

fn render_ok(args: &[&str]) -> String {
    let out = meshstats(args);
    assert!(
        out.status.success(),
        "meshstats {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn yaml_docs(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn assert_valid(schemas: &BTreeMap<(String, String), Validator>, what: &str, docs: &[Value]) {
    assert!(!docs.is_empty(), "{what}: nothing rendered");
    for doc in docs {
        let p = problems(schemas, doc);
        assert!(
            p.is_empty(),
            "{what}: {} {} is invalid:\n{}",
            doc["kind"],
            doc["metadata"]["name"],
            p.join("\n")
        );
    }
}

/// Every target, every example configuration, the main option combinations.
#[test]
fn rendered_manifests_match_the_crds() {
    let schemas = schemas();
    let dir = scratch_dir("istio-crds");
    let wasm = write(&dir, "m.wasm", "\0asm\u{1}\0\0\0");
    let sha = "a".repeat(64);
    for name in [
        "default.json",
        "customized.json",
        "new-log.json",
        "istio-access-log.json",
        "double-request-count.json",
    ] {
        let config = example(name);
        let c = s(&config);
        let cases: Vec<Vec<&str>> = vec![
            vec![
                "wasmplugin",
                "--config",
                c,
                "--url",
                "oci://registry.example.com/meshstats:1",
            ],
            vec![
                "wasmplugin",
                "--config",
                c,
                "--url",
                "oci://registry.example.com/meshstats:1",
                "--wasm",
                s(&wasm),
                "--selector",
                "app=ratings",
                "--selector",
                "version=v1",
                "--namespace",
                "bookinfo",
                "--name",
                "m",
                "--image-pull-secret",
                "regcred",
            ],
            vec![
                "wasmplugin",
                "--config",
                c,
                "--url",
                "https://files.example.com/meshstats.wasm",
                "--sha256",
                &sha,
                "--target-ref",
                "Gateway/bookinfo-gateway",
                "--no-tcp",
            ],
            vec![
                "wasmplugin",
                "--config",
                c,
                "--url",
                "file:///var/lib/meshstats/meshstats.wasm",
                "--target-ref",
                "Service/ratings",
            ],
            vec![
                "envoyfilter",
                "--config",
                c,
                "--wasm-path",
                "/var/lib/meshstats/meshstats.wasm",
            ],
            vec![
                "envoyfilter",
                "--config",
                c,
                "--wasm-path",
                "/m.wasm",
                "--selector",
                "app=ratings",
                "--no-tcp",
            ],
            vec![
                "envoyfilter",
                "--config",
                c,
                "--url",
                "https://files.example.com/meshstats.wasm",
                "--wasm",
                s(&wasm),
                "--target-ref",
                "Gateway/gw",
            ],
        ];
        for args in cases {
            let mut full = vec!["render"];
            full.extend(&args);
            let docs = yaml_docs(&render_ok(&full));
            assert_valid(&schemas, &format!("{name} {args:?}"), &docs);
            // JSON is the same documents.
            full.extend(["--format", "json"]);
            let json: Value = serde_json::from_str(&render_ok(&full)).unwrap();
            let json_docs = if json["kind"] == "List" {
                json["items"].as_array().unwrap().clone()
            } else {
                vec![json]
            };
            assert_eq!(json_docs, docs);
        }
    }
    for name in ["new-log.json", "istio-access-log.json"] {
        let config = example(name);
        for extra in [
            &[][..],
            &[
                "--selector",
                "app=ratings",
                "--provider",
                "p",
                "--namespace",
                "bookinfo",
            ][..],
            &["--target-ref", "Gateway/gw"][..],
        ] {
            let mut args = vec!["render", "telemetry", "--config", s(&config)];
            args.extend(extra);
            assert_valid(
                &schemas,
                &format!("{name} {args:?}"),
                &yaml_docs(&render_ok(&args)),
            );
        }
    }
}

/// The schemas really reject what a cluster would reject or drop.
#[test]
fn the_validation_is_not_vacuous() {
    let schemas = schemas();
    let good = yaml_docs(&render_ok(&[
        "render",
        "wasmplugin",
        "--url",
        "oci://r/m:1",
        "--no-tcp",
    ]))
    .remove(0);
    assert_eq!(problems(&schemas, &good), Vec::<String>::new());
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut doc = good.clone();
        f(&mut doc);
        problems(&schemas, &doc)
    };
    assert!(
        !broken(&|d| d["spec"]["failStrategyy"] = json!("FAIL_OPEN")).is_empty(),
        "unknown field"
    );
    assert!(
        !broken(&|d| d["metadata"]["nmae"] = json!("x")).is_empty(),
        "unknown metadata field"
    );
    assert!(
        !broken(&|d| d["spec"]["failStrategy"] = json!("FAIL_SOFT")).is_empty(),
        "enum"
    );
    assert!(
        !broken(&|d| d["spec"]["type"] = json!("TCP")).is_empty(),
        "enum"
    );
    assert!(
        !broken(&|d| {
            d["spec"].as_object_mut().unwrap().remove("url");
        })
        .is_empty(),
        "required"
    );
    assert!(
        !broken(&|d| d["spec"]["sha256"] = json!("abc")).is_empty(),
        "pattern"
    );
    assert!(
        !broken(&|d| d["spec"]["url"] = json!("ftp://x/y")).is_empty(),
        "CEL url rule"
    );
    assert!(
        !broken(&|d| {
            d["spec"]["selector"] = json!({"matchLabels": {"a": "b"}});
            d["spec"]["targetRefs"] = json!([{"kind": "Gateway", "name": "g"}]);
        })
        .is_empty(),
        "CEL one-of rule"
    );
    assert!(
        !broken(&|d| d["spec"]["pluginConfig"] = json!("{}")).is_empty(),
        "type"
    );
    // Fields under x-kubernetes-preserve-unknown-fields stay free.
    assert!(broken(&|d| d["spec"]["pluginConfig"]["anything"] = json!({"x": 1})).is_empty());

    let ef = yaml_docs(&render_ok(&[
        "render",
        "envoyfilter",
        "--wasm-path",
        "/m.wasm",
    ]))
    .remove(0);
    assert_eq!(problems(&schemas, &ef), Vec::<String>::new());
    let mut bad = ef.clone();
    bad["spec"]["configPatches"][0]["match"]["listener"]["filterChain"]["filter"]["subfilter"] =
        json!({});
    assert!(!problems(&schemas, &bad).is_empty(), "misspelt match field");
    let mut bad = ef.clone();
    bad["spec"]["configPatches"][0]["match"]["context"] = json!("SIDECAR");
    assert!(!problems(&schemas, &bad).is_empty());

    let tel = yaml_docs(&render_ok(&[
        "render",
        "telemetry",
        "--config",
        s(&example("new-log.json")),
    ]))
    .remove(0);
    assert_eq!(problems(&schemas, &tel), Vec::<String>::new());
    let mut bad = tel.clone();
    bad["spec"]["accessLogging"][0]["filter"]["expr"] = json!("true");
    assert!(!problems(&schemas, &bad).is_empty());
    let mut bad = tel;
    bad["apiVersion"] = json!("telemetry.istio.io/v2");
    assert!(!problems(&schemas, &bad).is_empty());
}

fn wasm_plugin_docs(args: &[&str]) -> Vec<Value> {
    let mut full = vec!["render", "wasmplugin"];
    full.extend(args);
    yaml_docs(&render_ok(&full))
}

#[test]
fn wasmplugins_are_http_and_network_stats_plugins_that_fail_open() {
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
        assert_eq!(spec["failStrategy"], "FAIL_OPEN");
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
        let out = meshstats(&full);
        assert!(!out.status.success(), "{args:?} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn envoyfilter_patches_every_context_with_direction_root_ids() {
    let config = example("new-log.json");
    let text = std::fs::read_to_string(&config).unwrap();
    let doc = yaml_docs(&render_ok(&[
        "render",
        "envoyfilter",
        "--config",
        s(&config),
        "--wasm-path",
        "/w/m.wasm",
        "--selector",
        "app=ratings",
    ]))
    .remove(0);
    assert_eq!(doc["apiVersion"], "networking.istio.io/v1alpha3");
    assert_eq!(
        doc["spec"]["workloadSelector"],
        json!({"labels": {"app": "ratings"}})
    );
    let patches = doc["spec"]["configPatches"].as_array().unwrap();
    let summary: Vec<(String, String, String, String)> = patches
        .iter()
        .map(|p| {
            let config = &p["patch"]["value"]["typed_config"]["config"];
            assert_eq!(p["patch"]["operation"], "INSERT_BEFORE");
            assert_eq!(config["failure_policy"], "FAIL_OPEN");
            assert_eq!(config["configuration"]["value"], text.as_str(), "verbatim");
            assert_eq!(
                config["vm_config"]["code"],
                json!({"local": {"filename": "/w/m.wasm"}})
            );
            assert_eq!(config["vm_config"]["runtime"], "envoy.wasm.runtime.v8");
            let filter = &p["match"]["listener"]["filterChain"]["filter"];
            let before = filter["subFilter"]["name"]
                .as_str()
                .or(filter["name"].as_str())
                .unwrap();
            (
                p["match"]["context"].as_str().unwrap().to_string(),
                before.to_string(),
                config["root_id"].as_str().unwrap().to_string(),
                config["vm_config"]["vm_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        (
            "SIDECAR_INBOUND",
            "envoy.filters.http.router",
            "stats_inbound",
            "meshstats",
        ),
        (
            "SIDECAR_OUTBOUND",
            "envoy.filters.http.router",
            "stats_outbound",
            "meshstats",
        ),
        (
            "GATEWAY",
            "envoy.filters.http.router",
            "stats_outbound",
            "meshstats",
        ),
        (
            "SIDECAR_INBOUND",
            "envoy.filters.network.tcp_proxy",
            "stats_inbound",
            "meshstats_tcp",
        ),
        (
            "SIDECAR_OUTBOUND",
            "envoy.filters.network.tcp_proxy",
            "stats_outbound",
            "meshstats_tcp",
        ),
    ];
    let expected: Vec<(String, String, String, String)> = expected
        .iter()
        .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()))
        .collect();
    assert_eq!(summary, expected);
    for p in &patches[..3] {
        assert_eq!(p["applyTo"], "HTTP_FILTER");
        assert_eq!(
            p["match"]["listener"]["filterChain"]["filter"]["name"],
            "envoy.filters.network.http_connection_manager"
        );
    }
    for p in &patches[3..] {
        assert_eq!(p["applyTo"], "NETWORK_FILTER");
    }

    // Remote code: fetched by Envoy over Istio's outbound cluster, checked by sha256.
    let doc = yaml_docs(&render_ok(&[
        "render",
        "envoyfilter",
        "--url",
        "https://files.example.com/m.wasm",
        "--sha256",
        &"c".repeat(64),
        "--no-tcp",
    ]))
    .remove(0);
    let patches = doc["spec"]["configPatches"].as_array().unwrap();
    assert_eq!(patches.len(), 3);
    assert_eq!(
        patches[0]["patch"]["value"]["typed_config"]["config"]["vm_config"]["code"]["remote"],
        json!({"http_uri": {"uri": "https://files.example.com/m.wasm", "cluster": "outbound|443||files.example.com", "timeout": "30s"},
               "sha256": "c".repeat(64), "retry_policy": {"num_retries": 5}})
    );
    assert_eq!(
        patches[0]["patch"]["value"]["typed_config"]["config"]["configuration"]["value"],
        "{}"
    );
    for (args, expected) in [
        (vec!["--url", "https://x/m.wasm"], "--sha256 or --wasm"),
        (vec!["--url", "oci://x/m"], "http(s)://"),
        (vec![], "--wasm-path"),
        (
            vec!["--wasm-path", "/m", "--url", "https://x/m"],
            "cannot be used with",
        ),
    ] {
        let mut full = vec!["render", "envoyfilter"];
        full.extend(&args);
        let out = meshstats(&full);
        assert!(!out.status.success(), "{args:?} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

/// The HTTP filter of the `EnvoyFilter` is exactly the one `render envoy` puts before the
/// router (same name, plugin, VM, failure policy, configuration).
#[test]
fn envoyfilter_http_filter_is_render_envoys() {
    let mut opts = common::options(Direction::Inbound);
    opts.root_id = "stats_inbound".into();
    let bootstrap = envoy_bootstrap(&opts);
    let rendered = &bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"]["http_filters"][0];
    let path = opts
        .wasm_path
        .as_ref()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        *rendered,
        http_wasm_filter("stats_inbound", &WasmCode::Local(path), &opts.config_json)
    );
}

/// `envoy --mode validate` on the patches' filters, placed where the patches put them:
/// the HTTP filter before the router, the network filter before `tcp_proxy`.
#[test]
fn envoyfilter_filters_validate_in_envoy() {
    let dir = scratch_dir("istio-envoy");
    let stand_in = dir.join("stand-in.wasm");
    std::fs::write(&stand_in, wat::parse_str(common_wat()).unwrap()).unwrap();
    let config = example("customized.json");
    let doc = yaml_docs(&render_ok(&[
        "render",
        "envoyfilter",
        "--config",
        s(&config),
        "--wasm-path",
        s(&stand_in),
    ]))
    .remove(0);
    let patches = doc["spec"]["configPatches"].as_array().unwrap();
    let http: Vec<Value> = patches
        .iter()
        .filter(|p| p["applyTo"] == "HTTP_FILTER")
        .map(|p| p["patch"]["value"].clone())
        .collect();
    let tcp: Vec<Value> = patches
        .iter()
        .filter(|p| p["applyTo"] == "NETWORK_FILTER")
        .map(|p| p["patch"]["value"].clone())
        .collect();
    let mut listeners = Vec::new();
    for (i, filter) in http.iter().enumerate() {
        listeners.push(json!({
            "name": format!("http_{i}"),
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 15100 + i}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "h",
                "route_config": {"virtual_hosts": [{"name": "a", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "app"}}]}]},
                "http_filters": [filter, {"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
                "access_log": [stdout_logger()],
            }}]}],
        }));
    }
    for (i, filter) in tcp.iter().enumerate() {
        listeners.push(json!({
            "name": format!("tcp_{i}"),
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 15200 + i}},
            "filter_chains": [{"filters": [filter, {"name": "envoy.filters.network.tcp_proxy", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                "stat_prefix": "t", "cluster": "app",
            }}]}],
        }));
    }
    assert_eq!((http.len(), tcp.len()), (3, 2));
    let parsed = PluginConfig::parse(&std::fs::read_to_string(&config).unwrap()).unwrap();
    let bootstrap = json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "stats_config": stats_config(&parsed),
        "static_resources": {
            "listeners": listeners,
            "clusters": [{"name": "app", "type": "STATIC", "connect_timeout": "1s", "load_assignment": {"cluster_name": "app",
                "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 9080}}}}]}]}}],
        },
    });
    envoy_validate(&dir, "envoyfilter", &bootstrap).unwrap();

    // And what Istio builds from proxy-config + bootstrap-override: its standard tags,
    // ours as extraStatTags, the override's exact buckets merged in.
    let docs = yaml_docs(&render_ok(&[
        "render",
        "bootstrap-override",
        "--config",
        s(&config),
    ]));
    let fragment: Value =
        serde_json::from_str(docs[0]["data"]["custom_bootstrap.json"].as_str().unwrap()).unwrap();
    let mut tags: Vec<Value> = istio_builtin_tags()
        .iter()
        .map(|t| json!({"tag_name": t, "regex": tag_regex(t)}))
        .collect();
    tags.extend(
        istio::extra_stat_tags(&parsed)
            .iter()
            .map(|t| json!({"tag_name": t, "regex": tag_regex(t)})),
    );
    let mut stats = fragment["stats_config"].clone();
    stats["stats_tags"] = Value::Array(tags);
    let bootstrap = json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "stats_config": stats,
    });
    envoy_validate(&dir, "istio-bootstrap", &bootstrap).unwrap();
    let err = envoy_validate(&dir, "negative", &json!({"stats_config": {"histogram_bucket_settings": [{"match": {"prefx": "x"}, "buckets": [1]}]}})).unwrap_err();
    assert!(err.contains("prefx"), "{err}");
}

fn common_wat() -> &'static str {
    r#"(module
  (memory (export "memory") 1)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_delete") (param i32)))"#
}

fn envoy_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("ENVOY_BIN") {
        return PathBuf::from(bin);
    }
    let venv = workspace().join(".venv/bin/envoy");
    assert!(
        venv.is_file(),
        "no Envoy: run `make setup` or set ENVOY_BIN"
    );
    venv
}

fn envoy_validate(dir: &Path, name: &str, bootstrap: &Value) -> Result<(), String> {
    let file = write(
        dir,
        &format!("{name}.json"),
        &serde_json::to_string_pretty(bootstrap).unwrap(),
    );
    let out = Command::new(envoy_bin())
        .args([
            "--mode",
            "validate",
            "--log-level",
            "warn",
            "--disable-hot-restart",
            "-c",
        ])
        .arg(&file)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
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

/// The checked-in examples (`make manifests`) are valid too.
#[test]
fn checked_in_examples_match_the_crds() {
    let schemas = schemas();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/istio");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        for doc in yaml_docs(&std::fs::read_to_string(&path).unwrap()) {
            let api = doc["apiVersion"].as_str().unwrap_or_default();
            if api.contains("istio.io") {
                let p = problems(&schemas, &doc);
                assert!(p.is_empty(), "{}: {}", path.display(), p.join("\n"));
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 4,
        "only {checked} Istio resources in {}",
        dir.display()
    );
}

/// The hand-written manifests in docs/deploying.md are valid too.
#[test]
fn manifests_in_the_deploying_doc_match_the_crds() {
    let schemas = schemas();
    let doc = std::fs::read_to_string(workspace().join("docs/deploying.md")).unwrap();
    let mut checked = 0;
    for block in doc.split("```yaml\n").skip(1) {
        let block = block.split("```").next().unwrap();
        for manifest in yaml_docs(block) {
            let p = problems(&schemas, &manifest);
            assert!(p.is_empty(), "docs/deploying.md: {}", p.join("\n"));
            checked += 1;
        }
    }
    assert!(checked >= 1);
}
