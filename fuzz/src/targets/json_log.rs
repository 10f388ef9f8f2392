//! JSON log lines: every string and value the writer is given comes out as JSON that
//! serde_json parses back to the same string / number / object, and every line a configured
//! log writes for a hostile request (headers, properties and peer metadata drawn from the
//! input) is one JSON object whose string fields read back exactly.

use crate::gen::{self, below, flag, pick, rest};
use crate::host::{one_request, FuzzHost};
use arbitrary::Unstructured;
use meshstats_filter::access_log::json::{write_str, write_value};
use meshstats_filter::access_log::LOG_PROPERTY;
use meshstats_filter::expr::Value;
use meshstats_filter::host::LogLevel;
use serde_json::{json, Map, Value as Json};
use std::borrow::Cow;

fn parse(out: &str) -> Json {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"))
}

fn no_raw_breaks(out: &str) {
    assert!(
        !out.bytes().any(|b| b < 0x20) && !out.contains(['\u{2028}', '\u{2029}']),
        "raw control character or line separator in {out:?}"
    );
}

fn writer(u: &mut Unstructured<'_>) {
    let s = gen::string(u, 12);
    let mut out = String::new();
    write_str(&mut out, &s);
    no_raw_breaks(&out);
    assert_eq!(parse(&out), Json::String(s.clone()), "write_str({s:?})");

    let entries = gen::pairs(u, &["a", "b", ""], 6);
    let value = match below(u, 7) {
        0 => Value::Str(Cow::Owned(s.clone())),
        1 => Value::Int(gen::int(u)),
        2 => Value::Double(gen::double(u)),
        3 => Value::Bool(flag(u)),
        4 => Value::Duration(gen::int(u)),
        5 => Value::Timestamp(gen::int(u)),
        _ => Value::Map(&entries),
    };
    out.clear();
    write_value(&mut out, &value, &mut Vec::new());
    no_raw_breaks(&out);
    let parsed = parse(&out);
    let mut display = String::new();
    value.write_to(&mut display);
    match value {
        Value::Str(s) => assert_eq!(parsed, Json::String(s.into_owned())),
        Value::Int(n) => assert_eq!(parsed, json!(n), "{out}"),
        Value::Double(d) if d.is_finite() => {
            // serde_json's own float parsing is not exact: read the digits with Rust's.
            assert!(parsed.is_number(), "{d:?} written as {out}");
            let back: f64 = out
                .parse()
                .unwrap_or_else(|e| panic!("{d:?} written as {out}: {e}"));
            assert!(back == d, "{d:?} written as {out} reads back as {back:?}");
        }
        Value::Double(d) => {
            let want = if d.is_nan() {
                "NaN"
            } else if d > 0.0 {
                "+Inf"
            } else {
                "-Inf"
            };
            assert_eq!(parsed, json!(want));
        }
        Value::Bool(b) => assert_eq!(parsed, json!(b)),
        Value::Duration(_) => assert_eq!(parsed, json!(display)),
        Value::Timestamp(_) => {
            let t = parsed
                .as_str()
                .unwrap_or_else(|| panic!("timestamp written as {out}"));
            let frac = t.rsplit('.').next().unwrap_or_default();
            assert!(
                frac.len() == 7
                    && frac.ends_with('Z')
                    && frac[..6].bytes().all(|b| b.is_ascii_digit()),
                "timestamp {t:?} (from {display:?}) has not six fraction digits and Z"
            );
        }
        Value::Map(entries) => {
            // Keys sorted and unique; a repeated key holds its values joined by `,`.
            let mut want = Map::new();
            let mut sorted: Vec<&(String, String)> = entries.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            for (k, v) in sorted {
                match want.get_mut(k) {
                    Some(Json::String(s)) => {
                        s.push(',');
                        s.push_str(v);
                    }
                    _ => {
                        want.insert(k.clone(), json!(v));
                    }
                }
            }
            assert_eq!(parsed, Json::Object(want), "map {entries:?}");
        }
    }
}

/// A configuration with one to three logs over hostile names and attributes.
fn config(u: &mut Unstructured<'_>) -> (String, Vec<(String, String)>) {
    let mut logs = Vec::new();
    let mut instances = Vec::new();
    for i in 0..1 + below(u, 3) {
        let name = format!("log{i}{}", gen::string(u, 3));
        let instance = flag(u).then(|| gen::string(u, 4));
        let mut variables = Map::new();
        for _ in 0..below(u, 4) {
            let key = gen::string(u, 2);
            variables.insert(key, json!(crate::targets::expr::source(u)));
        }
        variables.insert("rid".into(), json!("request.id"));
        let mut log = json!({"name": name, "variables": variables});
        if let Some(inst) = &instance {
            log["instance"] = json!(inst);
        }
        if flag(u) {
            log["preset"] = json!(pick(u, &["istio", "mixer"]));
        }
        if flag(u) {
            log["severity"] = json!(pick(u, &["'warning'", "'ERROR'", "request.id", "1", "x"]));
        }
        if flag(u) {
            log["timestamp"] = json!(pick(u, &["request.time", "timestamp(request.id)", "1"]));
        }
        instances.push((name.clone(), instance.unwrap_or(name)));
        logs.push(log);
    }
    let delivery = *pick(u, &["filter_state", "proxy_log"]);
    let text = json!({"logs": logs, "log_delivery": delivery}).to_string();
    (text, instances)
}

fn lines(u: &mut Unstructured<'_>) {
    let (text, instances) = config(u);
    let host = FuzzHost::new(rest(u));
    one_request(&host, &text);
    let rid = host.property_drawn(&["request", "id"]);
    let out = host.out.borrow();
    let mut all: Vec<String> = out
        .properties_set
        .iter()
        .filter(|(p, _)| p == &[LOG_PROPERTY])
        .flat_map(|(_, v)| {
            let text = std::str::from_utf8(v).unwrap_or_else(|e| panic!("{e}: {v:?}"));
            text.split('\n').map(str::to_string).collect::<Vec<_>>()
        })
        .collect();
    all.extend(
        out.logs
            .iter()
            .filter(|(l, m)| *l == LogLevel::Info && m.starts_with("{\"level\""))
            .map(|(_, m)| m.clone()),
    );
    for line in all {
        no_raw_breaks(&line);
        let Json::Object(fields) = parse(&line) else {
            panic!("not an object: {line:?}");
        };
        assert!(line.starts_with("{\"level\":\""), "{line}");
        assert!(fields.contains_key("level"), "{line}");
        let instance = fields.get("instance").and_then(Json::as_str);
        assert!(
            instances.iter().any(|(_, i)| Some(i.as_str()) == instance),
            "instance {instance:?} is none of {instances:?}"
        );
        // The request id property, read as the filter reads any string: lossy UTF-8.
        if let (Some(bytes), Some(got)) = (&rid, fields.get("rid")) {
            assert_eq!(got, &json!(String::from_utf8_lossy(bytes)), "{line}");
        }
    }
}

pub fn run(data: &[u8]) {
    let u = &mut Unstructured::new(data);
    if flag(u) {
        writer(u);
    } else {
        lines(u);
    }
}
