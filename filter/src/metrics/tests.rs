use super::*;
use crate::attributes::vocabulary::{SlotDef, Source, Vocabulary};
use crate::config::{ConfigError, PluginConfig};
use crate::host::fake::FakeHost;
use crate::labels::STANDARD_LABELS;

struct Compiled {
    table: MetricTable,
    problems: Vec<ConfigError>,
    slots: Vec<SlotDef>,
}

fn table(json: &str) -> Compiled {
    let mut vocab = Vocabulary::default();
    let (table, problems) = compile(&PluginConfig::parse(json).unwrap(), &mut vocab);
    Compiled {
        table,
        problems,
        slots: vocab.slots().to_vec(),
    }
}

fn dims(code: &str) -> Dimensions {
    let mut d = Dimensions::default();
    for (i, v) in d.values.iter_mut().enumerate() {
        *v = format!("v{i}");
    }
    d.values[crate::labels::idx::RESPONSE_CODE] = code.into();
    d
}

fn stat(values: &Dimensions, labels: &[usize], extra: &[(&str, &str)], name: &str) -> String {
    let mut s = String::new();
    for &l in labels {
        stat_name::push_label(&mut s, STANDARD_LABELS[l], &values.values[l]);
    }
    for (t, v) in extra {
        stat_name::push_label(&mut s, t, v);
    }
    s + name
}

fn all_but(skip: &[usize]) -> Vec<usize> {
    (0..25).filter(|i| !skip.contains(i)).collect()
}

/// Slot values for a compiled table: each slot from `values` by its source, absent otherwise.
fn slots(c: &Compiled, values: &[(Source, Attr)]) -> Vec<Option<Attr>> {
    c.slots
        .iter()
        .map(|d| {
            values
                .iter()
                .find(|(s, _)| *s == d.source)
                .map(|(_, a)| a.clone())
        })
        .collect()
}

#[test]
fn records_four_metrics_once_per_request_with_all_labels() {
    let host = FakeHost::default();
    let Compiled {
        mut table,
        problems,
        ..
    } = table("{}");
    assert!(problems.is_empty());
    let t = &mut table;
    assert_eq!(
        t.names().collect::<Vec<_>>(),
        [
            "istio_requests_total",
            "istio_request_duration_milliseconds",
            "istio_request_bytes",
            "istio_response_bytes",
            "istio_tcp_connections_opened_total",
            "istio_tcp_connections_closed_total",
            "istio_tcp_sent_bytes_total",
            "istio_tcp_received_bytes_total",
            "istio_request_messages_total",
            "istio_response_messages_total"
        ]
    );
    let req = RequestAttributes {
        duration_ns: 7_900_000,
        request_bytes: 120,
        response_bytes: 4096,
        ..Default::default()
    };
    let d = dims("200");
    for _ in 0..3 {
        t.record(&host, &d, &[], &req);
    }
    let all = all_but(&[]);
    assert_eq!(
        host.value(&stat(&d, &all, &[], "istio_requests_total")),
        Some(3)
    );
    assert_eq!(
        host.samples.borrow()[&stat(&d, &all, &[], "istio_request_duration_milliseconds")],
        vec![7, 7, 7]
    );
    assert_eq!(
        host.samples.borrow()[&stat(&d, &all, &[], "istio_request_bytes")],
        vec![120; 3]
    );
    assert_eq!(
        host.samples.borrow()[&stat(&d, &all, &[], "istio_response_bytes")],
        vec![4096; 3]
    );
    // Defined once: the later requests took the fast path.
    let defined = |host: &FakeHost| {
        host.calls
            .borrow()
            .iter()
            .filter(|c| c.starts_with("define_metric"))
            .count()
    };
    assert_eq!(
        defined(&host),
        4,
        "three requests with one label tuple define one set of metrics: {:#?}",
        host.calls.borrow()
    );
    assert_eq!(t.cached_tuples(), 1);
    t.record(&host, &dims("503"), &[], &req);
    assert_eq!(defined(&host), 8, "a new tuple defines its own set");
    assert_eq!(t.cached_tuples(), 2);
}

#[test]
fn drop_and_tags_to_remove() {
    let host = FakeHost::default();
    let mut c = table(
        r#"{"metrics": [{"name": "request_bytes", "drop": true},
                        {"tags_to_remove": ["source_principal"]},
                        {"name": "requests_total", "tags_to_remove": ["grpc_response_status", "response_flags"]}]}"#,
    );
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    assert_eq!(
        c.table.names().collect::<Vec<_>>(),
        [
            "istio_requests_total",
            "istio_request_duration_milliseconds",
            "istio_response_bytes",
            "istio_tcp_connections_opened_total",
            "istio_tcp_connections_closed_total",
            "istio_tcp_sent_bytes_total",
            "istio_tcp_received_bytes_total",
            "istio_request_messages_total",
            "istio_response_messages_total"
        ]
    );
    let d = dims("200");
    c.table
        .record(&host, &d, &[], &RequestAttributes::default());
    assert_eq!(
        host.value(&stat(
            &d,
            &all_but(&[3, 21, 24]),
            &[],
            "istio_requests_total"
        )),
        Some(1)
    );
    assert!(host.samples.borrow().contains_key(&stat(
        &d,
        &all_but(&[3]),
        &[],
        "istio_response_bytes"
    )));
}

#[test]
fn broken_parts_are_problems_that_disable_only_themselves() {
    let c = table(
        r#"{"metrics": [{"name": "request_count"},
                        {"tags_to_remove": ["reporter", "source_wl"]},
                        {"name": "requests_total", "dimensions": {"ok": "request.host", "bad": "request.hots", "source_app": "1 +", "x.y": "'a'"}}],
            "definitions": [{"name": "broken", "value": "request.size +"}, {"name": "", "value": "1"}]}"#,
    );
    let problems: Vec<String> = c.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(problems.len(), 7, "{problems:#?}");
    assert_eq!(problems[0], "invalid meshstats config at `definitions[0].value`: column 15: expected an expression, found end of input in `request.size +`", "{problems:#?}");
    assert_eq!(
        problems[1],
        "invalid meshstats config at `definitions[1].name`: must not be empty"
    );
    assert_eq!(problems[2], "invalid meshstats config at `metrics[0].name`: unknown metric \"request_count\"; known metrics: requests_total, request_duration_milliseconds, request_bytes, response_bytes, tcp_connections_opened_total, tcp_connections_closed_total, tcp_sent_bytes_total, tcp_received_bytes_total, request_messages_total, response_messages_total");
    assert_eq!(problems[3], "invalid meshstats config at `metrics[1].tags_to_remove[1]`: \"source_wl\" is not a label of this metric");
    assert!(problems[4].starts_with("invalid meshstats config at `metrics[2].dimensions.bad`: column 1: unknown attribute `request.hots`; did you mean `request.host`?"), "{}", problems[4]);
    assert!(
        problems[5]
            .starts_with("invalid meshstats config at `metrics[2].dimensions.source_app`: column"),
        "{}",
        problems[5]
    );
    assert_eq!(problems[6], "invalid meshstats config at `metrics[2].dimensions.x.y`: \"x.y\" is not a valid Prometheus label name");
    // What survived: `ok` added, source_app removed (Istio: a dimension that does not parse leaves), reporter removed.
    let labels = c.table.labels_of("istio_requests_total").unwrap();
    assert!(
        labels.contains(&"ok")
            && !labels.contains(&"bad")
            && !labels.contains(&"source_app")
            && !labels.contains(&"reporter"),
        "{labels:?}"
    );
    assert_eq!(
        c.table.names().count(),
        10,
        "the broken definitions are not defined, the rest is"
    );
}

#[test]
fn custom_dimensions_override_and_extend_with_expression_values() {
    let host = FakeHost::default();
    let mut c = table(
        r#"{"metrics": [{"name": "requests_total", "dimensions": {"request_host": "request.host", "reporter": "'proxy'", "user": "request.headers['x-user'] | 'anonymous'"}, "tags_to_remove": ["grpc_response_status"]}]}"#,
    );
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    let d = dims("200");
    let s = slots(
        &c,
        &[(
            Source::Property(vec!["request".into(), "host".into()]),
            Attr::Str("ratings:9080".into()),
        )],
    );
    c.table.record(&host, &d, &s, &RequestAttributes::default());
    let mut overridden = d.clone();
    overridden.values[0] = "proxy".into();
    let name = stat(
        &overridden,
        &all_but(&[24]),
        &[("request_host", "ratings:9080"), ("user", "anonymous")],
        "istio_requests_total",
    );
    assert_eq!(
        host.value(&name),
        Some(1),
        "{:?}",
        host.values.borrow().keys().collect::<Vec<_>>()
    );
    // A dimension that fails per request is `unknown`.
    let host = FakeHost::default();
    c.table
        .record(&host, &d, &slots(&c, &[]), &RequestAttributes::default());
    let name = stat(
        &overridden,
        &all_but(&[24]),
        &[("request_host", "unknown"), ("user", "anonymous")],
        "istio_requests_total",
    );
    assert_eq!(host.value(&name), Some(1));
}

#[test]
fn match_gates_recording_and_broken_match_records_nothing() {
    let ua = Source::Property(vec!["request".into(), "useragent".into()]);
    let mut c = table(
        r#"{"metrics": [{"name": "requests_total", "match": "!match(request.useragent | '-', 'kube-probe*')"}]}"#,
    );
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    let host = FakeHost::default();
    let d = dims("200");
    for agent in ["kube-probe/1.27", "curl/8", "kube-probe/1.28"] {
        c.table.record(
            &host,
            &d,
            &slots(&c, &[(ua.clone(), Attr::Str(agent.into()))]),
            &RequestAttributes::default(),
        );
    }
    c.table
        .record(&host, &d, &slots(&c, &[]), &RequestAttributes::default());
    assert_eq!(
        host.value(&stat(&d, &all_but(&[]), &[], "istio_requests_total")),
        Some(2)
    );
    // Other metrics are not gated.
    assert_eq!(
        host.samples.borrow()[&stat(&d, &all_but(&[]), &[], "istio_request_bytes")].len(),
        4
    );

    let mut c =
        table(r#"{"metrics": [{"name": "requests_total", "match": "request.useragent +"}]}"#);
    assert_eq!(c.problems.len(), 1);
    let host = FakeHost::default();
    c.table
        .record(&host, &d, &slots(&c, &[]), &RequestAttributes::default());
    assert_eq!(
        host.value(&stat(&d, &all_but(&[]), &[], "istio_requests_total")),
        None
    );
}

#[test]
fn definitions_with_standard_or_own_labels_and_failing_values() {
    let mut c = table(
        r#"{"definitions": [
              {"name": "custom", "value": "1", "type": "COUNTER"},
              {"name": "double", "value": "2", "metric_name": "double_request_count",
               "dimensions": {"reporter": "conditional((context.reporter.kind | 'inbound') == 'outbound', 'client', 'server')",
                              "message": "'twice the fun!'"}},
              {"name": "size", "value": "request.size", "type": "HISTOGRAM"}]}"#,
    );
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    let host = FakeHost::default();
    host.define_metric(MetricKind::Counter, "placeholder");
    c.table.define_counters(&host);
    let d = dims("200");
    let size = Source::Property(vec!["request".into(), "size".into()]);
    let s = slots(
        &c,
        &[
            (Source::Direction, Attr::Str("outbound".into())),
            (size.clone(), Attr::Int(512)),
        ],
    );
    c.table.record(&host, &d, &s, &RequestAttributes::default());
    c.table.record(&host, &d, &s, &RequestAttributes::default());
    assert_eq!(
        host.value(&stat(&d, &all_but(&[]), &[], "istio_custom")),
        Some(2)
    );
    assert_eq!(
        host.value("message=.=twice the fun!;.;reporter=.=client;.;double_request_count"),
        Some(4)
    );
    assert_eq!(
        host.samples.borrow()[&stat(&d, &all_but(&[]), &[], "istio_size")],
        vec![512, 512]
    );
    // request.size absent: that record is skipped and counted; the others still record.
    let s = slots(&c, &[(Source::Direction, Attr::Str("inbound".into()))]);
    c.table.record(&host, &d, &s, &RequestAttributes::default());
    assert_eq!(
        host.samples.borrow()[&stat(&d, &all_but(&[]), &[], "istio_size")].len(),
        2
    );
    assert_eq!(host.value(EVAL_ERRORS_METRIC), Some(1));
    assert_eq!(
        host.value("message=.=twice the fun!;.;reporter=.=server;.;double_request_count"),
        Some(2)
    );
}

#[test]
fn tag_names_put_custom_dimensions_longest_first_between_standard_and_build() {
    let c = PluginConfig::parse(
        r#"{"metrics": [{"dimensions": {"zz": "'1'", "reporter": "'x'", "aaa": "'2'", "my_reporter": "'3'", "bad.name": "'4'"}}],
            "definitions": [{"name": "d", "value": "1", "dimensions": {"message": "'m'"}}]}"#,
    )
    .unwrap();
    let tags = all_tag_names(&c);
    assert_eq!(&tags[..25], &STANDARD_LABELS.map(String::from));
    assert_eq!(
        &tags[25..],
        ["message", "aaa", "zz", "component", "tag"],
        "my_reporter ends with a standard label; bad.name is invalid"
    );
}

#[test]
fn a_tag_name_may_not_end_another() {
    // Found by fuzzing (meshstats-fuzz `stat_name`, checked in Envoy 1.40): Envoy runs each
    // `stats_tags` regex on the whole name, so `protocol=\.=` also matches inside
    // `request_protocol=.=`, and `bar` inside `foo_bar`: those labels read the wrong value.
    let json = r#"{"metrics": [{"dimensions": {"protocol": "'a'", "foo_bar": "'b'", "bar": "'c'", "x_tag": "'d'", "nent": "'e'", "ok": "'f'"}}]}"#;
    let c = table(json);
    let problems: Vec<String> = c.problems.iter().map(|p| p.to_string()).collect();
    let tells = "which Envoy's tag extraction cannot tell apart; choose another name";
    assert_eq!(
        problems,
        [
            format!("invalid meshstats config at `metrics[0].dimensions.bar`: label \"bar\" is the end of the label `foo_bar`, {tells}"),
            format!("invalid meshstats config at `metrics[0].dimensions.nent`: label \"nent\" is the end of the label `component`, {tells}"),
            format!("invalid meshstats config at `metrics[0].dimensions.protocol`: label \"protocol\" is the end of the label `request_protocol`, {tells}"),
            format!("invalid meshstats config at `metrics[0].dimensions.x_tag`: label \"x_tag\" ends with the label `tag`, {tells}"),
        ]
    );
    let tags = all_tag_names(&PluginConfig::parse(json).unwrap());
    assert_eq!(&tags[25..], ["foo_bar", "ok", "component", "tag"]);
    let labels = c.table.labels_of("istio_requests_total").unwrap();
    assert_eq!(&labels[25..], ["foo_bar", "ok"]);
}

#[test]
fn no_fixed_tag_name_ends_another() {
    let fixed: Vec<&str> = STANDARD_LABELS
        .iter()
        .chain(&BUILD_LABELS)
        .copied()
        .collect();
    for a in &fixed {
        for b in &fixed {
            assert!(a == b || !a.ends_with(b), "{a} ends with {b}");
        }
    }
}

#[test]
fn bucket_settings_per_metric() {
    let c = PluginConfig::parse(
        r#"{"metrics": [{"name": "request_duration_milliseconds", "buckets": {"explicit_buckets": {"bounds": [1, 10, 100]}}},
                        {"buckets": {"linear_buckets": {"num_finite_buckets": 2, "width": 1}}},
                        {"name": "request_bytes", "buckets": {"explicit_buckets": {"bounds": [5, 5]}}}],
            "definitions": [{"name": "lat", "value": "1", "type": "HISTOGRAM", "metric_name": "my_latency",
                             "buckets": {"exponential_buckets": {"num_finite_buckets": 3, "growth_factor": 2, "scale": 0.5}}}]}"#,
    )
    .unwrap();
    let got: Vec<(String, Vec<f64>)> = bucket_settings(&c)
        .into_iter()
        .map(|b| (b.metric, b.bounds))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "istio_request_duration_milliseconds".to_string(),
                vec![0.0, 1.0]
            ),
            ("istio_request_bytes".to_string(), vec![0.0, 1.0]),
            ("istio_response_bytes".to_string(), vec![0.0, 1.0]),
            ("my_latency".to_string(), vec![0.0, 1.0]),
        ]
    );
    let mut vocab = Vocabulary::default();
    let (_, problems) = compile(&c, &mut vocab);
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].path, "metrics[2].buckets");
}

#[test]
fn build_metric() {
    let host = FakeHost::default();
    record_build(&host, "1.17.0");
    assert_eq!(
        host.value("component=.=proxy;.;tag=.=1.17.0;.;istio_build"),
        Some(1)
    );
}
