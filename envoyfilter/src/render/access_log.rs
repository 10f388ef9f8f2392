//! The HTTP connection manager `access_log` list that prints the filter's JSON log entries
//! (`logs[]`) on Envoy's stdout, one line each (docs/access-logs.md).
//!
//! In its `on_log` the filter sets one property, `meshstats_log`: every entry that matched
//! the request, joined by `\n`, and nothing at all when none did. Envoy keeps a property a
//! Wasm filter sets as the filter state object `wasm.<name>`, whose `PLAIN` serialization
//! is the bytes the filter wrote. The access loggers of the connection manager run after
//! the filters' own `on_log`, so the stdout logger below sees the property of the request it
//! logs. Its CEL filter skips requests without one: they print nothing, not an empty line
//! and not Envoy's `-` for an absent value.

use meshstats_filter::config::{LogDelivery, PluginConfig};
use serde_json::{json, Value};

/// The property the filter sets: `meshstats_log`.
pub use meshstats_filter::access_log::LOG_PROPERTY;

/// The filter state key under which Envoy keeps [`LOG_PROPERTY`]: a Wasm filter's
/// `set_property(name)` writes `wasm.<name>`.
pub fn filter_state_key() -> String {
    format!("wasm.{LOG_PROPERTY}")
}

/// The format of each stdout line: the property as written, then a newline. Entries of one
/// request are already separated by `\n` inside the value.
pub fn log_format() -> String {
    format!("%FILTER_STATE({}:PLAIN)%\n", filter_state_key())
}

/// The CEL expression that lets only requests with entries reach the logger. CEL sees the
/// value as `bytes`; a key that is absent is not `in` the map. The filter never sets an
/// empty value, and an empty one would print an empty line, so it is excluded too.
pub fn log_filter_expression() -> String {
    let key = filter_state_key();
    format!("'{key}' in filter_state && size(filter_state['{key}']) > 0")
}

/// The `access_log` list for `config`: the stdout logger when the filter has log entries to
/// deliver through filter state, else nothing (no `logs`, or `log_delivery: proxy_log`,
/// which writes entries into Envoy's own log instead).
pub fn access_log(config: &PluginConfig) -> Value {
    Value::Array(access_loggers(config))
}

/// [`access_log`]'s entries, for building a connection manager.
pub fn access_loggers(config: &PluginConfig) -> Vec<Value> {
    if has_filter_state_logs(config) {
        vec![stdout_logger()]
    } else {
        Vec::new()
    }
}

/// The logger itself, whatever the configuration.
pub fn stdout_logger() -> Value {
    json!({
        "name": "envoy.access_loggers.stdout",
        "filter": {
            "extension_filter": {
                "name": "envoy.access_loggers.extension_filters.cel",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter",
                    "expression": log_filter_expression(),
                },
            },
        },
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
            "log_format": { "text_format_source": { "inline_string": log_format() } },
        },
    })
}

/// Whether the configuration has log entries for an access logger to print (the filter
/// state delivery); `render access-log` prints `[]` otherwise.
pub fn has_filter_state_logs(config: &PluginConfig) -> bool {
    !config.logs.is_empty() && config.log_delivery == LogDelivery::FilterState
}
