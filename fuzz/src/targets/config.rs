//! Configurations: any text parses and compiles, or fails with one line naming the field;
//! the filter configured with it serves a hostile request; and every stat name it defines
//! comes back out of Envoy's tag extraction (with the `stats_tags` rendered for that same
//! configuration) as the metric's name and exactly its labels.
//!
//! Inputs are JSON built from the schema (every field, both spellings, wrong types now and
//! then, expressions from the expression target, hostile names), or one of the example
//! configurations with a few bytes changed.

use crate::envoy::Extractor;
use crate::gen::{self, below, flag, one_in, pick, rest};
use crate::host::{one_request, FuzzHost};
use crate::targets::{expr, stat_name};
use arbitrary::Unstructured;
use meshstats_filter::config::{PluginConfig, MAX_BUCKETS};
use meshstats_filter::labels::STANDARD_LABELS;
use meshstats_filter::metrics::{all_tag_names, bucket_settings, BUILD_LABELS};
use serde_json::{json, Map, Value as Json};

const EXAMPLES: &[&str] = &[
    include_str!("../../../envoyfilter/examples/customized.json"),
    include_str!("../../../envoyfilter/examples/double-request-count.json"),
    include_str!("../../../envoyfilter/examples/new-log.json"),
    include_str!("../../../envoyfilter/examples/istio-access-log.json"),
];

const METRIC_NAMES: &[&str] = &[
    "",
    "requests_total",
    "request_duration_milliseconds",
    "request_bytes",
    "response_bytes",
    "tcp_sent_bytes_total",
    "tcp_connections_opened_total",
    "request_messages_total",
    "nope",
];

fn any_json(u: &mut Unstructured<'_>, depth: u8) -> Json {
    match below(u, if depth == 0 { 5 } else { 7 }) {
        0 => Json::Null,
        1 => json!(flag(u)),
        2 => json!(gen::int(u)),
        3 => serde_json::Number::from_f64(gen::double(u)).map_or(Json::Null, Json::Number),
        4 => json!(gen::string(u, 4)),
        5 => Json::Array((0..below(u, 4)).map(|_| any_json(u, depth - 1)).collect()),
        _ => Json::Object(
            (0..below(u, 4))
                .map(|_| (gen::string(u, 2), any_json(u, depth - 1)))
                .collect(),
        ),
    }
}

/// Usually `good`, sometimes any JSON at all.
fn or_junk(u: &mut Unstructured<'_>, good: Json) -> Json {
    if one_in(u, 12) {
        any_json(u, 2)
    } else {
        good
    }
}

fn spelled(u: &mut Unstructured<'_>, snake: &str, camel: &str) -> String {
    if one_in(u, 4) { camel } else { snake }.to_string()
}

fn count(u: &mut Unstructured<'_>) -> Json {
    json!(*pick(
        u,
        &[
            0u64,
            1,
            5,
            20,
            100,
            101,
            1_000_000,
            u64::from(u32::MAX),
            1 << 33
        ]
    ))
}

fn buckets(u: &mut Unstructured<'_>) -> Json {
    match below(u, 4) {
        0 => {
            let bounds: Vec<Json> = (0..below(u, 6))
                .map(|_| {
                    serde_json::Number::from_f64(gen::double(u)).map_or(json!(1), Json::Number)
                })
                .collect();
            json!({"explicit_buckets": {"bounds": bounds}})
        }
        1 => json!({spelled(u, "linear_buckets", "linearBuckets"): {
            spelled(u, "num_finite_buckets", "numFiniteBuckets"): count(u),
            "width": gen::double(u).clamp(-10.0, 1e6), "offset": gen::int(u) % 1000}}),
        2 => json!({"exponential_buckets": {"num_finite_buckets": count(u),
            "growth_factor": *pick(u, &[0.5, 1.0, 1.5, 2.0, 10.0, 1e300]), "scale": gen::int(u) % 100}}),
        _ => any_json(u, 2),
    }
}

fn dimensions(u: &mut Unstructured<'_>) -> Json {
    let mut dims = Map::new();
    for _ in 0..below(u, 4) {
        let tag = match below(u, 3) {
            0 => pick(u, &STANDARD_LABELS).to_string(),
            1 => stat_name::tag_name(u),
            _ => gen::string(u, 2),
        };
        dims.insert(tag, json!(expr::source(u)));
    }
    Json::Object(dims)
}

fn structured(u: &mut Unstructured<'_>) -> Json {
    let mut top = Map::new();
    for _ in 0..below(u, 8) {
        let (key, value) = match below(u, 12) {
            0 => {
                let metrics: Vec<Json> = (0..below(u, 4))
                    .map(|_| {
                        let mut m =
                            json!({"name": pick(u, METRIC_NAMES), "dimensions": dimensions(u)});
                        if flag(u) {
                            m[spelled(u, "tags_to_remove", "tagsToRemove")] =
                                json!([pick(u, &STANDARD_LABELS), stat_name::tag_name(u)]);
                        }
                        if flag(u) {
                            m["match"] = json!(expr::source(u));
                        }
                        if one_in(u, 4) {
                            m["drop"] = json!(pick(u, &[json!(true), json!("true"), json!("yes")]));
                        }
                        if one_in(u, 3) {
                            m["buckets"] = buckets(u);
                        }
                        or_junk(u, m)
                    })
                    .collect();
                ("metrics".into(), json!(metrics))
            }
            1 | 2 => {
                let defs: Vec<Json> = (0..below(u, 4))
                    .map(|_| {
                        let mut d = json!({"name": gen::string(u, 2), "value": expr::source(u),
                            "type": pick(u, &["COUNTER", "GAUGE", "HISTOGRAM", "counter"])});
                        if flag(u) {
                            d["name"] = json!(pick(u, &["x", "double_request_count", "a:b"]));
                        }
                        if one_in(u, 3) {
                            d[spelled(u, "metric_name", "metricName")] = json!(gen::string(u, 2));
                        }
                        if flag(u) {
                            d["dimensions"] = dimensions(u);
                        }
                        if one_in(u, 3) {
                            d["buckets"] = buckets(u);
                        }
                        or_junk(u, d)
                    })
                    .collect();
                ("definitions".into(), json!(defs))
            }
            3 => (
                spelled(u, "tcp_reporting_duration", "tcpReportingDuration"),
                json!(pick(
                    u,
                    &[
                        "5s",
                        "0.5s",
                        "0s",
                        "-1s",
                        "1e9s",
                        "18446744073709551616s",
                        "s",
                        "1.s"
                    ]
                )),
            ),
            4 => (
                "reporter".into(),
                json!(pick(u, &["UNSPECIFIED", "SERVER_GATEWAY", "x"])),
            ),
            5 => (
                spelled(u, "max_peer_cache_size", "maxPeerCacheSize"),
                count(u),
            ),
            6 => (
                spelled(
                    u,
                    "disable_host_header_fallback",
                    "disableHostHeaderFallback",
                ),
                json!(pick(u, &[json!(true), json!("false"), json!(1)])),
            ),
            7 => (
                spelled(u, "disable_metadata_exchange", "disableMetadataExchange"),
                json!(flag(u)),
            ),
            8 => (
                spelled(u, "stat_prefix", "statPrefix"),
                json!(pick(u, &["istio", "envoy"])),
            ),
            9 => {
                let logs: Vec<Json> = (0..below(u, 3))
                    .map(|_| {
                        let mut l = json!({"name": gen::string(u, 2), "match": expr::source(u),
                            "variables": {gen::string(u, 1): expr::source(u)}});
                        if flag(u) {
                            l["preset"] = json!(pick(u, &["istio", "mixer", "envoy"]));
                        }
                        if flag(u) {
                            l["sampling"] = json!(gen::double(u).clamp(-1.0, 2.0));
                        }
                        or_junk(u, l)
                    })
                    .collect();
                ("logs".into(), json!(logs))
            }
            10 => (
                spelled(u, "log_delivery", "logDelivery"),
                json!(pick(u, &["proxy_log", "filter_state", "x"])),
            ),
            _ => (gen::string(u, 2), any_json(u, 2)),
        };
        top.insert(key, value);
    }
    Json::Object(top)
}

fn mutated_example(u: &mut Unstructured<'_>) -> String {
    let mut text = pick(u, EXAMPLES).as_bytes().to_vec();
    for _ in 0..1 + below(u, 4) {
        let at = below(u, text.len() + 1);
        match below(u, 3) {
            0 => {
                let end = (at + below(u, 8)).min(text.len());
                text.drain(at..end);
            }
            1 => {
                let piece = pick(u, gen::HOSTILE).as_bytes();
                text.splice(at..at, piece.iter().copied());
            }
            _ => {
                if let Some(b) = text.get_mut(at) {
                    *b = u.arbitrary().unwrap_or(b'"');
                }
            }
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

fn one_line(what: &str, text: &str) {
    assert!(!text.contains('\n'), "{what} is not one line: {text:?}");
}

/// Every stat name the filter defined reads back, through Envoy's extraction with the
/// `stats_tags` of `config`, as a metric of the table with exactly that metric's labels.
fn check_stat_names(
    config: &PluginConfig,
    root: &meshstats_filter::plugin::Root,
    host: &FuzzHost<'_>,
) {
    let tags = all_tag_names(config);
    let envoy = Extractor::new(&tags);
    for (_, name) in &host.out.borrow().metrics {
        let (rest, got) = envoy.extract(name);
        let mut got_tags: Vec<&str> = got.iter().map(|(t, _)| t.as_str()).collect();
        got_tags.sort_unstable();
        let mut want: Vec<&str> = match root.metrics().labels_of(&rest) {
            Some(labels) => labels,
            None if rest == "istio_build" => BUILD_LABELS.to_vec(),
            None => {
                assert!(
                    !name.contains("=.="),
                    "{name:?} extracts to {rest:?}, no metric of the table"
                );
                continue;
            }
        };
        want.sort_unstable();
        assert_eq!(got_tags, want, "labels of {name:?} (stats_tags {tags:?})");
        for (_, value) in &got {
            stat_name::assert_sanitized(value, value);
        }
    }
}

pub fn run(data: &[u8]) {
    let u = &mut Unstructured::new(data);
    let text = match below(u, 4) {
        0 => mutated_example(u),
        1 => gen::string(u, 10),
        _ => {
            let v = structured(u);
            if flag(u) {
                serde_json::to_string_pretty(&v)
            } else {
                serde_json::to_string(&v)
            }
            .unwrap_or_default()
        }
    };
    let compiled = meshstats_filter::compile(&text);
    let config = match &compiled {
        Ok(c) => {
            for p in c.problems.iter().chain(&c.unevaluable) {
                one_line("a problem", &p.to_string());
                assert!(!p.path.is_empty(), "a problem names no field: {p}");
            }
            for b in bucket_settings(&c.config) {
                assert!(
                    (1..=MAX_BUCKETS).contains(&b.bounds.len())
                        && b.bounds.iter().all(|x| x.is_finite())
                        && b.bounds.windows(2).all(|w| w[0] < w[1]),
                    "buckets rendered for {}: {:?}",
                    b.metric,
                    b.bounds
                );
            }
            c.config.clone()
        }
        Err(e) => {
            let shown = e.to_string();
            one_line("the error", &shown);
            assert!(shown.starts_with("invalid meshstats config"), "{shown}");
            assert!(!e.reason.is_empty(), "{shown}");
            PluginConfig::default()
        }
    };
    // Deterministic: the filter's VMs and `meshstats validate` must agree.
    let again = meshstats_filter::compile(&text);
    assert_eq!(
        compiled
            .as_ref()
            .map(|c| (&c.problems, &c.unevaluable))
            .map_err(|e| e.to_string()),
        again
            .as_ref()
            .map(|c| (&c.problems, &c.unevaluable))
            .map_err(|e| e.to_string()),
    );
    let host = FuzzHost::new(rest(u));
    let root = one_request(&host, &text);
    check_stat_names(&config, &root, &host);
}
