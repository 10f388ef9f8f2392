//! The `Telemetry` resource and the access log provider it turns on, which print the
//! filter's access log entries.

use super::resource::{resource, Scope};
use crate::render::access_log::{log_filter_expression, log_format};
use serde_json::{json, Map, Value};

/// `v1` is served from Istio 1.22 on (same schema as `v1alpha1`, which older releases serve).
pub const TELEMETRY_API_VERSION: &str = "telemetry.istio.io/v1";

/// The access log provider, for `meshConfig.extensionProviders`: Envoy's file access log on
/// the proxy's stdout with the format `render access-log` uses. Istio's provider has no
/// filter; the `Telemetry` resource's `filter.expression` carries it.
pub fn access_log_provider(name: &str) -> Value {
    json!({
        "name": name,
        "envoyFileAccessLog": {
            "path": "/dev/stdout",
            "logFormat": { "text": log_format() },
        },
    })
}

/// What `render telemetry` renders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryOptions {
    pub name: String,
    pub namespace: String,
    pub scope: Scope,
    /// The `extensionProviders` entry's name.
    pub provider: String,
}

/// The `Telemetry` resource that turns the provider on, with the CEL filter `render
/// access-log` puts on its logger: requests without entries print nothing.
pub fn telemetry(opts: &TelemetryOptions) -> Value {
    let mut spec = Map::new();
    spec.insert(
        "accessLogging".into(),
        json!([{
            "providers": [{ "name": opts.provider }],
            "filter": { "expression": log_filter_expression() },
        }]),
    );
    opts.scope.apply(&mut spec, "selector", "matchLabels");
    resource(
        TELEMETRY_API_VERSION,
        "Telemetry",
        &opts.name,
        &opts.namespace,
        Value::Object(spec),
    )
}
