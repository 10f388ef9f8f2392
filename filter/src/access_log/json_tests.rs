//! The JSON writer: every string any attribute can hold reads back unchanged.

use super::json::{write_str, write_time, write_value};
use super::{level, Sampler};
use crate::expr::Value;
use std::borrow::Cow;

fn string_json(s: &str) -> String {
    let mut out = String::new();
    write_str(&mut out, s);
    out
}

fn value_json(v: Value<'_>) -> String {
    let mut out = String::new();
    write_value(&mut out, &v, &mut Vec::new());
    out
}

#[test]
fn hostile_strings_read_back_unchanged() {
    let controls: String = (0u8..0x20).map(char::from).collect();
    let megabyte = "\"\\\u{2028}x\n".repeat(200_000);
    let cases = [
        "",
        "plain",
        "quote \" backslash \\ slash /",
        controls.as_str(),
        "\u{7f} del, \u{2028} line sep, \u{2029} para sep, \u{fffd} replacement",
        "ünïcödé ✓ 🦀 \u{e2}",
        "\\u0000 written out",
        "ends with backslash \\",
        megabyte.as_str(),
    ];
    for s in cases {
        let json = string_json(s);
        let back: String =
            serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json:.200}"));
        assert_eq!(back, s);
        assert!(
            !json.bytes().any(|b| b < 0x20),
            "raw control character in {json:.200}"
        );
        assert!(!json.contains('\u{2028}') && !json.contains('\u{2029}'));
    }
    assert_eq!(
        string_json("a\"b\\c\nd\te\u{1}f\u{2028}"),
        r#""a\"b\\c\nd\te\u0001f\u2028""#
    );
    assert_eq!(string_json("\u{8}\u{c}\r\u{1f}"), r#""\b\f\r\u001f""#);
}

#[test]
fn invalid_utf8_becomes_replacement_characters() {
    // Attribute bytes are decoded lossily before they reach the writer.
    let s = crate::host::decode::string(vec![b'a', 0xff, 0xfe, b'"']);
    let back: String = serde_json::from_str(&string_json(&s)).unwrap();
    assert_eq!(back, "a\u{fffd}\u{fffd}\"");
}

#[test]
fn values_by_type() {
    assert_eq!(value_json(Value::Int(-42)), "-42");
    assert_eq!(value_json(Value::Double(1.5)), "1.5");
    assert_eq!(value_json(Value::Double(2.0)), "2");
    assert_eq!(value_json(Value::Double(1e20)), "100000000000000000000");
    assert_eq!(value_json(Value::Double(1e21)), "1e21");
    assert_eq!(value_json(Value::Double(0.000001)), "0.000001");
    assert_eq!(value_json(Value::Double(-1.5e-7)), "-1.5e-7");
    assert_eq!(value_json(Value::Double(0.0)), "0");
    assert_eq!(value_json(Value::Double(f64::NAN)), "\"NaN\"");
    assert_eq!(value_json(Value::Double(f64::INFINITY)), "\"+Inf\"");
    assert_eq!(value_json(Value::Double(f64::NEG_INFINITY)), "\"-Inf\"");
    assert_eq!(value_json(Value::Bool(true)), "true");
    assert_eq!(value_json(Value::Duration(9_486_802)), "\"9.486802ms\"");
    assert_eq!(value_json(Value::Duration(1_500)), "\"1.5µs\"");
    assert_eq!(value_json(Value::Duration(0)), "\"0s\"");
    assert_eq!(
        value_json(Value::Timestamp(1_542_159_986_528_539_000)),
        "\"2018-11-14T01:46:26.528539Z\""
    );
    assert_eq!(value_json(Value::Str(Cow::Borrowed("x\"y"))), r#""x\"y""#);
    for d in [
        0.1,
        -0.0,
        123456.789,
        1e300,
        -2.5e-300,
        f64::MAX,
        f64::MIN_POSITIVE,
    ] {
        let json = value_json(Value::Double(d));
        assert_eq!(serde_json::from_str::<f64>(&json).unwrap(), d, "{json}");
    }
}

#[test]
fn maps_are_objects_with_sorted_keys_and_repeated_keys_joined() {
    let entries: Vec<(String, String)> = [
        ("b", "2"),
        ("a\"", "1"),
        ("set-cookie", "x=1"),
        ("c", ""),
        ("set-cookie", "y=\n2"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let json = value_json(Value::Map(&entries));
    assert_eq!(
        json,
        r#"{"a\"":"1","b":"2","c":"","set-cookie":"x=1,y=\n2"}"#
    );
    let back: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(back["set-cookie"], "x=1,y=\n2");
    assert_eq!(value_json(Value::Map(&[])), "{}");
}

#[test]
fn time_has_exactly_six_fraction_digits() {
    let time = |ns: i64| {
        let mut out = String::new();
        write_time(&mut out, ns);
        out
    };
    assert_eq!(
        time(1_542_159_986_528_539_000),
        "\"2018-11-14T01:46:26.528539Z\""
    );
    assert_eq!(
        time(1_542_159_986_528_539_999),
        "\"2018-11-14T01:46:26.528539Z\"",
        "truncated, not rounded"
    );
    assert_eq!(
        time(1_542_159_986_000_000_000),
        "\"2018-11-14T01:46:26.000000Z\""
    );
    assert_eq!(
        time(1_542_159_986_500_000_000),
        "\"2018-11-14T01:46:26.500000Z\""
    );
    assert_eq!(time(0), "\"1970-01-01T00:00:00.000000Z\"");
    assert_eq!(time(-1), "\"1969-12-31T23:59:59.999999Z\"");
    for ns in [i64::MIN, i64::MAX] {
        assert!(serde_json::from_str::<String>(&time(ns)).is_ok());
    }
}

#[test]
fn severities_map_to_the_stdio_levels() {
    for (severity, want) in [
        ("info", "info"),
        ("INFO", "info"),
        ("Info", "info"),
        ("", "info"),
        ("informational", "info"),
        ("warn", "warn"),
        ("warning", "warn"),
        ("WARNING", "warn"),
        ("Warn", "warn"),
        ("error", "error"),
        ("ERROR", "error"),
        ("Error", "error"),
        ("err", "error"),
        ("debug", "info"),
        ("warnings", "info"),
    ] {
        assert_eq!(level(severity), want, "{severity}");
    }
}

#[test]
fn sampling_is_deterministic() {
    let pattern = |fraction: f64, n: usize| {
        let mut s = Sampler::new(fraction);
        (0..n).map(|_| s.take()).collect::<Vec<bool>>()
    };
    assert_eq!(
        pattern(0.25, 8),
        [true, false, false, false, true, false, false, false]
    );
    assert_eq!(pattern(1.0, 3), [true, true, true]);
    assert_eq!(pattern(0.3, 100).iter().filter(|b| **b).count(), 30);
    assert_eq!(pattern(0.3, 10).iter().filter(|b| **b).count(), 3);
    assert_eq!(
        pattern(1e-9, 3),
        [true, false, false],
        "below the resolution: one per million"
    );
    assert_eq!(pattern(0.25, 8), pattern(0.25, 8));
}
