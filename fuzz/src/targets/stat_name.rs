//! Labels written into a stat name come back out of Envoy's tag extraction as written.
//!
//! The tags are what `meshstats render stats-config` renders for a configuration whose
//! custom dimension names are drawn from names that collide with the standard ones (suffixes
//! and extensions of them). A metric carries any subset of them, in any order, with hostile
//! values. Extraction is [`crate::envoy::Extractor`] (Envoy's semantics, independent of the
//! filter). Expected: every written tag comes back once, its value is the written one after
//! the documented sanitization, and what remains is the metric name.

use crate::envoy::Extractor;
use crate::gen::{below, flag, pick, string};
use arbitrary::Unstructured;
use meshstats_filter::config::{MetricConfig, PluginConfig};
use meshstats_filter::labels::STANDARD_LABELS;
use meshstats_filter::metrics::all_tag_names;
use meshstats_filter::stat_name::{extract, istio_tags, push_label};

/// Custom dimension names that end standard ones, or are extended by them, or by each other.
const TAG_NAMES: &[&str] = &[
    "app",
    "version",
    "code",
    "service",
    "name",
    "namespace",
    "cluster",
    "status",
    "flags",
    "policy",
    "protocol",
    "principal",
    "workload",
    "revision",
    "tag",
    "component",
    "x_tag",
    "my_component",
    "bar",
    "foo_bar",
    "o_bar",
    "user",
    "request_user",
    "_",
    "x",
];

const METRICS: &[&str] = &[
    "istio_requests_total",
    "istio_request_duration_milliseconds",
    "istio_tcp_sent_bytes_total",
    "double_request_count",
    "istio_build",
];

pub fn tag_name(u: &mut Unstructured<'_>) -> String {
    match below(u, 4) {
        0 => format!("x_{}", pick(u, &STANDARD_LABELS)),
        1 => {
            // A proper suffix of a standard label, cut at an underscore or anywhere.
            let std = pick(u, &STANDARD_LABELS);
            let cut = below(u, std.len());
            std.get(cut..)
                .unwrap_or(std)
                .trim_start_matches('_')
                .to_string()
        }
        _ => pick(u, TAG_NAMES).to_string(),
    }
}

/// What the filter's configuration renders as `stats_tags`, for these custom names.
pub fn config_with_tags(custom: &[String]) -> PluginConfig {
    PluginConfig {
        metrics: vec![MetricConfig {
            dimensions: custom.iter().map(|t| (t.clone(), "'x'".into())).collect(),
            ..MetricConfig::default()
        }],
        ..PluginConfig::default()
    }
}

/// `out` is `written` after the documented sanitization: trailing dots dropped, the `.` of
/// every `;.;` / `=.=` run and every line break replaced by `_`, nothing else changed.
pub fn assert_sanitized(written: &str, out: &str) {
    let t = written.trim_end_matches('.');
    let breaks = |s: &str| s.contains(";.;") || s.contains("=.=") || s.contains(['\n', '\r']);
    assert!(
        !breaks(out),
        "{out:?} (from {written:?}) still breaks extraction"
    );
    if !breaks(t) {
        assert_eq!(
            out, t,
            "{written:?} changed although nothing needed escaping"
        );
        return;
    }
    assert_eq!(out.len(), t.len(), "{written:?} -> {out:?}");
    for (a, b) in t.bytes().zip(out.bytes()) {
        assert!(
            a == b || (b == b'_' && matches!(a, b'.' | b'\n' | b'\r')),
            "{written:?} -> {out:?}: more than separators and line breaks changed"
        );
    }
}

pub fn run(data: &[u8]) {
    let u = &mut Unstructured::new(data);
    let custom: Vec<String> = (0..below(u, 5)).map(|_| tag_name(u)).collect();
    let tags = all_tag_names(&config_with_tags(&custom));
    let envoy = Extractor::new(&tags);

    let mut pool = tags.clone();
    let mut written: Vec<(String, String)> = Vec::new();
    for _ in 0..below(u, pool.len() + 1) {
        let tag = pool.remove(below(u, pool.len()));
        let value = if flag(u) {
            // An injection attempt naming another tag.
            format!("{}{}=.={};.;", string(u, 2), pick(u, &tags), string(u, 2))
        } else {
            string(u, 8)
        };
        written.push((tag, value));
    }
    let metric = *pick(u, METRICS);
    let mut name = String::new();
    for (t, v) in &written {
        push_label(&mut name, t, v);
    }
    name.push_str(metric);

    let (rest, mut got) = envoy.extract(&name);
    assert_eq!(
        rest, metric,
        "tag-extracted name of {name:?} (tags {tags:?})"
    );
    got.sort();
    let mut want = written.clone();
    want.sort();
    let got_tags: Vec<&str> = got.iter().map(|(t, _)| t.as_str()).collect();
    let want_tags: Vec<&str> = want.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        got_tags, want_tags,
        "tags of {name:?} (extractors {tags:?})"
    );
    for ((_, out), (_, value)) in got.iter().zip(&want) {
        assert_sanitized(value, out);
    }

    // `stat_name::extract` (what `meshstats` shows) must agree with Envoy.
    let tag_refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    let (ours_rest, mut ours) = extract(&name, &istio_tags(&tag_refs));
    ours.sort();
    assert_eq!(
        (ours_rest, ours),
        (rest, got),
        "stat_name::extract of {name:?}"
    );
}
