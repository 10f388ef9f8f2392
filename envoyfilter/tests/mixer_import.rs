//! `meshstats mixer import`: Istio 1.0's own Mixer configurations (`../shared/mixer-configs`)
//! and the 1.1+ `instance`/`handler` forms, through the built binary, and its output through
//! `meshstats validate`.

use meshstats_testkit::{shared_dir, workspace_root, MIXER_HTTP_LABELS, MIXER_TCP_LABELS};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Why a `tcpaccesslog` is not imported.
const TCP_LOG: &str = "the filter writes log entries (logs[]) at the end of HTTP requests only, a TCP connection's reports record metrics and no log entry (docs/access-logs.md, docs/tcp.md); not imported";

/// Istio 1.0's TCP metric dimension of `label`, as imported (1.0 read `destination_service`
/// from `destination.service.name`, as written here).
fn mixer_tcp_dimension(label: &str) -> String {
    let attr = match label {
        "reporter" => return "conditional((context.reporter.kind | \"inbound\") == \"outbound\", \"source\", \"destination\")".into(),
        "connection_security_policy" => return "conditional((context.reporter.kind | \"inbound\") == \"outbound\", \"unknown\", conditional(connection.mtls | false, \"mutual_tls\", \"none\"))".into(),
        "source_app" => "source.labels[\"app\"]",
        "source_principal" => "source.principal",
        "source_workload" => "source.workload.name",
        "source_workload_namespace" => "source.workload.namespace",
        "source_version" => "source.labels[\"version\"]",
        "destination_app" => "destination.labels[\"app\"]",
        "destination_principal" => "destination.principal",
        "destination_workload" => "destination.workload.name",
        "destination_workload_namespace" => "destination.workload.namespace",
        "destination_version" => "destination.labels[\"version\"]",
        "destination_service" | "destination_service_name" => "destination.service.name",
        "destination_service_namespace" => "destination.service.namespace",
        other => panic!("not a Mixer TCP label: {other}"),
    };
    format!("{attr} | \"unknown\"")
}

fn mixer_config(name: &str) -> PathBuf {
    shared_dir("mixer-configs").join(name)
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn meshstats(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_meshstats"))
        .args(args)
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn temp(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("meshstats-mixer-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Imports, checks exit 0 and that `meshstats validate` accepts the output as it is.
fn import(paths: &[&Path]) -> (Value, Vec<String>) {
    let args: Vec<&str> = ["mixer", "import"]
        .into_iter()
        .chain(paths.iter().map(|p| p.to_str().unwrap()))
        .collect();
    let run = meshstats(&args);
    assert_eq!(run.code, 0, "stderr:\n{}", run.stderr);
    let config: Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}:\n{}", run.stdout));
    let name = format!("{}.json", paths[0].file_stem().unwrap().to_str().unwrap());
    let written = temp(&name, &run.stdout);
    let v = meshstats(&["validate", written.to_str().unwrap()]);
    assert_eq!(
        (v.code, v.stderr.as_str()),
        (0, ""),
        "validate:\n{}",
        run.stdout
    );
    (config, run.stderr.lines().map(str::to_string).collect())
}

fn example(name: &str) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("envoyfilter/examples").join(name)).unwrap(),
    )
    .unwrap()
}

#[test]
fn double_request_count_task_is_the_example() {
    let (config, warnings) = import(&[&mixer_config("istio-1.0-task-double-request-count.yaml")]);
    assert_eq!(config, example("double-request-count.json"));
    assert_eq!(warnings, Vec::<String>::new());
}

#[test]
fn new_log_task_is_the_example() {
    let (config, warnings) = import(&[&mixer_config("istio-1.0-task-new-log.yaml")]);
    assert_eq!(config, example("new-log.json"));
    assert_eq!(warnings, Vec::<String>::new());
}

#[test]
fn istio_1_0_default_telemetry() {
    let (config, warnings) = import(&[&mixer_config("istio-1.0-default-telemetry.yaml")]);
    let defs = config["definitions"].as_array().unwrap();
    let summary: Vec<(&str, &str)> = defs
        .iter()
        .map(|d| (d["name"].as_str().unwrap(), d["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        summary,
        [
            ("requests_total", "COUNTER"),
            ("request_duration_seconds", "HISTOGRAM"),
            ("request_bytes", "HISTOGRAM"),
            ("response_bytes", "HISTOGRAM")
        ]
    );
    let mut want_labels: Vec<&str> = MIXER_HTTP_LABELS.to_vec();
    want_labels.sort();
    for d in defs {
        let labels: Vec<&str> = d["dimensions"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(labels, want_labels, "{}", d["name"]);
        assert_eq!(
            d["dimensions"]["request_protocol"],
            "context.protocol | \"unknown\""
        );
        assert_eq!(d["dimensions"]["reporter"], "conditional((context.reporter.kind | \"inbound\") == \"outbound\", \"source\", \"destination\")");
        assert_eq!(d["dimensions"]["response_code"], "response.code | 200");
        assert!(d.get("metric_name").is_none());
    }
    let by_name = |n: &str| defs.iter().find(|d| d["name"] == n).unwrap();
    assert_eq!(by_name("requests_total")["value"], "1");
    assert_eq!(
        by_name("request_duration_seconds")["value"],
        "int(response.duration | \"0ms\") / 1000000"
    );
    assert_eq!(
        by_name("request_duration_seconds")["buckets"],
        json!({"explicit_buckets": {"bounds": [5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0]}})
    );
    // Mixer's handler made 8 + 1 bounds: 1, 10, … 1e8.
    let exp = json!({"exponential_buckets": {"num_finite_buckets": 9, "growth_factor": 10.0, "scale": 1.0}});
    assert_eq!(by_name("request_bytes")["buckets"], exp);
    assert_eq!(by_name("response_bytes")["buckets"], exp);
    assert_eq!(by_name("request_bytes")["value"], "request.size | 0");
    assert!(by_name("requests_total").get("buckets").is_none());

    let http = "context.protocol == \"http\" || context.protocol == \"grpc\"";
    // The standard TCP metrics with exactly Mixer's labels, each from Mixer's expression.
    let mut tcp_dims = serde_json::Map::new();
    for label in MIXER_TCP_LABELS {
        let src = mixer_tcp_dimension(label);
        tcp_dims.insert(label.into(), Value::String(src));
    }
    let not_mixers = [
        "source_canonical_service",
        "source_canonical_revision",
        "source_cluster",
        "destination_canonical_service",
        "destination_canonical_revision",
        "destination_cluster",
        "request_protocol",
        "response_flags",
    ];
    assert_eq!(
        config["metrics"],
        json!([
            {"name": "requests_total", "match": http},
            {"name": "request_duration_seconds", "match": http},
            {"name": "request_bytes", "match": http},
            {"name": "response_bytes", "match": http},
            {"name": "tcp_sent_bytes_total", "tags_to_remove": not_mixers, "dimensions": tcp_dims},
            {"name": "tcp_received_bytes_total", "tags_to_remove": not_mixers, "dimensions": tcp_dims},
            {"name": "tcp_connections_opened_total", "drop": true},
            {"name": "tcp_connections_closed_total", "drop": true},
            {"name": "request_duration_milliseconds", "drop": true},
        ])
    );

    let logs = config["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 1, "tcpaccesslog is TCP only: {logs:?}");
    let log = &logs[0];
    assert_eq!(
        (log["name"].as_str(), log["instance"].as_str()),
        (Some("accesslog"), Some("accesslog.logentry.istio-system"))
    );
    assert_eq!(
        (
            log["match"].as_str(),
            log["severity"].as_str(),
            log["timestamp"].as_str()
        ),
        (Some(http), Some("\"Info\""), Some("request.time"))
    );
    let vars = log["variables"].as_object().unwrap();
    assert_eq!(vars.len(), 35, "every variable of the logentry: {vars:?}");
    assert_eq!(vars["sourceIp"], "source.ip | \"0.0.0.0\"");
    assert_eq!(vars["apiKey"], "request.headers[\"x-api-key\"] | \"\"");
    assert_eq!(vars["apiClaims"], "\"\"");
    assert_eq!(
        vars["responseTimestamp"],
        "(request.time + response.duration)"
    );
    assert_eq!(vars["latency"], "response.duration | \"0ms\"");

    let absent = |resource: &str, field: &str, attr: &str, now: &str| {
        format!("{resource}: {field}: attribute `{attr}` is not available in the filter (docs/attributes.md); treated as absent, as Mixer did when nothing supplied it: `{now}`")
    };
    let tcp_rule = |name: &str| {
        format!("rule/istio-system/{name}: match: `context.protocol == \"tcp\"` holds for TCP connections only: what it sends to a prometheus handler shapes the filter's standard istio_tcp_* metrics (metrics[]), the rest is not imported (see their lines)")
    };
    let manifest = "Mixer's attribute vocabulary; the filter has its own, fixed one (docs/attributes.md); not imported";
    let protocol = |metric: &str| {
        absent(
            &format!("metric/istio-system/{metric}"),
            "dimensions.request_protocol",
            "api.protocol",
            "context.protocol | \"unknown\"",
        )
    };
    let expected = vec![
        format!("attributemanifest/istio-system/istioproxy: {manifest}"),
        format!("attributemanifest/istio-system/kubernetes: {manifest}"),
        absent("logentry/istio-system/accesslog", "variables.apiClaims", "request.auth.raw_claims", "\"\""),
        absent("logentry/istio-system/accesslog", "variables.apiKey", "request.api_key", "request.headers[\"x-api-key\"] | \"\""),
        format!("logentry/istio-system/tcpaccesslog: only rule stdiotcp sends it, for TCP connections only: {TCP_LOG}"),
        tcp_rule("stdiotcp"),
        protocol("requestcount"),
        protocol("requestduration"),
        protocol("requestsize"),
        protocol("responsesize"),
        "prometheus/istio-system/handler: metrics[1] (request_duration_seconds).value: `response.duration | \"0ms\"` is a duration, which Mixer exported in seconds; Envoy records integers, so the value is in milliseconds (`int(response.duration | \"0ms\") / 1000000`), and the bucket bounds ×1000: divide by 1000 in queries that expect seconds".to_string(),
        "prometheus/istio-system/handler: metrics: for TCP connections, gives the standard tcp_sent_bytes_total, tcp_received_bytes_total Mixer's labels (metrics[]); the standard tcp_connections_opened_total, tcp_connections_closed_total, not defined here, dropped so that only Mixer's TCP metrics are emitted".to_string(),
        "prometheus/istio-system/handler: metrics: defines requests_total, request_bytes, response_bytes in place of meshstats' standard metrics of those names; the standard request_duration_milliseconds, not defined here, dropped (`\"drop\": true` in metrics[]) so that only Mixer's metrics are emitted".to_string(),
        tcp_rule("promtcp"),
        "kubernetesenv/istio-system/handler: adapter kubernetesenv filled workload attributes from the Kubernetes API; a sidecar knows its own workload from its node metadata and its peer's from metadata exchange (docs/attributes.md); not imported".to_string(),
        "rule/istio-system/kubeattrgenrulerule: actions[0]: sends to kubernetesenv/istio-system/handler, which is not imported (see its line); the action is not imported".to_string(),
        tcp_rule("tcpkubeattrgenrulerule"),
        "kubernetes/istio-system/attributes: template kubernetes fed the kubernetesenv adapter's attribute generation, which a sidecar does itself (docs/attributes.md); not imported".to_string(),
    ];
    assert_eq!(warnings, expected);
}

#[test]
fn all_three_together() {
    let files = [
        "istio-1.0-default-telemetry.yaml",
        "istio-1.0-task-double-request-count.yaml",
        "istio-1.0-task-new-log.yaml",
    ]
    .map(mixer_config);
    let (config, _) = import(&files.iter().map(PathBuf::as_path).collect::<Vec<_>>());
    let names: Vec<&str> = config["definitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "requests_total",
            "request_duration_seconds",
            "request_bytes",
            "response_bytes",
            "double_request_count"
        ]
    );
    let logs: Vec<&str> = config["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(logs, ["accesslog", "newlog"]);
}

const V1ALPHA2: &str = r#"
apiVersion: config.istio.io/v1alpha2
kind: metric
metadata: {name: slowcount, namespace: istio-system}
spec:
  value: "1"
  dimensions:
    destination: destination.workload.name | "unknown"
    method: request.method
    route: api.operation | request.url_path
  monitored_resource_type: '"UNSPECIFIED"'
---
apiVersion: config.istio.io/v1alpha2
kind: prometheus
metadata: {name: slowhandler, namespace: istio-system}
spec:
  metrics:
  - name: slow_requests
    instance_name: slowcount.metric.istio-system
    kind: DISTRIBUTION
    label_names: [destination, method, route]
    buckets:
      linearBuckets: {numFiniteBuckets: 4, width: 10, offset: 5}
---
apiVersion: config.istio.io/v1alpha2
kind: logentry
metadata: {name: slowlog, namespace: istio-system}
spec:
  severity: '"Warning"'
  variables:
    path: request.path
    origin: origin.ip
---
apiVersion: config.istio.io/v1alpha2
kind: stdio
metadata: {name: slowstdio, namespace: istio-system}
spec:
  outputAsJson: true
---
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {name: slowrule, namespace: istio-system}
spec:
  match: response.code >= 500 && match(request.useragent | "-", "kube-probe*") == false
  actions:
  - handler: slowhandler.prometheus
    instances: [slowcount.metric]
  - handler: slowstdio.stdio
    instances: [slowlog.logentry]
"#;

const V1_1: &str = r#"
apiVersion: config.istio.io/v1alpha2
kind: instance
metadata: {name: slowcount, namespace: istio-system}
spec:
  compiledTemplate: metric
  params:
    value: "1"
    dimensions:
      destination: destination.workload.name | "unknown"
      method: request.method
      route: api.operation | request.url_path
    monitored_resource_type: '"UNSPECIFIED"'
---
apiVersion: config.istio.io/v1alpha2
kind: handler
metadata: {name: slowhandler, namespace: istio-system}
spec:
  compiledAdapter: prometheus
  params:
    metrics:
    - name: slow_requests
      instance_name: slowcount.instance.istio-system
      kind: DISTRIBUTION
      label_names: [destination, method, route]
      buckets:
        linearBuckets: {numFiniteBuckets: 4, width: 10, offset: 5}
---
apiVersion: config.istio.io/v1alpha2
kind: instance
metadata: {name: slowlog, namespace: istio-system}
spec:
  template: logentry
  params:
    severity: '"Warning"'
    variables:
      path: request.path
      origin: origin.ip
---
apiVersion: config.istio.io/v1alpha2
kind: handler
metadata: {name: slowstdio, namespace: istio-system}
spec:
  adapter: stdio
  params:
    outputAsJson: true
---
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {name: slowrule, namespace: istio-system}
spec:
  match: response.code >= 500 && match(request.useragent | "-", "kube-probe*") == false
  actions:
  - handler: slowhandler
    instances: [slowcount]
  - handler: slowstdio.istio-system
    instances: [slowlog.istio-system]
"#;

#[test]
fn instance_and_handler_forms_import_like_v1alpha2() {
    let (old, old_warnings) = import(&[&temp("v1alpha2.yaml", V1ALPHA2)]);
    let (new, new_warnings) = import(&[&temp("v1_1.yaml", V1_1)]);
    let m = "response.code >= 500 && match(request.useragent | \"-\", \"kube-probe*\") == false";
    let expected = json!({
        "definitions": [{
            "name": "slow_requests",
            "type": "HISTOGRAM",
            "value": "1",
            "dimensions": {
                "destination": "destination.workload.name | \"unknown\"",
                "method": "request.method",
                "route": "request.url_path",
            },
            "buckets": {"linear_buckets": {"num_finite_buckets": 5, "width": 10.0, "offset": 5.0}},
        }],
        "metrics": [{"name": "slow_requests", "match": m}],
        "logs": [{
            "name": "slowlog",
            "instance": "slowlog.logentry.istio-system",
            "match": m,
            // Mixer's stdio knew `warning`, not `Warning`: it logged at info.
            "severity": "\"info\"",
            "variables": {"path": "request.path"},
        }],
    });
    assert_eq!(old, expected);
    let mut expected_new = expected.clone();
    expected_new["logs"][0]["instance"] = json!("slowlog.instance.istio-system");
    assert_eq!(
        new, expected_new,
        "the same, but Mixer named the instance slowlog.instance.istio-system"
    );

    let route = "dimensions.route: attribute `api.operation` is not available in the filter (docs/attributes.md); treated as absent, as Mixer did when nothing supplied it: `request.url_path`";
    let origin = "variables.origin: attribute `origin.ip` is not available in the filter (docs/attributes.md) and has no `|` default; the variable is left out";
    assert_eq!(
        old_warnings,
        [
            format!("metric/istio-system/slowcount: {route}"),
            format!("logentry/istio-system/slowlog: {origin}")
        ]
    );
    assert_eq!(
        new_warnings,
        [
            format!("instance/istio-system/slowcount: {route}"),
            format!("instance/istio-system/slowlog: {origin}")
        ]
    );
}

#[test]
fn other_adapters_and_templates_are_listed() {
    let yaml = r#"
apiVersion: v1
kind: List
items:
- apiVersion: config.istio.io/v1alpha2
  kind: stackdriver
  metadata: {name: handler, namespace: istio-system}
  spec: {}
- apiVersion: config.istio.io/v1alpha2
  kind: handler
  metadata: {name: statsd, namespace: istio-system}
  spec: {compiledAdapter: statsd}
- apiVersion: config.istio.io/v1alpha2
  kind: instance
  metadata: {name: spans, namespace: istio-system}
  spec: {compiledTemplate: tracespan}
- apiVersion: networking.istio.io/v1alpha3
  kind: VirtualService
  metadata: {name: reviews, namespace: default}
- apiVersion: config.istio.io/v1alpha2
  kind: metric
  metadata: {name: count, namespace: default}
  spec:
    value: "1"
    dimensions: {http_code: response.code | 200}
- apiVersion: config.istio.io/v1alpha2
  kind: prometheus
  metadata: {name: handler, namespace: default}
  spec:
    metrics:
    - {name: app-count, namespace: myapp, instance_name: count.metric.default, kind: COUNTER, label_names: [http_code, missing], description: Requests}
- apiVersion: config.istio.io/v1alpha2
  kind: rule
  metadata: {name: r, namespace: default}
  spec:
    actions:
    - {handler: handler.prometheus, instances: [count.metric, nope.metric]}
    - {handler: handler.stackdriver.istio-system, instances: [spans]}
"#;
    let (config, warnings) = import(&[&temp("list.yaml", yaml)]);
    assert_eq!(
        config,
        json!({
            "definitions": [{"name": "appcount", "type": "COUNTER", "value": "1", "metric_name": "myapp_appcount", "dimensions": {"http_code": "response.code | 200"}}],
            "metrics": [{"name": "appcount", "match": "destination.service.namespace == \"default\""}],
        })
    );
    assert_eq!(
        warnings,
        [
            "stackdriver/istio-system/handler: adapter stackdriver is not imported (only prometheus and stdio are: the filter's metrics and access logs)",
            "handler/istio-system/statsd: adapter statsd is not imported (only prometheus and stdio are: the filter's metrics and access logs)",
            "instance/istio-system/spans: template tracespan is not imported (only metric and logentry are)",
            "VirtualService/default/reviews: apiVersion networking.istio.io/v1alpha3 is not Mixer configuration (config.istio.io); not imported",
            "prometheus/default/handler: metrics[0] (appcount).description: not carried over: Envoy's Prometheus output has no HELP text",
            "prometheus/default/handler: metrics[0] (appcount).label_names: `missing` is not a dimension of count.metric.default; the label is left out",
            "rule/default/r: metadata.namespace: Mixer applied rules outside istio-system only to services of their namespace; the match adds `destination.service.namespace == \"default\"`",
            "rule/default/r: actions[0].instances[1]: no instance `nope.metric` in the input",
            "rule/default/r: actions[1]: sends to stackdriver/istio-system/handler, which is not imported (see its line); the action is not imported",
        ]
    );
}

#[test]
fn exit_codes() {
    // Nothing usable: 1, with the reasons.
    let only_manifest = temp("manifest.yaml", "apiVersion: config.istio.io/v1alpha2\nkind: attributemanifest\nmetadata: {name: m, namespace: istio-system}\n");
    let run = meshstats(&["mixer", "import", only_manifest.to_str().unwrap()]);
    assert_eq!((run.code, run.stdout.as_str()), (1, ""));
    assert!(
        run.stderr.starts_with("attributemanifest/istio-system/m: "),
        "{}",
        run.stderr
    );
    assert!(run.stderr.ends_with("meshstats: nothing to import: no metric or logentry instance reaches a prometheus or stdio handler through a rule\n"), "{}", run.stderr);
    // YAML that does not parse, a file that cannot be read: 1, naming the file.
    let bad = temp("bad.yaml", "kind: metric\n  spec: [\n");
    let run = meshstats(&["mixer", "import", bad.to_str().unwrap()]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .starts_with(&format!("meshstats: {}: not valid YAML: ", bad.display())),
        "{}",
        run.stderr
    );
    let run = meshstats(&["mixer", "import", "/nonexistent/mixer.yaml"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .starts_with("meshstats: /nonexistent/mixer.yaml: cannot read: "),
        "{}",
        run.stderr
    );
    // Usage: 2.
    assert_eq!(meshstats(&["mixer", "import"]).code, 2);
    assert_eq!(meshstats(&["mixer", "export", "x"]).code, 2);
}
