//! JSON for log lines, written by hand into reused buffers: a line is a handful of fields,
//! and a serializer would allocate per value where this appends in place.
//!
//! Strings are escaped per RFC 8259: `"` and `\`, control characters (`\n`, `\t`, … or
//! `\u00XX`), and also U+2028/U+2029, which some JavaScript-based log readers treat as line
//! breaks. Inputs are `&str`: attribute bytes that were not UTF-8 were already replaced by
//! U+FFFD when read, so any header value yields a valid line.

use crate::expr::Value;
use std::fmt::Write;

/// Appends `s` as a JSON string, quotes included.
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    escape_into(out, s);
    out.push('"');
}

/// Appends `s` escaped, without quotes. Unescaped runs are copied whole.
pub fn escape_into(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let (escape, len): (&str, usize) = match b {
            b'"' => ("\\\"", 1),
            b'\\' => ("\\\\", 1),
            b'\n' => ("\\n", 1),
            b'\r' => ("\\r", 1),
            b'\t' => ("\\t", 1),
            0x08 => ("\\b", 1),
            0x0c => ("\\f", 1),
            0..=0x1f => ("", 1),
            // U+2028 and U+2029 are E2 80 A8 and E2 80 A9.
            0xe2 if bytes.get(i + 1) == Some(&0x80) && bytes.get(i + 2) == Some(&0xa8) => {
                ("\\u2028", 3)
            }
            0xe2 if bytes.get(i + 1) == Some(&0x80) && bytes.get(i + 2) == Some(&0xa9) => {
                ("\\u2029", 3)
            }
            _ => continue,
        };
        // `i` is an ASCII byte or the first byte of a character: a char boundary.
        out.push_str(s.get(start..i).unwrap_or_default());
        if escape.is_empty() {
            let _ = write!(out, "\\u{:04x}", b);
        } else {
            out.push_str(escape);
        }
        start = i + len;
    }
    out.push_str(s.get(start..).unwrap_or_default());
}

/// Appends a value as JSON:
/// - strings escaped; ints and finite doubles as numbers (doubles in plain decimal, as
///   Mixer's zap encoder wrote them, from 1e21 and below 1e-6 as `1e21`, `1.5e-7`, as
///   JavaScript does); NaN and ±Inf as the strings `"NaN"`, `"+Inf"`, `"-Inf"` (zap's
///   choice; JSON has no such numbers);
/// - durations as Go's strings (`"9.486802ms"`), timestamps as [`write_time`];
/// - maps as objects with sorted keys; a key seen more than once (a repeated header) holds
///   its values joined by `,`, as HTTP combines them. `order` is scratch space.
pub fn write_value(out: &mut String, value: &Value<'_>, order: &mut Vec<usize>) {
    match value {
        Value::Str(s) => write_str(out, s),
        Value::Int(n) => {
            let _ = write!(out, "{n}");
        }
        // Plain decimals where JavaScript's JSON.stringify writes them, else exponent form,
        // so 1e300 is not 301 digits.
        Value::Double(d) if d.is_finite() && (*d == 0.0 || (1e-6..1e21).contains(&d.abs())) => {
            let _ = write!(out, "{d}");
        }
        Value::Double(d) if d.is_finite() => {
            let _ = write!(out, "{d:e}");
        }
        Value::Double(d) if d.is_nan() => out.push_str("\"NaN\""),
        Value::Double(d) => out.push_str(if *d > 0.0 { "\"+Inf\"" } else { "\"-Inf\"" }),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Duration(_) => {
            out.push('"');
            value.write_to(out);
            out.push('"');
        }
        Value::Timestamp(ns) => write_time(out, *ns),
        Value::Map(entries) => write_map(out, entries, order),
    }
}

/// Appends a timestamp as Mixer's stdio handler wrote `time`: RFC 3339 in UTC with exactly
/// six fraction digits (truncated) and `Z`, quoted: `"2018-11-14T01:46:26.528539Z"`.
pub fn write_time(out: &mut String, ns: i64) {
    out.push('"');
    let start = out.len();
    // The expression module writes the fewest fraction digits; reshape them to six.
    Value::Timestamp(ns).write_to(out);
    if out.ends_with('Z') {
        out.pop();
    }
    let digits = match out.get(start..).and_then(|t| t.rfind('.')) {
        Some(dot) => out.len() - (start + dot + 1),
        None => {
            out.push('.');
            0
        }
    };
    for _ in 6..digits {
        out.pop();
    }
    for _ in digits..6 {
        out.push('0');
    }
    out.push_str("Z\"");
}

fn write_map(out: &mut String, entries: &[(String, String)], order: &mut Vec<usize>) {
    let key = |i: usize| entries.get(i).map(|(k, _)| k.as_str());
    order.clear();
    order.extend(0..entries.len());
    // Ties broken by position, so repeated keys keep their order without a stable sort's
    // allocation.
    order.sort_unstable_by(|&a, &b| key(a).cmp(&key(b)).then(a.cmp(&b)));
    out.push('{');
    let mut last: Option<&str> = None;
    for &i in order.iter() {
        let Some((k, v)) = entries.get(i) else {
            continue;
        };
        if last == Some(k.as_str()) {
            out.push(',');
        } else {
            if last.is_some() {
                out.push_str("\",");
            }
            write_str(out, k);
            out.push_str(":\"");
            last = Some(k);
        }
        escape_into(out, v);
    }
    if last.is_some() {
        out.push('"');
    }
    out.push('}');
}
