//! The access logger that prints the filter's JSON log entries: its exact shape, when it is
//! rendered, and where `render envoy` puts it.

mod common;

use common::{example, options};
use meshstats_cli::render::access_log::{access_loggers, log_filter_expression, log_format};
use meshstats_cli::{access_log, envoy_bootstrap, Direction};
use meshstats_filter::config::PluginConfig;
use serde_json::{json, Value};

fn config(text: &str) -> PluginConfig {
    PluginConfig::parse(text).unwrap()
}

fn example_config(name: &str) -> PluginConfig {
    config(&std::fs::read_to_string(example(name)).unwrap())
}

fn hcm(b: &Value) -> &Value {
    &b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
}

/// The whole logger, spelled out: a change to it is a change to what users deploy.
fn expected_logger() -> Value {
    json!({
        "name": "envoy.access_loggers.stdout",
        "filter": {
            "extension_filter": {
                "name": "envoy.access_loggers.extension_filters.cel",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter",
                    "expression": "'wasm.meshstats_log' in filter_state && size(filter_state['wasm.meshstats_log']) > 0",
                },
            },
        },
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
            "log_format": { "text_format_source": { "inline_string": "%FILTER_STATE(wasm.meshstats_log:PLAIN)%\n" } },
        },
    })
}

#[test]
fn configs_with_logs_get_the_stdout_logger() {
    assert_eq!(
        access_log(&example_config("new-log.json")),
        json!([expected_logger()])
    );
    assert_eq!(
        access_log(&example_config("istio-access-log.json")),
        json!([expected_logger()])
    );
    assert_eq!(
        access_log(&config(
            r#"{"logs": [{"name": "a"}], "log_delivery": "filter_state"}"#
        )),
        json!([expected_logger()])
    );
    assert_eq!(log_format(), "%FILTER_STATE(wasm.meshstats_log:PLAIN)%\n");
    assert!(log_filter_expression().contains("'wasm.meshstats_log' in filter_state"));
}

#[test]
fn nothing_to_print_renders_an_empty_list() {
    for text in [
        "{}",
        r#"{"logs": []}"#,
        r#"{"logs": [{"name": "a"}], "log_delivery": "proxy_log"}"#,
        r#"{"logs": [{"name": "a"}], "logDelivery": "proxy_log"}"#,
    ] {
        assert_eq!(access_log(&config(text)), json!([]), "{text}");
        assert!(access_loggers(&config(text)).is_empty());
    }
    for name in [
        "default.json",
        "customized.json",
        "double-request-count.json",
    ] {
        assert_eq!(access_log(&example_config(name)), json!([]), "{name}");
    }
}

#[test]
fn bootstrap_carries_the_logger_before_the_debug_log() {
    let mut opts = options(Direction::Inbound);
    assert!(
        hcm(&envoy_bootstrap(&opts)).get("access_log").is_none(),
        "no logs, no access_log"
    );

    opts.access_log = access_loggers(&example_config("new-log.json"));
    assert_eq!(
        hcm(&envoy_bootstrap(&opts))["access_log"],
        json!([expected_logger()])
    );

    opts.debug_access_log = true;
    let logs = hcm(&envoy_bootstrap(&opts))["access_log"].clone();
    assert_eq!(logs[0], expected_logger());
    assert_eq!(logs[1]["name"], "envoy.access_loggers.stderr");
    assert_eq!(logs.as_array().unwrap().len(), 2);

    // A bare Envoy keeps it: the two setups differ only by the filter.
    opts.with_filter = false;
    assert_eq!(
        hcm(&envoy_bootstrap(&opts))["access_log"][0],
        expected_logger()
    );
}
