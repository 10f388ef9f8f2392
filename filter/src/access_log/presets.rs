//! Predefined log variables (`logs[].preset`), as expressions over our attribute vocabulary.
//! docs/access-log-presets.md has both tables with how each field compares to its origin.

use crate::config::LogPreset;

/// The variables of a preset, sorted by name, and whether an absent value is written as
/// `null` (as Envoy's JSON access log does) rather than left out (as Mixer's stdio did).
pub fn variables(preset: LogPreset) -> (&'static [(&'static str, &'static str)], bool) {
    match preset {
        LogPreset::Istio => (ISTIO, true),
        LogPreset::Mixer => (MIXER, false),
    }
}

/// Istio's default JSON access log (`meshConfig.accessLogEncoding: JSON`), field names exactly
/// Istio's, each from the attribute Envoy's command operator reads:
/// `%START_TIME%`, `%REQ(:METHOD)%`, `%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%`, `%PROTOCOL%`,
/// `%RESPONSE_CODE%`, `%RESPONSE_FLAGS%`, `%RESPONSE_CODE_DETAILS%`,
/// `%CONNECTION_TERMINATION_DETAILS%`, `%BYTES_RECEIVED%`, `%BYTES_SENT%`, `%DURATION%` (ms),
/// `%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%`, `%REQ(X-FORWARDED-FOR)%`, `%REQ(USER-AGENT)%`,
/// `%REQ(X-REQUEST-ID)%`, `%REQ(:AUTHORITY)%`, `%UPSTREAM_HOST%`, `%UPSTREAM_CLUSTER_RAW%` (older
/// Istio: `%UPSTREAM_CLUSTER%`, which prints a cluster's `alt_stat_name` when it has one),
/// `%UPSTREAM_LOCAL_ADDRESS%`, `%DOWNSTREAM_LOCAL_ADDRESS%`, `%DOWNSTREAM_REMOTE_ADDRESS%`,
/// `%REQUESTED_SERVER_NAME%`, `%ROUTE_NAME%`, `%UPSTREAM_TRANSPORT_FAILURE_REASON%`.
/// Numbers stay numbers and the byte counts and code are 0 when absent, as in Envoy; other
/// absent values are `null`, as Envoy writes them. `start_time` has six fraction digits
/// where Envoy writes three, and `upstream_transport_failure_reason` keeps the spaces Envoy's
/// operator turns into `_`.
pub const ISTIO: &[(&str, &str)] = &[
    ("authority", "request.host"),
    ("bytes_received", "request.size | 0"),
    ("bytes_sent", "response.size | 0"),
    (
        "connection_termination_details",
        "connection.termination_details",
    ),
    ("downstream_local_address", "destination.address"),
    ("downstream_remote_address", "source.address"),
    ("duration", "int(request.duration) / 1000000"),
    ("method", "request.method"),
    (
        "path",
        "request.headers['x-envoy-original-path'] | request.path",
    ),
    ("protocol", "request.protocol"),
    ("request_id", "request.id"),
    ("requested_server_name", "connection.requested_server_name"),
    ("response_code", "response.code | 0"),
    ("response_code_details", "response.code_details"),
    ("response_flags", "response.flags_short"),
    ("route_name", "xds.route_name"),
    ("start_time", "request.time"),
    ("upstream_cluster", "xds.cluster_name"),
    ("upstream_host", "upstream.address"),
    ("upstream_local_address", "upstream.local_address"),
    (
        "upstream_service_time",
        "response.headers['x-envoy-upstream-service-time']",
    ),
    (
        "upstream_transport_failure_reason",
        "upstream.transport_failure_reason",
    ),
    ("user_agent", "request.useragent"),
    ("x_forwarded_for", "request.headers['x-forwarded-for']"),
];

/// Istio 1.0's default Mixer `accesslog` logentry (istio-1.0-default-telemetry.yaml), the
/// same variable names and, where our vocabulary has the attribute, the same expressions.
/// Changed:
/// - `apiClaims` (`request.auth.raw_claims`) is left out: Istio's authentication filter
///   handed it to Mixer directly, and it is no Envoy attribute a Wasm filter can read;
/// - `apiKey` drops `request.api_key`, which Mixer's proxy derived from the same header (or
///   a query parameter) and no Envoy attribute holds: `request.headers["x-api-key"] | ""`;
/// - `responseTimestamp` (`response.time`, no Envoy attribute) is `request.time +
///   response.duration`, the stream's end;
/// - `requestId` and `httpAuthority` read `request.id` and `request.host`, the attributes of
///   the same headers Mixer's expressions named, without another header read;
/// - `sourceIp`/`destinationIp` are the IPs of Envoy's `source.address`/`destination.address`
///   (`source.ip` drops the port, as Mixer's IP values had none).
///
/// The rest (severity `"Info"`, timestamp `request.time`) are the log's defaults anyway.
pub const MIXER: &[(&str, &str)] = &[
    ("apiKey", "request.headers['x-api-key'] | ''"),
    ("clientTraceId", "request.headers['x-client-trace-id'] | ''"),
    (
        "connection_security_policy",
        "conditional((context.reporter.kind | 'inbound') == 'outbound', 'unknown', conditional(connection.mtls | false, 'mutual_tls', 'none'))",
    ),
    ("destinationApp", "destination.labels['app'] | ''"),
    ("destinationIp", "destination.ip | '0.0.0.0'"),
    ("destinationName", "destination.name | ''"),
    ("destinationNamespace", "destination.namespace | ''"),
    ("destinationOwner", "destination.owner | ''"),
    ("destinationPrincipal", "destination.principal | ''"),
    ("destinationServiceHost", "destination.service.host | ''"),
    ("destinationWorkload", "destination.workload.name | ''"),
    ("httpAuthority", "request.host | ''"),
    ("latency", "response.duration | '0ms'"),
    ("method", "request.method | ''"),
    ("protocol", "request.scheme | context.protocol | 'http'"),
    ("receivedBytes", "request.total_size | 0"),
    ("referer", "request.referer | ''"),
    ("reporter", "conditional((context.reporter.kind | 'inbound') == 'outbound', 'source', 'destination')"),
    ("requestId", "request.id | ''"),
    ("requestSize", "request.size | 0"),
    ("responseCode", "response.code | 0"),
    ("responseSize", "response.size | 0"),
    ("responseTimestamp", "request.time + response.duration"),
    ("sentBytes", "response.total_size | 0"),
    ("sourceApp", "source.labels['app'] | ''"),
    ("sourceIp", "source.ip | '0.0.0.0'"),
    ("sourceName", "source.name | ''"),
    ("sourceNamespace", "source.namespace | ''"),
    ("sourceOwner", "source.owner | ''"),
    ("sourcePrincipal", "source.principal | ''"),
    ("sourceWorkload", "source.workload.name | ''"),
    ("url", "request.path | ''"),
    ("userAgent", "request.useragent | ''"),
    ("xForwardedFor", "request.headers['x-forwarded-for'] | '0.0.0.0'"),
];
