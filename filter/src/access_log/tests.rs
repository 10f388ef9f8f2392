//! Logs through `Root` with `FakeHost`: lines, delivery, host calls, problems.

use super::LOG_PROPERTY;
use crate::host::fake::FakeHost;
use crate::host::{decode, LogLevel};
use crate::plugin::{compile, Root, Stream};

const NEWLOG: &str = r#"{"logs": [{"name": "newlog", "instance": "newlog.logentry.istio-system",
    "severity": "\"warning\"", "timestamp": "request.time",
    "variables": {"source": "source.labels[\"app\"] | source.workload.name | \"unknown\"",
                  "user": "source.user | \"unknown\"",
                  "destination": "destination.labels[\"app\"] | destination.workload.name | \"unknown\"",
                  "responseCode": "response.code | 0", "responseSize": "response.size | 0",
                  "latency": "response.duration | \"0ms\""}}]}"#;

fn sidecar(direction: i64, workload: &str, app: &str, config: &str) -> (FakeHost, Root) {
    let h = FakeHost::default();
    h.set(
        &["xds", "node", "id"],
        format!("sidecar~10.0.0.1~{workload}-1.default~default.svc.cluster.local"),
    );
    h.set(
        &["xds", "node", "metadata", "NAME"],
        format!("{workload}-1"),
    );
    h.set(&["xds", "node", "metadata", "NAMESPACE"], "default");
    h.set(&["xds", "node", "metadata", "WORKLOAD_NAME"], workload);
    h.set(
        &["xds", "node", "metadata", "LABELS"],
        decode::encode_pairs(&[("app", app)]),
    );
    h.set_int(&["xds", "listener_direction"], direction);
    let root = Root::configure(&h, config);
    (h, root)
}

/// A server-side sidecar with `config` and a request of the given status.
fn server(config: &str, code: i64) -> (FakeHost, Root) {
    let (h, root) = sidecar(1, "details-v1", "details", config);
    h.set_int(&["response", "code"], code);
    (h, root)
}

fn request(h: &FakeHost, root: &mut Root) {
    let mut s = Stream::default();
    root.on_request_headers(h, &mut s);
    root.on_response_headers(h, &mut s);
    root.on_log(h, &mut s);
}

/// Every value `set_property` stored, as text.
fn stored(h: &FakeHost) -> Vec<String> {
    h.properties_set
        .borrow()
        .iter()
        .map(|(k, v)| {
            assert_eq!(k, LOG_PROPERTY);
            String::from_utf8(v.clone()).unwrap()
        })
        .collect()
}

/// The Istio 1.0 logging task's entry, byte for byte as Mixer's stdio handler wrote it.
#[test]
fn mixer_newlog_line() {
    let (client_h, mut client) = sidecar(2, "productpage-v1", "productpage", NEWLOG);
    let (server_h, mut server) = sidecar(1, "details-v1", "details", "{}");
    assert!(client.problems().is_empty(), "{:?}", client.problems());
    let (mut cs, mut ss) = (Stream::default(), Stream::default());
    client.on_request_headers(&client_h, &mut cs);
    *server_h.request_headers.borrow_mut() = client_h.request_headers.borrow().clone();
    server.on_request_headers(&server_h, &mut ss);
    server.on_response_headers(&server_h, &mut ss);
    *client_h.response_headers.borrow_mut() = server_h.response_headers.borrow().clone();
    client.on_response_headers(&client_h, &mut cs);
    client_h.set_int(&["request", "time"], 1_542_159_986_528_539_000);
    client_h.set_int(&["response", "code"], 200);
    client_h.set_int(&["response", "size"], 178);
    client_h.set_int(&["request", "duration"], 9_486_802);
    client.on_log(&client_h, &mut cs);
    assert_eq!(
        stored(&client_h),
        [
            r#"{"level":"warn","time":"2018-11-14T01:46:26.528539Z","instance":"newlog.logentry.istio-system","destination":"details","latency":"9.486802ms","responseCode":200,"responseSize":178,"source":"productpage","user":"unknown"}"#
        ]
    );
    // Metrics are recorded as before.
    client.flush(&client_h);
    assert!(client_h
        .values
        .borrow()
        .keys()
        .any(|k| k.ends_with("istio_requests_total")));
}

#[test]
fn match_selects_requests_and_unmatched_requests_cost_nothing() {
    let config = r#"{"logs": [{"name": "errors", "match": "response.code >= 500",
        "variables": {"ua": "request.useragent", "user": "request.headers['x-user'] | 'anonymous'"}}]}"#;
    let (plain_h, mut plain) = server("{}", 200);
    let (h, mut root) = server(config, 200);
    for _ in 0..2 {
        plain_h.calls.borrow_mut().clear();
        h.calls.borrow_mut().clear();
        request(&plain_h, &mut plain);
        request(&h, &mut root);
    }
    assert_eq!(
        *h.calls.borrow(),
        *plain_h.calls.borrow(),
        "a request no log selects makes no extra host call"
    );
    assert!(stored(&h).is_empty());
    h.set_int(&["response", "code"], 503);
    h.set(&["request", "useragent"], "curl/8");
    h.set_int(&["request", "time"], 1);
    h.calls.borrow_mut().clear();
    request(&h, &mut root);
    let calls = h.calls.borrow().clone();
    // A new label tuple (503) defines and records new metrics: not the logs' doing.
    let metric = |c: &&String| {
        ["define_metric", "increment_metric", "record_metric"]
            .iter()
            .any(|m| c.starts_with(m))
    };
    let extra: Vec<&str> = calls
        .iter()
        .filter(|c| !plain_h.calls.borrow().contains(c) && !metric(c))
        .map(String::as_str)
        .collect();
    assert_eq!(
        extra,
        [
            "property request.time",
            "property request.useragent",
            "header Request x-user",
            "set_property meshstats_log"
        ]
    );
    let lines = stored(&h);
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with(r#"{"level":"info","time":"1970-01-01T00:00:00.000000Z","#),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].ends_with(r#","instance":"errors","ua":"curl/8","user":"anonymous"}"#),
        "{}",
        lines[0]
    );
}

#[test]
fn one_set_property_per_request_whatever_the_number_of_entries() {
    let config = r#"{"logs": [{"name": "a", "variables": {"n": "1"}}, {"name": "b", "match": "false"},
                              {"name": "c", "severity": "'ERROR'"}, {"name": "d", "severity": "warning"}]}"#;
    let (h, mut root) = server(config, 200);
    assert!(root.problems().is_empty(), "{:?}", root.problems());
    request(&h, &mut root);
    assert_eq!(
        h.calls
            .borrow()
            .iter()
            .filter(|c| c.starts_with("set_property"))
            .count(),
        1
    );
    let all = stored(&h);
    let lines: Vec<serde_json::Value> = all[0]
        .split('\n')
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| {
            (
                l["instance"].as_str().unwrap(),
                l["level"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, [("a", "info"), ("c", "error"), ("d", "warn")]);
    assert_eq!(lines[0]["n"], 1);
    assert!(!all[0].ends_with('\n'));
}

#[test]
fn sampling_through_the_filter() {
    let (h, mut root) = server(r#"{"logs": [{"name": "s", "sampling": 0.5}]}"#, 200);
    let mut logged = Vec::new();
    for _ in 0..6 {
        let before = h.properties_set.borrow().len();
        request(&h, &mut root);
        logged.push(h.properties_set.borrow().len() > before);
    }
    assert_eq!(logged, [true, false, true, false, true, false]);
}

#[test]
fn proxy_log_mode_logs_each_entry() {
    let config = r#"{"log_delivery": "proxy_log", "logs": [{"name": "a"}, {"name": "b", "timestamp": "request.time + duration('1s')"}]}"#;
    let (h, mut root) = server(config, 200);
    h.set_int(&["request", "time"], 1_542_159_986_000_000_000);
    h.logs.borrow_mut().clear();
    request(&h, &mut root);
    assert!(h.properties_set.borrow().is_empty());
    assert_eq!(
        *h.logs.borrow(),
        [
            (
                LogLevel::Info,
                r#"{"level":"info","time":"2018-11-14T01:46:26.000000Z","instance":"a"}"#
                    .to_string()
            ),
            (
                LogLevel::Info,
                r#"{"level":"info","time":"2018-11-14T01:46:27.000000Z","instance":"b"}"#
                    .to_string()
            ),
        ]
    );
}

#[test]
fn broken_parts_are_problems_with_paths() {
    let config = r#"{"logs": [
        {"name": "a", "match": "request.hots == 'x'"},
        {"name": "b", "severity": "request.size +", "timestamp": "request.path",
         "variables": {"ok": "request.method", "bad": "nope.nope", "time": "request.time"}},
        {"name": "", "variables": {}},
        {"name": "d", "sampling": 0}]}"#;
    let c = compile(config).unwrap();
    let paths: Vec<&str> = c.problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "logs[0].match",
            "logs[1].severity",
            "logs[1].timestamp",
            "logs[1].variables.bad",
            "logs[1].variables.time",
            "logs[2].name",
            "logs[3].sampling"
        ]
    );
    assert!(
        c.problems[0]
            .reason
            .contains("did you mean `request.host`?"),
        "{}",
        c.problems[0]
    );
    assert_eq!(
        c.problems[4].reason,
        "`time` is a field of every line (level, time, instance); choose another name"
    );
    assert_eq!(c.problems[6].reason, "must be a fraction in (0, 1], got 0");
    let (h, mut root) = server(config, 200);
    h.set_int(&["request", "time"], 0);
    h.set(&["request", "method"], "GET");
    let logged: Vec<String> = h.logs.borrow().iter().map(|(_, l)| l.clone()).collect();
    assert!(
        logged[0].ends_with("; the log is disabled"),
        "{}",
        logged[0]
    );
    assert!(
        logged[1].ends_with("; the log's level is info"),
        "{}",
        logged[1]
    );
    assert!(
        logged[2].ends_with("; the log's time is the request's start"),
        "{}",
        logged[2]
    );
    assert!(
        logged[3].ends_with("; the variable is left out of the log's entries"),
        "{}",
        logged[3]
    );
    assert_eq!(h.value(crate::metrics::CONFIG_ERRORS_METRIC), Some(7));
    request(&h, &mut root);
    assert_eq!(
        stored(&h),
        [r#"{"level":"info","time":"1970-01-01T00:00:00.000000Z","instance":"b","ok":"GET"}"#]
    );
}

#[test]
fn failing_variables_are_left_out_and_attributes_read_once() {
    let config = r#"{"logs": [{"name": "a", "variables": {"ua": "request.useragent", "absent": "request.referer", "code": "response.code"}},
                              {"name": "b", "match": "request.useragent.startsWith('curl')", "variables": {"ua": "request.useragent", "hdrs": "request.headers"}}]}"#;
    let (h, mut root) = server(config, 200);
    h.set(
        &["request", "useragent"],
        vec![b'c', b'u', b'r', b'l', 0xff, b'"'],
    );
    h.request_headers
        .borrow_mut()
        .insert("x-b".into(), "2".into());
    h.request_headers
        .borrow_mut()
        .insert("x-a".into(), "\u{1}".into());
    h.reads.borrow_mut().clear();
    request(&h, &mut root);
    let lines = stored(&h);
    let lines: Vec<&str> = lines[0].split('\n').collect();
    assert!(
        lines[0].ends_with(r#""instance":"a","code":200,"ua":"curl�\""}"#),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].ends_with(r#""instance":"b","hdrs":{"x-a":"\u0001","x-b":"2"},"ua":"curl�\""}"#),
        "{}",
        lines[1]
    );
    let reads = h.reads.borrow();
    assert_eq!(
        reads.iter().filter(|r| *r == "request.useragent").count(),
        1,
        "{reads:?}"
    );
    assert_eq!(
        reads.iter().filter(|r| *r == "request.time").count(),
        1,
        "{reads:?}"
    );
}

#[test]
fn istio_preset_matches_envoys_json_fields() {
    let config = r#"{"logs": [{"name": "istio", "preset": "istio", "variables": {"extra": "'x'", "route_name": "'mine'"}}]}"#;
    let (h, mut root) = server(config, 503);
    assert!(root.problems().is_empty(), "{:?}", root.problems());
    h.set_int(&["response", "flags"], 1 << 5);
    h.set_int(&["request", "duration"], 12_999_999);
    h.set_int(&["request", "time"], 1_542_159_986_528_539_000);
    h.set_int(&["response", "size"], 95);
    h.set(&["request", "path"], "/status/503");
    h.request_headers
        .borrow_mut()
        .insert("x-envoy-original-path".into(), "/orig".into());
    request(&h, &mut root);
    let line: serde_json::Value = serde_json::from_str(&stored(&h)[0]).unwrap();
    let fields = line.as_object().unwrap();
    assert_eq!(fields.len(), 3 + 24 + 1);
    assert_eq!(line["response_code"], 503);
    assert_eq!(line["response_flags"], "UF");
    assert_eq!(line["duration"], 12);
    assert_eq!(line["bytes_sent"], 95);
    assert_eq!(line["bytes_received"], 0);
    assert_eq!(line["path"], "/orig");
    assert_eq!(line["route_name"], "mine", "variables override the preset");
    assert_eq!(line["extra"], "x");
    assert_eq!(line["start_time"], "2018-11-14T01:46:26.528539Z");
    for absent in [
        "authority",
        "upstream_host",
        "requested_server_name",
        "upstream_transport_failure_reason",
        "user_agent",
    ] {
        assert!(line[absent].is_null(), "{absent}: {}", line[absent]);
    }
    assert_eq!(
        h.reads
            .borrow()
            .iter()
            .filter(|r| *r == "response.flags")
            .count(),
        1
    );
}

#[test]
fn mixer_preset_compiles_and_fills_defaults() {
    let config = r#"{"logs": [{"name": "accesslog", "instance": "accesslog.logentry.istio-system", "preset": "mixer"}]}"#;
    let (h, mut root) = server(config, 200);
    assert!(root.problems().is_empty(), "{:?}", root.problems());
    h.set_int(&["request", "time"], 1_000_000_000);
    h.set_int(&["request", "duration"], 2_000_000);
    request(&h, &mut root);
    let line: serde_json::Value = serde_json::from_str(&stored(&h)[0]).unwrap();
    assert_eq!(
        line.as_object().unwrap().len(),
        3 + super::presets::MIXER.len()
    );
    assert_eq!(line["latency"], "2ms");
    assert_eq!(line["responseCode"], 200);
    assert_eq!(line["reporter"], "destination");
    assert_eq!(line["connection_security_policy"], "none");
    assert_eq!(line["sourceIp"], "0.0.0.0");
    assert_eq!(line["destinationWorkload"], "details-v1");
    assert_eq!(line["responseTimestamp"], "1970-01-01T00:00:01.002000Z");
    assert_eq!(line["apiKey"], "");
}

#[test]
fn response_flags_are_read_once_when_only_logs_need_them() {
    let config = r#"{"metrics": [{"tags_to_remove": ["response_flags"]}],
        "logs": [{"name": "f", "variables": {"short": "response.flags_short", "bits": "response.flags"}}]}"#;
    let (h, mut root) = server(config, 200);
    h.set_int(&["response", "flags"], 1 << 8);
    h.reads.borrow_mut().clear();
    request(&h, &mut root);
    assert!(
        stored(&h)[0].ends_with(r#""instance":"f","bits":256,"short":"NR"}"#),
        "{}",
        stored(&h)[0]
    );
    assert_eq!(
        h.reads
            .borrow()
            .iter()
            .filter(|r| *r == "response.flags")
            .count(),
        1
    );
}

#[test]
fn megabyte_hostile_header_yields_one_valid_line() {
    let (h, mut root) = server(
        r#"{"logs": [{"name": "big", "variables": {"v": "request.headers['x-big']"}}]}"#,
        200,
    );
    let value: String = "\"\\\u{0}\u{2028}é<>\n".repeat(150_000);
    h.request_headers
        .borrow_mut()
        .insert("x-big".into(), value.clone());
    request(&h, &mut root);
    let line = &stored(&h)[0];
    assert!(line.len() > 1_000_000 && !line.contains('\n'));
    let parsed: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(parsed["v"].as_str(), Some(value.as_str()));
}
