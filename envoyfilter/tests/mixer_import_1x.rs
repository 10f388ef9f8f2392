//! `meshstats mixer import` on the shapes Istio 1.1–1.7 shipped and users wrote: fixtures of
//! our own in `tests/mixer/` (docs/migrating-from-mixer.md says which release files they
//! follow), through the built binary; every output also passes `meshstats validate`.

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;

struct Run {
    code: i32,
    stdout: String,
    stderr: Vec<String>,
}

fn run(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_meshstats"))
        .args(args)
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect(),
    }
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/mixer")
        .join(name)
}

fn scratch(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("meshstats-mixer-1x-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The configuration and the report; the configuration validates as it is.
fn import(name: &str) -> (Value, Vec<String>) {
    let path = fixture(name);
    let r = run(&["mixer", "import", path.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{:#?}", r.stderr);
    let config: Value = serde_json::from_str(&r.stdout).unwrap();
    let written = scratch(&format!("{name}.json"), &r.stdout);
    let v = run(&["validate", written.to_str().unwrap()]);
    assert_eq!((v.code, v.stderr), (0, vec![]), "{}", r.stdout);
    (config, r.stderr)
}

#[test]
fn istio_1_1_template_kinds_with_handler_kind_and_name_kind_refs() {
    let (config, stderr) = import("istio-1.1-mixed.yaml");
    let http = "context.protocol == \"http\" || context.protocol == \"grpc\"";
    assert_eq!(
        config,
        json!({
            "definitions": [{
                "name": "requests_total", "type": "COUNTER", "value": "1",
                "dimensions": {
                    "destination_service": "destination.service.host | \"unknown\"",
                    "reporter": "conditional((context.reporter.kind | \"inbound\") == \"outbound\", \"source\", \"destination\")",
                    "response_code": "response.code | 200",
                    "response_flags": "response.flags_short | \"-\"",
                },
            }],
            "logs": [{
                "name": "accesslog", "instance": "accesslog.logentry.istio-system", "match": http,
                "severity": "\"Info\"", "timestamp": "request.time",
                "variables": {"responseFlags": "response.flags_short | \"\"", "url": "request.path | \"\""},
            }],
            "metrics": [
                {"name": "requests_total", "match": http},
                {"name": "request_duration_milliseconds", "drop": true},
                {"name": "request_bytes", "drop": true},
                {"name": "response_bytes", "drop": true},
            ],
        })
    );
    assert_eq!(stderr, ["handler/istio-system/prometheus: metrics: defines requests_total in place of meshstats' standard metrics of those names; the standard request_duration_milliseconds, request_bytes, response_bytes, not defined here, dropped (`\"drop\": true` in metrics[]) so that only Mixer's metrics are emitted"]);
}

#[test]
fn template_and_adapter_fields_with_fully_qualified_refs() {
    let (config, stderr) = import("template-adapter-fqn.yaml");
    let grpc = "context.protocol == \"grpc\"";
    let workload = "destination.workload.name | \"unknown\"";
    assert_eq!(
        config,
        json!({
            "definitions": [
                {"name": "grpc_requests", "type": "COUNTER", "value": "1", "dimensions": {
                    "destination_workload": workload,
                    // Mixer's response.grpc_status was a string.
                    "grpc_response_status": "string(response.grpc_status) | \"\"",
                }},
                {"name": "response_size_total", "type": "COUNTER", "value": "response.size | 0",
                 "dimensions": {"destination_workload": workload}},
            ],
            "metrics": [
                {"name": "grpc_requests", "match": grpc},
                {"name": "response_size_total", "match": grpc},
            ],
        })
    );
    assert_eq!(stderr, ["handler/istio-system/prom: metrics[1] (response_size_total).instance_name: `bytes` is not bytes.instance.istio-system, the fully qualified name Mixer's prometheus handler matched instances by (it never recorded this metric); imported from bytes.instance.istio-system"]);
}

#[test]
fn short_refs_resolve_in_the_rules_namespace_and_unknown_ones_are_named() {
    let (config, stderr) = import("namespaced-refs.yaml");
    assert_eq!(
        config,
        json!({
            // reqs.instance.bookinfo (value 1), not the istio-system one (value 2).
            "definitions": [{"name": "bookinfo_requests", "type": "COUNTER", "value": "1",
                             "dimensions": {"response_code": "response.code | 200"}}],
            "metrics": [{"name": "bookinfo_requests", "match": "destination.service.namespace == \"bookinfo\""}],
        })
    );
    assert_eq!(
        stderr,
        [
            "instance/istio-system/reqs: not sent to a prometheus or stdio handler by any imported rule; not imported",
            "rule/bookinfo/bookinfo-requests: metadata.namespace: Mixer applied rules outside istio-system only to services of their namespace; the match adds `destination.service.namespace == \"bookinfo\"`",
            "rule/bookinfo/bookinfo-requests: actions[0].instances[1]: no instance `missing` in the input",
            "rule/bookinfo/bookinfo-requests: actions[1].handler: no handler `nosuch` in the input; the action is not imported",
        ]
    );
}

/// Labels Istio 1.2–1.4 exported (19 of 20: `permissive_response_code` ends with
/// `response_code`, which Envoy cannot tell apart, and is left out).
const LABELS_1_4: [&str; 19] = [
    "connection_security_policy",
    "destination_app",
    "destination_principal",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "destination_version",
    "destination_workload",
    "destination_workload_namespace",
    "permissive_response_policyid",
    "reporter",
    "request_protocol",
    "response_code",
    "response_flags",
    "source_app",
    "source_principal",
    "source_version",
    "source_workload",
    "source_workload_namespace",
];

#[test]
fn istio_1_4_default_telemetry() {
    let (config, stderr) = import("istio-1.4-default-telemetry.yaml");
    let defs = config["definitions"].as_array().unwrap();
    let summary: Vec<(&str, &str, &str)> = defs
        .iter()
        .map(|d| {
            let s = |k: &str| d[k].as_str().unwrap();
            (s("name"), s("type"), s("value"))
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("requests_total", "COUNTER", "1"),
            (
                "request_duration_seconds",
                "HISTOGRAM",
                "int(response.duration | \"0ms\") / 1000000"
            ),
            ("request_bytes", "HISTOGRAM", "request.size | 0"),
            ("response_bytes", "HISTOGRAM", "response.size | 0"),
        ]
    );
    for d in defs {
        let labels: Vec<&str> = d["dimensions"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(labels, LABELS_1_4, "{}", d["name"]);
        let dim = |k: &str| d["dimensions"][k].as_str().unwrap();
        assert_eq!(dim("response_flags"), "response.flags_short | \"-\"");
        assert_eq!(dim("request_protocol"), "context.protocol | \"unknown\"");
        assert_eq!(dim("permissive_response_policyid"), "\"none\"");
        assert_eq!(dim("destination_service"), "destination.service.host | conditional((destination.service.name | \"unknown\") == \"unknown\", \"unknown\", request.host)");
        assert_eq!(dim("connection_security_policy"), "conditional((context.reporter.kind | \"inbound\") == \"outbound\", \"unknown\", conditional(connection.mtls | false, \"mutual_tls\", \"none\"))");
    }
    // Each standard TCP metric with exactly Mixer's 16 labels, from Mixer's expressions.
    let unknown = |attr: &str| format!("{attr} | \"unknown\"");
    let tcp_dims = json!({
        "connection_security_policy": "conditional((context.reporter.kind | \"inbound\") == \"outbound\", \"unknown\", conditional(connection.mtls | false, \"mutual_tls\", \"none\"))",
        "destination_app": unknown("destination.labels[\"app\"]"),
        "destination_principal": unknown("destination.principal"),
        "destination_service": unknown("destination.service.host"),
        "destination_service_name": unknown("destination.service.name"),
        "destination_service_namespace": unknown("destination.service.namespace"),
        "destination_version": unknown("destination.labels[\"version\"]"),
        "destination_workload": unknown("destination.workload.name"),
        "destination_workload_namespace": unknown("destination.workload.namespace"),
        "reporter": "conditional((context.reporter.kind | \"inbound\") == \"outbound\", \"source\", \"destination\")",
        "response_flags": "response.flags_short | \"-\"",
        "source_app": unknown("source.labels[\"app\"]"),
        "source_principal": unknown("source.principal"),
        "source_version": unknown("source.labels[\"version\"]"),
        "source_workload": unknown("source.workload.name"),
        "source_workload_namespace": unknown("source.workload.namespace"),
    });
    let not_mixers = [
        "source_canonical_service",
        "source_canonical_revision",
        "source_cluster",
        "destination_canonical_service",
        "destination_canonical_revision",
        "destination_cluster",
        "request_protocol",
    ];
    let tcp =
        |name: &str| json!({"name": name, "tags_to_remove": not_mixers, "dimensions": tcp_dims});
    let promhttp = "(context.protocol == \"http\" || context.protocol == \"grpc\") && (match((request.useragent | \"-\"), \"kube-probe*\") == false) && (match((request.useragent | \"-\"), \"Prometheus*\") == false)";
    assert_eq!(
        config["metrics"],
        json!([
            {"name": "requests_total", "match": promhttp},
            {"name": "request_duration_seconds", "match": promhttp},
            {"name": "request_bytes", "match": promhttp},
            {"name": "response_bytes", "match": promhttp},
            tcp("tcp_sent_bytes_total"),
            tcp("tcp_received_bytes_total"),
            tcp("tcp_connections_opened_total"),
            tcp("tcp_connections_closed_total"),
            {"name": "request_duration_milliseconds", "drop": true},
        ])
    );
    let logs = config["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 1, "tcpaccesslog is TCP only: {logs:?}");
    let vars: Vec<&str> = logs[0]["variables"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        vars,
        [
            "apiKey",
            "connection_security_policy",
            "destinationServiceHost",
            "destinationWorkload",
            "latency",
            "method",
            "protocol",
            "reporter",
            "requestSize",
            "responseCode",
            "responseFlags",
            "responseSize",
            "sourceIp",
            "sourceWorkload",
            "url",
            "userAgent"
        ]
    );
    assert_eq!(logs[0]["instance"], "accesslog.instance.istio-system");
    assert_eq!(
        logs[0]["variables"]["responseFlags"],
        "response.flags_short | \"\""
    );
    assert_eq!(logs[0]["variables"]["sourceIp"], "source.ip | \"0.0.0.0\"");

    let absent = |res: &str, field: &str, attr: &str, now: &str| {
        format!("instance/istio-system/{res}: {field}: attribute `{attr}` is not available in the filter (docs/attributes.md); treated as absent, as Mixer did when nothing supplied it: `{now}`")
    };
    let tcp_rule = "holds for TCP connections only: what it sends to a prometheus handler shapes the filter's standard istio_tcp_* metrics (metrics[]), the rest is not imported (see their lines)";
    let event = |rule: &str, e: &str| {
        let m = format!("context.protocol == \"tcp\" && ((connection.event | \"na\") == \"{e}\")");
        format!("rule/istio-system/{rule}: match: `{m}` {tcp_rule}")
    };
    let mut want = vec![
        "attributemanifest/istio-system/kubernetes: Mixer's attribute vocabulary; the filter has its own, fixed one (docs/attributes.md); not imported".to_string(),
        absent("accesslog", "variables.apiKey", "request.api_key", "request.headers[\"x-api-key\"] | \"\""),
        "instance/istio-system/tcpaccesslog: only rule stdiotcp sends it, for TCP connections only: the filter writes log entries (logs[]) at the end of HTTP requests only, a TCP connection's reports record metrics and no log entry (docs/access-logs.md, docs/tcp.md); not imported".to_string(),
        format!("rule/istio-system/stdiotcp: match: `context.protocol == \"tcp\"` {tcp_rule}"),
    ];
    for m in [
        "requestcount",
        "requestduration",
        "requestsize",
        "responsesize",
    ] {
        want.push(absent(
            m,
            "dimensions.request_protocol",
            "api.protocol",
            "context.protocol | \"unknown\"",
        ));
        want.push(absent(
            m,
            "dimensions.permissive_response_code",
            "rbac.permissive.response_code",
            "\"none\"",
        ));
        want.push(absent(
            m,
            "dimensions.permissive_response_policyid",
            "rbac.permissive.effective_policy_id",
            "\"none\"",
        ));
    }
    want.extend([
        "handler/istio-system/prometheus: metricsExpirationPolicy: not carried over: Envoy keeps a series until it restarts".to_string(),
        "handler/istio-system/prometheus: metrics[1] (request_duration_seconds).value: `response.duration | \"0ms\"` is a duration, which Mixer exported in seconds; Envoy records integers, so the value is in milliseconds (`int(response.duration | \"0ms\") / 1000000`), and the bucket bounds ×1000: divide by 1000 in queries that expect seconds".to_string(),
        "handler/istio-system/prometheus: metrics: for TCP connections, gives the standard tcp_sent_bytes_total, tcp_received_bytes_total, tcp_connections_opened_total, tcp_connections_closed_total Mixer's labels (metrics[])".to_string(),
        "handler/istio-system/prometheus: metrics: defines requests_total, request_bytes, response_bytes in place of meshstats' standard metrics of those names; the standard request_duration_milliseconds, not defined here, dropped (`\"drop\": true` in metrics[]) so that only Mixer's metrics are emitted".to_string(),
        format!("rule/istio-system/promtcp: match: `context.protocol == \"tcp\"` {tcp_rule}"),
        event("promtcpconnectionopen", "open"),
        event("promtcpconnectionclosed", "close"),
    ]);
    want.extend([
        "handler/istio-system/kubernetesenv: adapter kubernetesenv filled workload attributes from the Kubernetes API; a sidecar knows its own workload from its node metadata and its peer's from metadata exchange (docs/attributes.md); not imported".to_string(),
        "rule/istio-system/kubeattrgenrulerule: actions[0]: sends to handler/istio-system/kubernetesenv, which is not imported (see its line); the action is not imported".to_string(),
        "instance/istio-system/attributes: template kubernetes fed the kubernetesenv adapter's attribute generation, which a sidecar does itself (docs/attributes.md); not imported".to_string(),
    ]);
    for i in 0..4 {
        want.push(format!("meshstats: definitions[{i}].dimensions.permissive_response_code: label \"permissive_response_code\" ends with the label `response_code`, which Envoy's tag extraction cannot tell apart; left out, keeping `response_code`"));
    }
    assert_eq!(stderr, want);
}

#[test]
fn both_generations_in_one_input() {
    // 1.0's v1alpha2 kinds next to the 1.x ones: each rule reaches its own.
    let old = std::fs::read_to_string(fixture("istio-1.1-mixed.yaml")).unwrap();
    let new = std::fs::read_to_string(fixture("template-adapter-fqn.yaml")).unwrap();
    let path = scratch("mixed.yaml", &format!("{old}\n---\n{new}"));
    let r = run(&["mixer", "import", path.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{:#?}", r.stderr);
    let config: Value = serde_json::from_str(&r.stdout).unwrap();
    let names: Vec<&str> = config["definitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["requests_total", "grpc_requests", "response_size_total"]
    );
    assert_eq!(config["logs"][0]["name"], "accesslog");
}

#[test]
fn an_unrendered_helm_template_is_refused_naming_the_line() {
    let template = "# Istio 1.6's chart\napiVersion: \"config.istio.io/v1alpha2\"\nkind: instance\nmetadata:\n  name: requestcount\n  namespace: {{ .Release.Namespace }}\nspec:\n  compiledTemplate: metric\n---\n{{- if .Values.mixer.adapters.prometheus.enabled }}\n";
    let path = scratch("chart.yaml", template);
    let r = run(&["mixer", "import", path.to_str().unwrap()]);
    assert_eq!((r.code, r.stdout.as_str()), (1, ""));
    assert_eq!(
        r.stderr,
        [format!("meshstats: {}: a Helm template, not rendered YAML: line 6 has `{{{{ .Release.Namespace }}}}` (2 such lines); render the chart first (`helm template`, or `istioctl manifest generate`) and import its output", path.display())]
    );
}

#[test]
fn tcp_metrics_the_standard_ones_cannot_carry_say_why() {
    let (config, stderr) = import("tcp-shapes.yaml");
    let mut remove: Vec<&str> = meshstats_filter::labels::STANDARD_LABELS[..23].to_vec();
    remove.retain(|l| *l != "reporter");
    assert_eq!(
        config,
        json!({"metrics": [
            {"name": "tcp_sent_bytes_total", "tags_to_remove": remove, "dimensions": {
                "reporter": "conditional((context.reporter.kind | \"inbound\") == \"outbound\", \"source\", \"destination\")",
                "destination_port": "destination.port | 0"}},
            {"name": "tcp_connections_opened_total", "drop": true},
            {"name": "tcp_connections_closed_total", "drop": true},
            {"name": "tcp_received_bytes_total", "drop": true},
        ]})
    );
    let only = |i: usize, name: &str, rule: &str, inst: &str| {
        format!("handler/istio-system/prom: metrics[{i}] ({name}): only rule {rule} sends {inst}.instance.istio-system here, for TCP connections only")
    };
    let tcp = "holds for TCP connections only: what it sends to a prometheus handler shapes the filter's standard istio_tcp_* metrics (metrics[]), the rest is not imported (see their lines)";
    let postgres = "context.protocol == \"tcp\" && destination.port == 5432";
    assert_eq!(
        stderr,
        [
            format!("{}: the filter records TCP connections in its standard metrics only, which metrics[] can reshape but not add to, and tcp_bytes_in is none of them (tcp_sent_bytes_total, tcp_received_bytes_total, tcp_connections_opened_total, tcp_connections_closed_total); not imported", only(1, "tcp_bytes_in", "tcp", "received")),
            format!("{}: value `connection.sent.bytes | 0` is not what the standard tcp_received_bytes_total counts (`connection.received.bytes`); not imported", only(2, "tcp_received_bytes_total", "tcp", "sent")),
            format!("{}: rule postgres's match `{postgres}` is not one the filter can apply per TCP connection; not imported", only(3, "tcp_connections_opened_total", "postgres", "opened")),
            "handler/istio-system/prom: metrics: for TCP connections, gives the standard tcp_sent_bytes_total Mixer's labels (metrics[]); the standard tcp_connections_opened_total, tcp_connections_closed_total, tcp_received_bytes_total, not defined here, dropped so that only Mixer's TCP metrics are emitted".to_string(),
            format!("rule/istio-system/tcp: match: `context.protocol == \"tcp\"` {tcp}"),
            format!("rule/istio-system/postgres: match: `{postgres}` never holds for an HTTP request, and is not a match the filter can apply per TCP connection (`context.protocol == \"tcp\"`, optionally `&& (connection.event | \"na\") == \"open\"` or `\"close\"`); the rule is not imported"),
        ]
    );
}
