//! `meshstats render envoyfilter`: its patches cover every context with the direction's root
//! ids, carry exactly `render envoy`'s HTTP filter, and (placed where the patches put them,
//! with Istio's bootstrap around them) are accepted by a real Envoy.

mod common;

use common::{assert_rejected, example, render_ok, s, scratch_dir, yaml_docs};
use meshstats_cli::render::access_log::stdout_logger;
use meshstats_cli::render::istio::{self, http_wasm_filter, istio_builtin_tags, WasmCode};
use meshstats_cli::{envoy_bootstrap, stats_config, Direction};
use meshstats_filter::config::PluginConfig;
use meshstats_filter::stat_name::tag_regex;
use meshstats_testkit::{envoy_validate_json, stand_in_filter};
use serde_json::{json, Value};

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
            assert_eq!(config["failure_policy"], "FAIL_RELOAD");
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
        assert_rejected(&full, expected);
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
    let stand_in = stand_in_filter(&dir);
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
    envoy_validate_json(&dir, "envoyfilter", &bootstrap).unwrap();

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
    envoy_validate_json(&dir, "istio-bootstrap", &bootstrap).unwrap();
    let err = envoy_validate_json(&dir, "negative", &json!({"stats_config": {"histogram_bucket_settings": [{"match": {"prefx": "x"}, "buckets": [1]}]}})).unwrap_err();
    assert!(err.contains("prefx"), "{err}");
}
