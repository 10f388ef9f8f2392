use super::*;
use crate::attributes::vocabulary::{SlotDef, Source, Vocabulary};
use crate::config::{ConfigError, PluginConfig};
use crate::host::fake::FakeHost;
use crate::host::LogLevel;
use crate::labels::STANDARD_LABELS;

struct Compiled {
    table: MetricTable,
    problems: Vec<ConfigError>,
    unevaluable: Vec<ConfigError>,
    slots: Vec<SlotDef>,
}

fn table(json: &str) -> Compiled {
    let mut vocab = Vocabulary::default();
    let out = compile(&PluginConfig::parse(json).unwrap(), &mut vocab);
    Compiled {
        table: out.table,
        problems: out.problems,
        unevaluable: out.unevaluable,
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
    t.flush(&host);
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
    c.table.flush(&host);
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
    assert_eq!(problems.len(), 6, "{problems:#?}");
    assert_eq!(problems[0], "invalid meshstats config at `definitions[0].value`: column 15: expected an expression, found end of input in `request.size +`", "{problems:#?}");
    assert_eq!(
        problems[1],
        "invalid meshstats config at `definitions[1].name`: must not be empty"
    );
    assert_eq!(problems[2], "invalid meshstats config at `metrics[0].name`: unknown metric \"request_count\"; known metrics: requests_total, request_duration_milliseconds, request_bytes, response_bytes, tcp_connections_opened_total, tcp_connections_closed_total, tcp_sent_bytes_total, tcp_received_bytes_total, request_messages_total, response_messages_total");
    assert_eq!(problems[3], "invalid meshstats config at `metrics[1].tags_to_remove[1]`: \"source_wl\" is not a label of this metric");
    // An unknown attribute parses: reported apart, with its suggestion, and kept as `unknown`.
    let unevaluable: Vec<String> = c.unevaluable.iter().map(|p| p.to_string()).collect();
    assert_eq!(unevaluable, ["invalid meshstats config at `metrics[2].dimensions.bad`: column 1: unknown attribute `request.hots`; did you mean `request.host`? in `request.hots`"]);
    assert!(
        problems[4]
            .starts_with("invalid meshstats config at `metrics[2].dimensions.source_app`: column"),
        "{}",
        problems[4]
    );
    assert_eq!(problems[5], "invalid meshstats config at `metrics[2].dimensions.x.y`: \"x.y\" is not a valid Prometheus label name");
    // What survived: `ok` added, `bad` kept, source_app removed (Istio: a dimension that does
    // not parse leaves), reporter removed.
    let labels = c.table.labels_of("istio_requests_total").unwrap();
    assert!(
        labels.contains(&"ok")
            && labels.contains(&"bad")
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
    c.table.flush(&host);
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
    c.table
        .record(&host, &d, &slots(&c, &[]), &RequestAttributes::default());
    c.table.flush(&host);
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
    c.table.flush(&host);
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
fn definitions_with_no_or_own_labels_and_failing_values() {
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
    c.table.flush(&host);
    // Istio's definitions start with no labels; `metrics[]` alone would add them.
    assert_eq!(host.value("istio_custom"), Some(2));
    assert_eq!(
        host.value("message=.=twice the fun!;.;reporter=.=client;.;double_request_count"),
        Some(4)
    );
    assert_eq!(host.samples.borrow()["istio_size"], vec![512, 512]);
    // request.size absent: that record is skipped and counted; the others still record.
    let s = slots(&c, &[(Source::Direction, Attr::Str("inbound".into()))]);
    c.table.record(&host, &d, &s, &RequestAttributes::default());
    c.table.flush(&host);
    assert_eq!(host.samples.borrow()["istio_size"].len(), 2);
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
    let problems = compile(&c, &mut vocab).problems;
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].path, "metrics[2].buckets");
}

#[test]
fn build_metric() {
    let host = FakeHost::default();
    MetricTable::default().record_build(&host, "1.17.0");
    assert_eq!(
        host.value("component=.=proxy;.;tag=.=1.17.0;.;istio_build"),
        Some(1)
    );
}

/// Every series of `metric` a host recorded: labels (by the table's own `stats_tags`) → value.
fn series_of(host: &FakeHost, t: &MetricTable, metric: &str) -> Vec<(Vec<(String, String)>, i64)> {
    let tags = t.stats_tags();
    host.values
        .borrow()
        .iter()
        .filter_map(|(n, v)| {
            let (rest, labels) = stat_name::extract(n, &tags);
            (rest == metric).then_some((labels, *v))
        })
        .collect()
}

fn defined_named(host: &FakeHost, metric: &str) -> usize {
    host.metrics
        .borrow()
        .iter()
        .filter(|(_, n)| n.ends_with(metric))
        .count()
}

#[test]
fn series_cap_holds_then_overflow_keeps_totals() {
    use crate::labels::idx;
    for encoding in [stat_name::Encoding::Istio, stat_name::Encoding::Compact] {
        let host = FakeHost::default();
        let mut c = table(r#"{"max_series_per_metric": 3}"#);
        c.table.set_encoding(encoding);
        c.table.define_counters(&host);
        let mut d = dims("200");
        d.values[idx::REPORTER] = "source".into();
        let req = RequestAttributes {
            request_bytes: 7,
            ..Default::default()
        };
        for i in 0..10 {
            d.values[idx::DESTINATION_SERVICE] = format!("svc{i}.example");
            c.table.record(&host, &d, &[], &req);
        }
        // A tuple admitted before the cap keeps its own series.
        d.values[idx::DESTINATION_SERVICE] = "svc1.example".into();
        c.table.record(&host, &d, &[], &req);
        c.table.flush(&host);

        for m in [
            "istio_requests_total",
            "istio_request_duration_milliseconds",
            "istio_request_bytes",
            "istio_response_bytes",
        ] {
            assert_eq!(defined_named(&host, m), 4, "{m}: 3 series + 1 overflow");
        }
        let series = series_of(&host, &c.table, "istio_requests_total");
        let mut got: Vec<(String, i64)> = series
            .iter()
            .map(|(labels, v)| {
                let svc = &labels
                    .iter()
                    .find(|(k, _)| k == "destination_service")
                    .unwrap()
                    .1;
                (svc.clone(), *v)
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("meshstats_overflow".to_string(), 7),
                ("svc0.example".to_string(), 1),
                ("svc1.example".to_string(), 2),
                ("svc2.example".to_string(), 1),
            ]
        );
        let (overflow, _) = series
            .iter()
            .find(|(l, _)| l.iter().any(|(_, v)| v == OVERFLOW_VALUE))
            .unwrap();
        assert_eq!(overflow.len(), 25);
        for (k, v) in overflow {
            let want = if k == "reporter" {
                "source"
            } else {
                OVERFLOW_VALUE
            };
            assert_eq!(v, want, "{k}");
        }
        let samples = host.samples.borrow();
        let overflow_bytes: usize = samples
            .iter()
            .filter(|(n, _)| n.ends_with("istio_request_bytes"))
            .map(|(_, s)| s.len())
            .sum();
        assert_eq!(overflow_bytes, 11, "every request recorded once");
        assert_eq!(host.value(SERIES_OVERFLOW_METRIC), Some(7));
        let warnings: Vec<String> = host
            .logs
            .borrow()
            .iter()
            .filter(|(l, _)| *l == LogLevel::Warn)
            .map(|(_, m)| m.clone())
            .collect();
        assert_eq!(
            warnings,
            [
                "meshstats: istio_requests_total, istio_request_duration_milliseconds, \
              istio_request_bytes, istio_response_bytes reached max_series_per_metric (3) \
              distinct label sets; new label sets are recorded in the series whose labels are \
              \"meshstats_overflow\" and counted in meshstats_series_overflow_total (logged once)"
            ]
        );
        assert_eq!(c.table.cached_tuples(), 3);
    }
}

#[test]
fn overflow_reporter_is_one_of_the_reporters_or_overflow() {
    use crate::labels::idx;
    let host = FakeHost::default();
    let mut c = table(r#"{"max_series_per_metric": 1}"#);
    c.table.define_counters(&host);
    let mut d = dims("200");
    for (i, reporter) in ["destination", "destination", "waypoint", "x1", "x2"]
        .iter()
        .enumerate()
    {
        d.values[idx::REPORTER] = reporter.to_string();
        d.values[idx::DESTINATION_SERVICE] = format!("s{i}");
        c.table
            .record(&host, &d, &[], &RequestAttributes::default());
    }
    c.table.flush(&host);
    let mut got: Vec<(String, String, i64)> = series_of(&host, &c.table, "istio_requests_total")
        .into_iter()
        .map(|(l, v)| (l[0].1.clone(), l[idx::DESTINATION_SERVICE].1.clone(), v))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("destination".into(), "meshstats_overflow".into(), 1),
            ("destination".into(), "s0".into(), 1),
            ("meshstats_overflow".into(), "meshstats_overflow".into(), 2),
            ("waypoint".into(), "meshstats_overflow".into(), 1),
        ]
    );
    assert_eq!(host.value(SERIES_OVERFLOW_METRIC), Some(4));
}

#[test]
fn label_values_are_cut_to_the_length_limit_on_a_char_boundary() {
    use crate::labels::idx;
    let host = FakeHost::default();
    let mut c = table(r#"{"max_label_value_length": 5}"#);
    let mut d = dims("200");
    d.values[idx::DESTINATION_SERVICE] = "abcdefghij".into();
    d.values[4] = "ééé".into();
    c.table
        .record(&host, &d, &[], &RequestAttributes::default());
    // Values that differ only past the limit are one series.
    d.values[idx::DESTINATION_SERVICE] = "abcdeXYZ".into();
    c.table
        .record(&host, &d, &[], &RequestAttributes::default());
    c.table.flush(&host);
    let series = series_of(&host, &c.table, "istio_requests_total");
    assert_eq!(series.len(), 1);
    assert_eq!(
        host.metrics.borrow().len(),
        4,
        "one tuple, one set of metrics"
    );
    let (labels, n) = &series[0];
    assert_eq!(*n, 2);
    assert_eq!(labels[idx::DESTINATION_SERVICE].1, "abcde");
    assert_eq!(labels[4].1, "éé");
    assert_eq!(labels[idx::SOURCE_WORKLOAD].1, "v1");
}

#[test]
fn compact_names_put_short_values_first_and_read_back_exactly() {
    let host = FakeHost::default();
    let mut c = table(
        r#"{"metrics": [{"tags_to_remove": ["source_principal", "destination_principal"]},
                        {"name": "requests_total", "dimensions": {"user": "'a;.;b=.=c.'"}}]}"#,
    );
    c.table.set_encoding(stat_name::Encoding::Compact);
    let mut d = dims("200");
    d.values[crate::labels::idx::DESTINATION_SERVICE] = "reviews.default.svc.cluster.local".into();
    c.table
        .record(&host, &d, &[], &RequestAttributes::default());
    c.table.flush(&host);
    let names: Vec<String> = host
        .metrics
        .borrow()
        .iter()
        .map(|(_, n)| n.clone())
        .collect();
    let name = names
        .iter()
        .find(|n| n.ends_with("istio_requests_total"))
        .unwrap();
    // `reporter` is tag 0 (key `a`), `response_code` tag 23 (`x`), `user` the first custom
    // tag (25, `z`); fields ordered by value length.
    assert!(name.starts_with("av0;.;bv1;.;"), "{name}");
    assert!(name.contains(";.;x200;.;"), "{name}");
    assert!(
        name.ends_with(";.;za;_;b=_=c;.;oreviews.default.svc.cluster.local;.;istio_requests_total"),
        "{name}"
    );
    let series = series_of(&host, &c.table, "istio_requests_total");
    assert_eq!(series.len(), 1);
    let mut want: Vec<(String, String)> = STANDARD_LABELS
        .iter()
        .enumerate()
        .filter(|(i, _)| ![3, 11].contains(i))
        .map(|(i, t)| (t.to_string(), d.values[i].clone()))
        .collect();
    want.push(("user".into(), "a;_;b=_=c".into()));
    assert_eq!(series[0].0, want);
    // The build metric uses the same keys: `component` and `tag` come after `user`.
    let build = FakeHost::default();
    c.table.record_build(&build, "1.2.3");
    assert_eq!(build.value("Aproxy;.;B1.2.3;.;istio_build"), Some(1));
}

/// As Istio's plugin (tags belong to the name): a definition named like a standard metric
/// replaces its value and keeps its labels; with its own dimensions it has only those.
#[test]
fn a_definition_named_like_a_standard_metric_keeps_its_labels() {
    let c = table(
        r#"{"definitions": [{"name": "requests_total", "value": "10"},
                            {"name": "tcp_sent_bytes_total", "value": "1", "dimensions": {"x": "'y'"}}]}"#,
    );
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    let labels = c.table.labels_of("istio_requests_total").unwrap();
    assert_eq!(labels, STANDARD_LABELS.to_vec());
    assert_eq!(
        c.table.labels_of("istio_tcp_sent_bytes_total").unwrap(),
        ["x"]
    );
    assert!(c.unevaluable.is_empty());
}
