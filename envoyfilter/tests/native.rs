//! `--build native`: what the CLI renders for the Envoy dynamic module (`libmeshstats.so`),
//! asserted as parsed JSON/YAML against the native contract, and accepted by the real Envoy
//! with the real module (`envoy --mode validate` resolves the module's hooks).

mod common;

use common::{assert_rejected, example, meshstats, render_ok, s, scratch_dir, write, yaml_docs};
use meshstats_testkit::{envoy_validate_json, native_module};
use serde_json::{json, Value};
use std::path::PathBuf;

const CONFIG: &str = r#"{"metrics": [{"name": "request_duration_milliseconds", "buckets": {"explicit_buckets": {"bounds": [1, 10, 100]}}}]}"#;

fn config_file(test: &str) -> PathBuf {
    write(&scratch_dir(test), "config.json", CONFIG)
}

fn json_out(args: &[&str]) -> Value {
    serde_json::from_str(&render_ok(args)).unwrap()
}

fn absolute(p: &str) -> String {
    std::env::current_dir()
        .unwrap()
        .join(p)
        .to_string_lossy()
        .into_owned()
}

/// The contract's HTTP filter, field for field.
fn expected_http(filter_name: &str, module: Option<&str>) -> Value {
    let mut dmc = json!({ "name": "meshstats" });
    if let Some(m) = module {
        dmc["module"] = json!({ "local": { "filename": m } });
    }
    json!({
        "name": "envoy.filters.http.dynamic_modules",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
            "dynamic_module_config": dmc,
            "filter_name": filter_name,
            "filter_config": {
                "@type": "type.googleapis.com/google.protobuf.StringValue",
                "value": CONFIG,
            },
        },
    })
}

#[test]
fn http_filter_native_is_the_contracts_dynamic_module_filter() {
    let config = config_file("native-http-filter");
    let base = [
        "render",
        "http-filter",
        "--build",
        "native",
        "--config",
        s(&config),
    ];
    let with = |extra: &[&str]| {
        let mut a = base.to_vec();
        a.extend(extra);
        json_out(&a)
    };
    assert_eq!(
        with(&[
            "--module",
            "target/libmeshstats.so",
            "--direction",
            "inbound"
        ]),
        expected_http("stats_inbound", Some(&absolute("target/libmeshstats.so")))
    );
    assert_eq!(
        with(&[
            "--module",
            "/opt/x/libmeshstats.so",
            "--direction",
            "outbound"
        ]),
        expected_http("stats_outbound", Some("/opt/x/libmeshstats.so"))
    );
    assert_eq!(
        with(&["--module", "/m.so", "--root-id", "my_root"]),
        expected_http("my_root", Some("/m.so"))
    );
    // Neither: the listener's traffic_direction decides.
    assert_eq!(
        with(&["--module", "/m.so"]),
        expected_http("", Some("/m.so"))
    );

    // Without --module the name alone, and stderr says how Envoy then finds the file.
    let mut a = base.to_vec();
    a.extend(["--direction", "inbound"]);
    let out = meshstats(&a);
    assert!(out.status.success());
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, expected_http("stats_inbound", None));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "meshstats: no --module: start Envoy with ENVOY_DYNAMIC_MODULES_SEARCH_PATH=DIR, DIR holding libmeshstats.so\n"
    );
}

#[test]
fn network_filter_native_has_the_same_three_fields() {
    let config = config_file("native-network-filter");
    let printed = json_out(&[
        "render",
        "network-filter",
        "--build",
        "native",
        "--config",
        s(&config),
        "--module",
        "/m.so",
        "--direction",
        "inbound",
    ]);
    let mut want = expected_http("stats_inbound", Some("/m.so"));
    want["name"] = json!("envoy.filters.network.dynamic_modules");
    want["typed_config"]["@type"] = json!("type.googleapis.com/envoy.extensions.filters.network.dynamic_modules.v3.DynamicModuleNetworkFilter");
    assert_eq!(printed, want);
}

fn envoy_args<'a>(config: &'a str, node: &'a str, protocol: &'a str) -> Vec<&'a str> {
    vec![
        "render",
        "envoy",
        "--config",
        config,
        "--direction",
        "inbound",
        "--listen",
        "127.0.0.1:15006",
        "--upstream",
        "127.0.0.1:9080",
        "--admin",
        "127.0.0.1:15000",
        "--node-metadata",
        node,
        "--root-id",
        "stats_inbound",
        "--protocol",
        protocol,
    ]
}

/// `render envoy --build native` puts exactly `render http-filter`'s entry before the router
/// (and `network-filter`'s before `tcp_proxy`), with the native stats_config, and tells on
/// stderr how to pass the node to the module.
#[test]
fn render_envoy_native_places_the_filter_entries_and_needs_no_stats_tags() {
    let config = config_file("native-envoy");
    let node = example("sidecar-node-metadata.json");
    let filter = |kind: &str| {
        json_out(&[
            "render",
            kind,
            "--build",
            "native",
            "--config",
            s(&config),
            "--module",
            "/m/libmeshstats.so",
            "--root-id",
            "stats_inbound",
        ])
    };
    let stats = json_out(&[
        "render",
        "stats-config",
        "--build",
        "native",
        "--config",
        s(&config),
    ]);
    assert_eq!(
        stats,
        json!({
            "use_all_default_tags": true,
            "histogram_bucket_settings": [{
                "match": { "safe_regex": { "regex": "^dynamicmodulescustom\\.istio_request_duration_milliseconds(\\..*)?$" } },
                "buckets": [1.0, 10.0, 100.0],
            }],
        })
    );

    let mut args = envoy_args(s(&config), s(&node), "http");
    args.extend(["--build", "native", "--module", "/m/libmeshstats.so"]);
    let out = meshstats(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let http: Value = serde_json::from_slice(&out.stdout).unwrap();
    let chain = &http["static_resources"]["listeners"][0]["filter_chains"][0]["filters"];
    let http_filters = chain[0]["typed_config"]["http_filters"].as_array().unwrap();
    assert_eq!(http_filters.len(), 2);
    assert_eq!(http_filters[0], filter("http-filter"));
    assert_eq!(http_filters[1]["name"], "envoy.filters.http.router");
    assert_eq!(http["stats_config"], stats);
    // Without it Envoy 1.40 prints `envoy_dynamicmodulescustom_istio_requests_total`.
    assert_eq!(
        http["layered_runtime"],
        json!({"layers": [{"name": "meshstats", "static_layer": {
            "envoy.reloadable_features.dynamic_modules_strip_custom_stat_prefix": true}}]})
    );

    // The node the Wasm build reads from the bootstrap, as environment variables.
    let stderr = String::from_utf8(out.stderr).unwrap();
    let metadata = stderr
        .split("MESHSTATS_NODE_METADATA='")
        .nth(1)
        .and_then(|r| r.split("' MESHSTATS_NODE_ID='").next())
        .unwrap_or_else(|| panic!("{stderr}"));
    let node_json: Value = serde_json::from_str(&std::fs::read_to_string(&node).unwrap()).unwrap();
    assert_eq!(serde_json::from_str::<Value>(metadata).unwrap(), node_json);
    assert!(stderr.contains(&format!(
        "MESHSTATS_NODE_ID='{}' envoy -c FILE",
        http["node"]["id"].as_str().unwrap()
    )));

    // TCP is the Wasm network filter under either build (Envoy 1.40's network ABI has no
    // labelled metrics): --wasm is required, and the bootstrap is the Wasm build's.
    let mut args = envoy_args(s(&config), s(&node), "tcp");
    args.extend(["--build", "native", "--module", "/m/libmeshstats.so"]);
    let out = meshstats(&args);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .starts_with("meshstats: --wasm: required with --build native --protocol tcp"),
        "{out:?}"
    );
    args.extend(["--wasm", "/m/meshstats.wasm"]);
    let tcp = json_out(&args);
    let chain = tcp["static_resources"]["listeners"][0]["filter_chains"][0]["filters"]
        .as_array()
        .unwrap();
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[0]["name"], "envoy.filters.network.wasm");
    assert_eq!(
        chain[0]["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"],
        "/m/meshstats.wasm"
    );
    assert_eq!(chain[1]["name"], "envoy.filters.network.tcp_proxy");
    assert!(tcp.get("layered_runtime").is_none());

    // The Wasm build's bootstrap is untouched by the flag's existence.
    let mut args = envoy_args(s(&config), s(&node), "http");
    args.extend(["--wasm", "/m/meshstats.wasm"]);
    let wasm = json_out(&args);
    let wasm_filter = &wasm["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"]["http_filters"][0];
    assert_eq!(wasm_filter["name"], "envoy.filters.http.wasm");
    assert!(wasm["stats_config"]["stats_tags"].as_array().unwrap().len() >= 25);
}

/// The bucket matcher is matched against the stat's full name: Envoy joins a labelled
/// metric's tags to its name as `.name.value` pairs.
#[test]
fn native_bucket_regexes_match_labelled_names_only_of_their_metric() {
    let config = config_file("native-regex");
    let stats = json_out(&[
        "render",
        "stats-config",
        "--build",
        "native",
        "--config",
        s(&config),
    ]);
    let re = regex::Regex::new(
        stats["histogram_bucket_settings"][0]["match"]["safe_regex"]["regex"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    for name in [
        "dynamicmodulescustom.istio_request_duration_milliseconds",
        "dynamicmodulescustom.istio_request_duration_milliseconds.reporter.destination.response_code.200",
    ] {
        assert!(re.is_match(name), "{name}");
    }
    for name in [
        "dynamicmodulescustom.istio_request_duration_milliseconds_total",
        "wasmcustom.istio_request_duration_milliseconds",
        "dynamicmodulescustom.istio_request_bytes",
    ] {
        assert!(!re.is_match(name), "{name}");
    }
}

#[test]
fn native_flags_are_named_in_errors() {
    let config = config_file("native-errors");
    let node = example("sidecar-node-metadata.json");
    let mut a = envoy_args(s(&config), s(&node), "http");
    a.extend(["--build", "native", "--wasm", "x.wasm"]);
    assert_rejected(
        &a,
        "meshstats: --wasm: names the Wasm build's module, which --build native uses for --protocol tcp only; for HTTP give --module PATH",
    );
    let mut a = envoy_args(s(&config), s(&node), "http");
    a.extend(["--build", "native"]);
    assert_rejected(&a, "meshstats: --module: required with --build native");
    let mut a = envoy_args(s(&config), s(&node), "http");
    a.extend(["--build", "wasm"]);
    assert_rejected(&a, "meshstats: --wasm: required");
    assert_rejected(
        &["render", "http-filter", "--config", s(&config)],
        "meshstats: --module: required with --build wasm",
    );
    assert_rejected(
        &["render", "http-filter", "--build", "nativ"],
        "invalid value 'nativ' for '--build <BUILD>'",
    );
    assert_rejected(
        &["render", "envoyfilter", "--build", "native"],
        "meshstats: --module-path: required with --build native",
    );
    assert_rejected(
        &["render", "envoyfilter", "--module-path", "/m.so"],
        "meshstats: --module-path: is the native build's: add --build native",
    );
    assert_rejected(
        &["render", "proxy-config", "--build", "native"],
        "meshstats: --module-path: required with --build native",
    );
}

const MODULE_PATH: &str = "/var/local/lib/meshstats/libmeshstats.so";

/// The native `EnvoyFilter`: the Wasm one's patches, each HTTP value the dynamic-module
/// filter with the context's root id as `filter_name`, TCP the Wasm network filter.
#[test]
fn envoyfilter_native_patches_insert_the_dynamic_module() {
    let config = config_file("native-envoyfilter");
    let args = [
        "render",
        "envoyfilter",
        "--build",
        "native",
        "--module-path",
        MODULE_PATH,
        "--wasm-path",
        "/w.wasm",
        "--config",
        s(&config),
    ];
    let out = meshstats(&args);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "meshstats: the pods need the module mounted and its series kept: meshstats render proxy-config --build native --module-path PATH\n"
    );
    let native = yaml_docs(&String::from_utf8(out.stdout).unwrap()).remove(0);
    let wasm = yaml_docs(&render_ok(&[
        "render",
        "envoyfilter",
        "--wasm-path",
        "/w.wasm",
        "--config",
        s(&config),
    ]))
    .remove(0);
    let patches = native["spec"]["configPatches"].as_array().unwrap();
    let wasm_patches = wasm["spec"]["configPatches"].as_array().unwrap();
    assert_eq!(patches.len(), 5);
    let want_ids = [
        "stats_inbound",
        "stats_outbound",
        "stats_outbound",
        "stats_inbound",
        "stats_outbound",
    ];
    for ((p, w), id) in patches.iter().zip(wasm_patches).zip(want_ids) {
        assert_eq!(p["applyTo"], w["applyTo"]);
        assert_eq!(p["match"], w["match"]);
        assert_eq!(p["patch"]["operation"], "INSERT_BEFORE");
        if p["applyTo"] == "NETWORK_FILTER" {
            // TCP: the Wasm network filter under either build (docs/native.md).
            assert_eq!(p["patch"]["value"], w["patch"]["value"], "{id}");
            continue;
        }
        assert_eq!(
            p["patch"]["value"],
            expected_http(id, Some(MODULE_PATH)),
            "{id}"
        );
    }
    assert_eq!(native["metadata"], wasm["metadata"]);
}

/// The pod side: the module's directory mounted read-only into istio-proxy, Envoy's search
/// path, the series kept, the buckets under the native prefix; no extraStatTags.
#[test]
fn proxy_config_native_mounts_the_module() {
    let config = config_file("native-proxy-config");
    let annotations = |extra: &[&str]| {
        let mut a = vec![
            "render",
            "proxy-config",
            "--build",
            "native",
            "--module-path",
            MODULE_PATH,
            "--config",
            s(&config),
        ];
        a.extend(extra);
        yaml_docs(&render_ok(&a)).remove(0)["spec"]["template"]["metadata"]["annotations"].clone()
    };
    let host = annotations(&[]);
    let proxy: Value =
        serde_yaml_ng::from_str(host["proxy.istio.io/config"].as_str().unwrap()).unwrap();
    assert_eq!(
        proxy,
        json!({
            "proxyMetadata": { "ENVOY_DYNAMIC_MODULES_SEARCH_PATH": "/var/local/lib/meshstats" },
            "proxyStatsMatcher": { "inclusionPrefixes": ["dynamicmodulescustom."] },
            "runtimeValues": {
                "envoy.reloadable_features.dynamic_modules_strip_custom_stat_prefix": "true"
            },
        })
    );
    let parse = |v: &Value| serde_json::from_str::<Value>(v.as_str().unwrap()).unwrap();
    assert_eq!(
        parse(&host["sidecar.istio.io/userVolume"]),
        json!({ "meshstats-module": { "hostPath": { "path": "/var/local/lib/meshstats", "type": "Directory" } } })
    );
    assert_eq!(
        parse(&host["sidecar.istio.io/userVolumeMount"]),
        json!({ "meshstats-module": { "mountPath": "/var/local/lib/meshstats", "readOnly": true } })
    );
    assert_eq!(
        parse(&host["sidecar.istio.io/statsHistogramBuckets"]),
        json!({ "dynamicmodulescustom": [1.0, 10.0, 100.0] })
    );
    assert_eq!(host.as_object().unwrap().len(), 4, "{host}");

    let image = annotations(&[
        "--module-image",
        "registry.example.com/meshstats-native:0.1.0",
    ]);
    assert_eq!(
        parse(&image["sidecar.istio.io/userVolume"]),
        json!({ "meshstats-module": { "image": {
            "reference": "registry.example.com/meshstats-native:0.1.0", "pullPolicy": "IfNotPresent" } } })
    );
}

fn listener_with(name: &str, port: u16, filters: Vec<Value>) -> Value {
    json!({
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": filters}],
    })
}

/// The real Envoy, with the real module, accepts every native config the CLI renders.
#[test]
fn native_configs_validate_in_envoy() {
    let module = native_module();
    let dir = scratch_dir("native-validate");
    let config = example("customized.json");
    let node = example("sidecar-node-metadata.json");
    let wasm = meshstats_testkit::stand_in_filter(&dir);
    for protocol in ["http", "tcp"] {
        let mut args = envoy_args(s(&config), s(&node), protocol);
        args.extend(["--build", "native", "--module", s(&module)]);
        if protocol == "tcp" {
            args.extend(["--wasm", s(&wasm)]);
        }
        let bootstrap = json_out(&args);
        envoy_validate_json(&dir, &format!("envoy-{protocol}"), &bootstrap)
            .unwrap_or_else(|e| panic!("render envoy --build native --protocol {protocol}: {e}"));
    }

    // The EnvoyFilter's patch values, where the patches put them.
    let doc = yaml_docs(&render_ok(&[
        "render",
        "envoyfilter",
        "--build",
        "native",
        "--module-path",
        s(&module),
        "--wasm-path",
        s(&wasm),
        "--config",
        s(&config),
    ]))
    .remove(0);
    let router = json!({"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}});
    let mut listeners = Vec::new();
    for (i, p) in doc["spec"]["configPatches"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let value = p["patch"]["value"].clone();
        let port = 15300 + i as u16;
        let filters = if p["applyTo"] == "HTTP_FILTER" {
            vec![
                json!({"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": "h",
                    "route_config": {"virtual_hosts": [{"name": "a", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "app"}}]}]},
                    "http_filters": [value, router.clone()],
                }}),
            ]
        } else {
            vec![
                value,
                json!({"name": "envoy.filters.network.tcp_proxy", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                "stat_prefix": "t", "cluster": "app"}}),
            ]
        };
        listeners.push(listener_with(&format!("patch_{i}"), port, filters));
    }
    let stats = json_out(&[
        "render",
        "stats-config",
        "--build",
        "native",
        "--config",
        s(&config),
    ]);
    let bootstrap = json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "stats_config": stats,
        "static_resources": {
            "listeners": listeners,
            "clusters": [{"name": "app", "type": "STATIC", "connect_timeout": "1s", "load_assignment": {"cluster_name": "app",
                "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 9080}}}}]}]}}],
        },
    });
    envoy_validate_json(&dir, "envoyfilter-patches", &bootstrap)
        .unwrap_or_else(|e| panic!("the native EnvoyFilter's filters: {e}"));

    // A module file that does not exist is Envoy's error, not a silent fallback to the name.
    let mut args = envoy_args(s(&config), s(&node), "http");
    let missing = dir.join("missing/libmeshstats.so");
    args.extend(["--build", "native", "--module", s(&missing)]);
    let err = envoy_validate_json(&dir, "missing", &json_out(&args)).unwrap_err();
    assert!(err.contains("cannot open shared object file"), "{err}");
}
