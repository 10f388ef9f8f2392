use super::*;
use crate::host::fake::FakeHost;

fn table(json: &str) -> Result<MetricTable, ConfigError> {
    MetricTable::compile(&PluginConfig::parse(json).unwrap())
}

fn dims(code: &str) -> Dimensions {
    let mut d = Dimensions::default();
    for (i, v) in d.values.iter_mut().enumerate() {
        *v = format!("v{i}");
    }
    d.values[crate::labels::idx::RESPONSE_CODE] = code.into();
    d
}

fn stat(values: &Dimensions, labels: &[usize], name: &str) -> String {
    let mut s = String::new();
    for &l in labels {
        stat_name::push_label(&mut s, STANDARD_LABELS[l], &values.values[l]);
    }
    s + name
}

#[test]
fn records_four_metrics_once_per_request_with_all_labels() {
    let host = FakeHost::default();
    let mut t = table("{}").unwrap();
    assert_eq!(t.names().collect::<Vec<_>>(), ["istio_requests_total", "istio_request_duration_milliseconds", "istio_request_bytes", "istio_response_bytes"]);
    let req = RequestAttributes { duration_ns: 7_900_000, request_bytes: 120, response_bytes: 4096, ..Default::default() };
    let d = dims("200");
    for _ in 0..3 {
        t.record(&host, &d, &req);
    }
    let all: Vec<usize> = (0..25).collect();
    assert_eq!(host.value(&stat(&d, &all, "istio_requests_total")), Some(3));
    assert_eq!(host.samples.borrow()[&stat(&d, &all, "istio_request_duration_milliseconds")], vec![7, 7, 7]);
    assert_eq!(host.samples.borrow()[&stat(&d, &all, "istio_request_bytes")], vec![120; 3]);
    assert_eq!(host.samples.borrow()[&stat(&d, &all, "istio_response_bytes")], vec![4096; 3]);
    // Defined once: the later requests took the fast path.
    assert_eq!(host.metrics.borrow().len(), 4);
    assert_eq!(t.cached_tuples(), 1);
    t.record(&host, &dims("503"), &req);
    assert_eq!(host.metrics.borrow().len(), 8);
    assert_eq!(t.cached_tuples(), 2);
}

#[test]
fn drop_and_tags_to_remove() {
    let host = FakeHost::default();
    let mut t = table(
        r#"{"metrics": [{"name": "request_bytes", "drop": true},
                        {"tags_to_remove": ["source_principal"]},
                        {"name": "requests_total", "tags_to_remove": ["grpc_response_status", "response_flags"]}]}"#,
    )
    .unwrap();
    assert_eq!(t.names().collect::<Vec<_>>(), ["istio_requests_total", "istio_request_duration_milliseconds", "istio_response_bytes"]);
    let d = dims("200");
    t.record(&host, &d, &RequestAttributes::default());
    let counter: Vec<usize> = (0..25).filter(|i| ![3, 21, 24].contains(i)).collect();
    let hist: Vec<usize> = (0..25).filter(|i| *i != 3).collect();
    assert_eq!(host.value(&stat(&d, &counter, "istio_requests_total")), Some(1));
    assert!(host.samples.borrow().contains_key(&stat(&d, &hist, "istio_response_bytes")));
}

#[test]
fn override_errors_name_the_field() {
    let e = table(r#"{"metrics": [{"name": "request_count"}]}"#).unwrap_err();
    assert_eq!(e.path, "metrics[0].name");
    assert_eq!(e.reason, "unknown metric \"request_count\"; known metrics: requests_total, request_duration_milliseconds, request_bytes, response_bytes");
    let e = table(r#"{"metrics": [{}, {"tags_to_remove": ["reporter", "source_wl"]}]}"#).unwrap_err();
    assert_eq!(e.path, "metrics[1].tags_to_remove[1]");
    assert_eq!(e.reason, "\"source_wl\" is not a standard label");
}

#[test]
fn tag_names_cover_standard_build_and_custom_dimensions_in_order() {
    let c = PluginConfig::parse(r#"{"metrics": [{"dimensions": {"zz": "1", "reporter": "x", "aa": "2"}}]}"#).unwrap();
    let tags = all_tag_names(&c);
    assert_eq!(&tags[..25], &STANDARD_LABELS.map(String::from));
    assert_eq!(&tags[25..], ["component", "tag", "aa", "zz"]);
}

#[test]
fn build_metric() {
    let host = FakeHost::default();
    record_build(&host, "1.17.0");
    assert_eq!(host.value("component=.=proxy;.;tag=.=1.17.0;.;istio_build"), Some(1));
}
