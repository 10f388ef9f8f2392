//! The exact shape of the rendered bootstrap, at the places the filter and Envoy read.

mod common;

use common::{cluster_metadata, endpoint_metadata, node_metadata, options, CONFIG_TEXT};
use meshstats_cli::{default_cluster_name, default_node_id, envoy_bootstrap, Direction};
use serde_json::{json, Value};

fn listener(b: &Value) -> &Value {
    let listeners = b["static_resources"]["listeners"].as_array().unwrap();
    assert_eq!(listeners.len(), 1);
    &listeners[0]
}

fn hcm(b: &Value) -> &Value {
    let filters = listener(b)["filter_chains"][0]["filters"]
        .as_array()
        .unwrap();
    assert_eq!(filters.len(), 1);
    assert_eq!(
        filters[0]["name"],
        "envoy.filters.network.http_connection_manager"
    );
    &filters[0]["typed_config"]
}

fn cluster(b: &Value) -> &Value {
    let clusters = b["static_resources"]["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 1);
    &clusters[0]
}

fn http_filter_names(b: &Value) -> Vec<&str> {
    hcm(b)["http_filters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect()
}

#[test]
fn inbound_sidecar() {
    let b = envoy_bootstrap(&options(Direction::Inbound));
    let l = listener(&b);
    assert_eq!(l["name"], "inbound_15006");
    assert_eq!(l["traffic_direction"], "INBOUND");
    assert_eq!(
        l["address"],
        json!({"socket_address": {"address": "127.0.0.1", "port_value": 15006}})
    );
    let h = hcm(&b);
    assert_eq!(h["stat_prefix"], "inbound_http");
    assert_eq!(h["codec_type"], "AUTO");
    assert_eq!(
        http_filter_names(&b),
        ["envoy.filters.http.wasm", "envoy.filters.http.router"]
    );

    let vhosts = h["route_config"]["virtual_hosts"].as_array().unwrap();
    assert_eq!(vhosts.len(), 1);
    assert_eq!(vhosts[0]["domains"], json!(["*"]));
    assert_eq!(
        vhosts[0]["routes"],
        json!([{"match": {"prefix": "/"}, "route": {"cluster": "inbound|9080||"}}])
    );
    assert!(vhosts[0].get("retry_policy").is_none());
    assert!(h.get("access_log").is_none());

    let c = cluster(&b);
    assert_eq!(c["name"], "inbound|9080||");
    assert_eq!(c["type"], "STATIC");
    assert_eq!(c["connect_timeout"], "1s");
    assert_eq!(c["load_assignment"]["cluster_name"], "inbound|9080||");
    let lb = &c["load_assignment"]["endpoints"][0]["lb_endpoints"];
    assert_eq!(
        lb,
        &json!([{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 9080}}}}])
    );
    assert!(c.get("metadata").is_none());

    assert_eq!(
        b["admin"]["address"]["socket_address"],
        json!({"address": "127.0.0.1", "port_value": 15000})
    );
}

#[test]
fn outbound_sidecar() {
    let b = envoy_bootstrap(&options(Direction::Outbound));
    assert_eq!(listener(&b)["name"], "outbound_15006");
    assert_eq!(listener(&b)["traffic_direction"], "OUTBOUND");
    assert_eq!(hcm(&b)["stat_prefix"], "outbound_http");
    assert_eq!(cluster(&b)["name"], "outbound|9080||127.0.0.1");
    let route = &hcm(&b)["route_config"]["virtual_hosts"][0]["routes"][0]["route"];
    assert_eq!(route, &json!({"cluster": "outbound|9080||127.0.0.1"}));
}

#[test]
fn wasm_filter_gets_the_config_text_verbatim() {
    let b = envoy_bootstrap(&options(Direction::Inbound));
    let wasm = &hcm(&b)["http_filters"][0]["typed_config"];
    assert_eq!(
        wasm["@type"],
        "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
    );
    assert_eq!(
        wasm["config"],
        json!({
            "name": "meshstats",
            "root_id": "stats_inbound",
            "failure_policy": "FAIL_RELOAD",
            "vm_config": {
                "vm_id": "meshstats",
                "runtime": "envoy.wasm.runtime.v8",
                "code": {"local": {"filename": "/opt/meshstats/meshstats.wasm"}},
            },
            "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": CONFIG_TEXT},
        })
    );
}

#[test]
fn metadata_goes_where_istiod_puts_it() {
    let mut opts = options(Direction::Outbound);
    opts.cluster_metadata = Some(cluster_metadata());
    opts.endpoint_metadata = Some(endpoint_metadata());
    let b = envoy_bootstrap(&opts);
    assert_eq!(b["node"]["metadata"], node_metadata());
    assert_eq!(b["node"]["cluster"], "default");
    assert_eq!(
        b["node"]["id"],
        "sidecar~127.0.0.1~productpage-v1-123.default~default.svc.cluster.local"
    );
    let c = cluster(&b);
    assert_eq!(
        c["metadata"],
        json!({"filter_metadata": cluster_metadata()})
    );
    let ep = &c["load_assignment"]["endpoints"][0]["lb_endpoints"][0];
    assert_eq!(
        ep["metadata"],
        json!({"filter_metadata": endpoint_metadata()})
    );
}

#[test]
fn bare_envoy_differs_only_by_the_filter() {
    let with = envoy_bootstrap(&options(Direction::Inbound));
    let mut opts = options(Direction::Inbound);
    opts.with_filter = false;
    opts.wasm_path = None;
    let mut bare = envoy_bootstrap(&opts);
    assert_eq!(http_filter_names(&bare), ["envoy.filters.http.router"]);
    assert_eq!(bare["stats_config"], with["stats_config"]);
    // Put the filter back by hand: nothing else may differ.
    let filter = with
        .pointer(
            "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/http_filters/0",
        )
        .unwrap()
        .clone();
    let filters = bare
        .pointer_mut(
            "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/http_filters",
        )
        .unwrap();
    filters.as_array_mut().unwrap().insert(0, filter);
    assert_eq!(bare, with);
}

#[test]
fn explicit_cluster_name_and_access_log() {
    let mut opts = options(Direction::Outbound);
    opts.cluster_name = Some("outbound|9080||ratings.default.svc.cluster.local".into());
    opts.debug_access_log = true;
    let b = envoy_bootstrap(&opts);
    assert_eq!(
        cluster(&b)["name"],
        "outbound|9080||ratings.default.svc.cluster.local"
    );
    assert_eq!(
        cluster(&b)["load_assignment"]["cluster_name"],
        "outbound|9080||ratings.default.svc.cluster.local"
    );
    assert_eq!(
        hcm(&b)["route_config"]["virtual_hosts"][0]["routes"][0]["route"]["cluster"],
        "outbound|9080||ratings.default.svc.cluster.local"
    );
    assert_eq!(
        hcm(&b)["access_log"],
        json!([{
            "name": "envoy.access_loggers.stderr",
            "typed_config": { "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StderrAccessLog" },
        }]),
        "the debugging log goes to stderr: stdout is for the filter's log entries"
    );
}

#[test]
fn defaults() {
    let upstream = "[::1]:8080".parse().unwrap();
    assert_eq!(
        default_cluster_name(Direction::Outbound, upstream),
        "outbound|8080||::1"
    );
    assert_eq!(
        default_cluster_name(Direction::Inbound, upstream),
        "inbound|8080||"
    );
    assert_eq!(
        default_node_id(&json!({})),
        "sidecar~127.0.0.1~meshstats.default~default.svc.cluster.local"
    );
    assert_eq!(
        default_node_id(&json!({"WORKLOAD_NAME": "ratings-v1", "NAMESPACE": "bookinfo"})),
        "sidecar~127.0.0.1~ratings-v1.bookinfo~bookinfo.svc.cluster.local"
    );
    let mut opts = options(Direction::Inbound);
    opts.node_metadata = json!({});
    assert_eq!(envoy_bootstrap(&opts)["node"]["cluster"], "default");
}
