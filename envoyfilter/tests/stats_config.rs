//! `stats_config` must extract every label the filter writes, in the order it writes them.

use meshstats_cli::{stats_config, stats_config_for};
use meshstats_filter::config::PluginConfig;
use meshstats_filter::labels::STANDARD_LABELS;
use meshstats_filter::metrics::all_tag_names;
use meshstats_filter::stat_name::{compact_tag_regex, tag_key, tag_regex, Encoding};
use serde_json::json;
use std::collections::BTreeSet;

/// Istio's standard metric labels (istio.io "Istio Standard Metrics").
const ISTIO_LABELS: [&str; 25] = [
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_canonical_service",
    "source_canonical_revision",
    "source_cluster",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_cluster",
    "request_protocol",
    "response_code",
    "grpc_response_status",
    "response_flags",
    "connection_security_policy",
];

fn tag_names(config: &PluginConfig) -> Vec<String> {
    let sc = stats_config(config);
    assert_eq!(sc["use_all_default_tags"], true);
    sc["stats_tags"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let name = t["tag_name"].as_str().unwrap().to_string();
            // Plain Envoy gets the COMPACT encoding: keys in tag order.
            assert_eq!(t["regex"], compact_tag_regex(&tag_key(i)));
            assert_eq!(t.as_object().unwrap().len(), 2);
            name
        })
        .collect()
}

#[test]
fn default_config_extracts_the_standard_labels_first_in_emission_order() {
    let config = PluginConfig::default();
    let names = tag_names(&config);
    assert_eq!(names, all_tag_names(&config));
    let standard: BTreeSet<&str> = names[..25].iter().map(String::as_str).collect();
    assert_eq!(standard, ISTIO_LABELS.into_iter().collect());
    assert_eq!(names[..25], STANDARD_LABELS, "the filter's writing order");
    assert_eq!(names[25..27], ["component", "tag"]);

    let sc = stats_config(&config);
    assert_eq!(
        sc["stats_tags"][1],
        json!({"tag_name": "source_workload", "regex": r"^wasmcustom\.(?:.*?;\.;)??(b(.*?);\.;)"})
    );
    let sc = stats_config_for(&config, Encoding::Istio);
    for (i, name) in names.iter().enumerate() {
        assert_eq!(sc["stats_tags"][i]["regex"], tag_regex(name));
    }
    let istio: PluginConfig = PluginConfig::parse(r#"{"stat_name_encoding": "ISTIO"}"#).unwrap();
    assert_eq!(
        stats_config(&istio),
        sc,
        "the config can ask for Istio's form"
    );
    for (i, name) in names[..25].iter().enumerate() {
        // Istio's own bootstrap regex, written out independently of `tag_regex`.
        assert_eq!(
            sc["stats_tags"][i],
            json!({"tag_name": name, "regex": format!("({name}=\\.=(.*?);\\.;)")})
        );
    }
}

#[test]
fn custom_dimensions_sit_between_standard_and_build_labels_longest_first() {
    let config = PluginConfig::parse(
        r#"{"metrics": [{"dimensions": {"route": "request.url_path", "reporter": "'x'"}},
                        {"name": "requests_total", "dimensions": {"route": "request.host", "a.b": "'y'", "user_agent": "request.useragent"}}]}"#,
    )
    .unwrap();
    let names = tag_names(&config);
    let unique: BTreeSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "tag named twice: {names:?}");
    assert_eq!(names[..25], STANDARD_LABELS);
    // `reporter` is standard; `a.b` is not a valid label name (the config reports it).
    assert_eq!(names[25..], ["user_agent", "route", "component", "tag"]);
}
