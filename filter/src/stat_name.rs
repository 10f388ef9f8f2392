//! How labels travel inside Envoy stat names, and the `stats_tags` that take them out again.
//!
//! proxy-wasm can only define a metric by name, so every label is encoded into the name as
//! `<tag>=.=<value>;.;` before the metric name itself (Istio's own encoding, so an Istio
//! bootstrap that already extracts the standard labels keeps working). Envoy turns them into
//! Prometheus labels with one `stats_tags` regex per tag, applied in the order labels are
//! written, each removing its own `tag=.=value;.;` run from the front of the name.
//!
//! Values are written as they are, with three exceptions. Envoy stores tag values as
//! dot-separated tokens and drops trailing dots, so they are trimmed here first (otherwise
//! `a.` and `a` would be two stats with one label set, which Prometheus rejects as duplicate
//! series). To keep extraction unambiguous a value may not contain a separator (`;.;`,
//! `=.=`): such runs have their `.` replaced by `_`. And Envoy's regexes are ECMAScript, whose
//! `.` does not match `\n` or `\r`: a value holding one would not be extracted at all (the
//! whole label run would stay in the metric's name, a new series per value), so line breaks
//! become `_` too. Every other value, whatever its bytes, comes out of Envoy exactly as it
//! went in.

/// Separates one `tag=.=value` field from the next.
pub const FIELD_SEPARATOR: &str = ";.;";
/// Separates a tag's name from its value.
pub const VALUE_SEPARATOR: &str = "=.=";

/// The `stats_tags` regex that extracts `tag` (first group: the run to remove; second: the value).
pub fn tag_regex(tag: &str) -> String {
    format!("({}=\\.=(.*?);\\.;)", regex_escape(tag))
}

/// Appends `tag=.=value;.;` to `buf`, neutralizing separator runs and line breaks in `value`.
pub fn push_label(buf: &mut String, tag: &str, value: &str) {
    buf.push_str(tag);
    buf.push_str(VALUE_SEPARATOR);
    push_value(buf, value);
    buf.push_str(FIELD_SEPARATOR);
}

/// Appends a label value; allocation-free for the common case of a value with no separator.
pub fn push_value(buf: &mut String, value: &str) {
    let value = value.trim_end_matches('.');
    if !needs_escape(value) {
        buf.push_str(value);
        return;
    }
    let start = buf.len();
    buf.push_str(value);
    // Only ASCII bytes are rewritten, so the buffer stays valid UTF-8 at every step.
    let mut bytes = std::mem::take(buf).into_bytes();
    if let Some(tail) = bytes.get_mut(start..) {
        escape_in_place(tail);
    }
    *buf = String::from_utf8(bytes).unwrap_or_default();
}

/// True when `value` would break extraction if written as it is (trailing dots aside).
pub fn needs_escape(value: &str) -> bool {
    value.contains(FIELD_SEPARATOR)
        || value.contains(VALUE_SEPARATOR)
        || value.contains(['\n', '\r'])
}

fn escape_in_place(v: &mut [u8]) {
    for b in v.iter_mut().filter(|b| matches!(b, b'\n' | b'\r')) {
        *b = b'_';
    }
    let n = v.len();
    let mut i = 0;
    while i + 2 < n {
        let (a, b, c) = (byte(v, i), byte(v, i + 1), byte(v, i + 2));
        if b == b'.' && ((a == b';' && c == b';') || (a == b'=' && c == b'=')) {
            if let Some(dot) = v.get_mut(i + 1) {
                *dot = b'_';
            }
        }
        i += 1;
    }
}

fn byte(v: &[u8], i: usize) -> u8 {
    v.get(i).copied().unwrap_or(0)
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// What Envoy's tag extraction makes of an encoded name: the remaining name and the labels,
/// applying one `tag_regex` per tag in `tags` order (first match, lazy value), as Envoy does.
/// Used by tests and by `meshstats` to show what Prometheus will see.
pub fn extract(name: &str, tags: &[&str]) -> (String, Vec<(String, String)>) {
    let mut rest = name.to_string();
    let mut labels = Vec::new();
    for tag in tags {
        let open = format!("{tag}{VALUE_SEPARATOR}");
        let Some(start) = rest.find(&open) else {
            continue;
        };
        let value_start = start + open.len();
        let Some(len) = rest
            .get(value_start..)
            .and_then(|r| r.find(FIELD_SEPARATOR))
        else {
            continue;
        };
        let value = rest
            .get(value_start..value_start + len)
            .unwrap_or_default()
            .to_string();
        rest.replace_range(start..value_start + len + FIELD_SEPARATOR.len(), "");
        labels.push(((*tag).to_string(), value));
    }
    (rest, labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TAGS: [&str; 3] = ["reporter", "destination_service", "response_code"];

    fn encode(values: [&str; 3]) -> String {
        let mut buf = String::new();
        for (t, v) in TAGS.iter().zip(values) {
            push_label(&mut buf, t, v);
        }
        buf.push_str("istio_requests_total");
        buf
    }

    fn roundtrip(values: [&str; 3]) -> Vec<String> {
        let (name, labels) = extract(&encode(values), &TAGS);
        assert_eq!(name, "istio_requests_total");
        labels.into_iter().map(|(_, v)| v).collect()
    }

    #[test]
    fn plain_values_round_trip_exactly() {
        for v in [
            "",
            "reviews.default.svc.cluster.local",
            "a;b",
            "k=v",
            ";",
            "=",
            ".x",
            "a..b",
            ";;",
            ";=",
            ".=",
            ".;",
            ";.x",
            "a b\tc",
            "ünïcødé ✓ 日本",
            "\"quoted\" \\ back",
            "spiffe://cluster.local/ns/default/sa/bookinfo-ratings",
        ] {
            assert_eq!(
                roundtrip(["source", v, "200"]),
                vec!["source", v, "200"],
                "{v:?}"
            );
        }
    }

    #[test]
    fn separators_inside_values_cannot_inject_labels() {
        let hostile = "x;.;response_code=.=999;.;";
        let got = roundtrip(["source", hostile, "200"]);
        assert_eq!(got, vec!["source", "x;_;response_code=_=999;_;", "200"]);
        assert_eq!(
            roundtrip(["=.=", ";.;", "=.=.=;.;.;"]),
            vec!["=_=", ";_;", "=_=_=;_;_;"]
        );
    }

    #[test]
    fn line_breaks_become_underscores() {
        // Found by fuzzing (meshstats-fuzz `stat_name`, checked in Envoy 1.40): ECMAScript's
        // `.` does not match `\n` or `\r`, so Envoy did not extract such a value at all and
        // kept `tag=.=a\nb;.;` in the metric's name (a peer's metadata can hold any string).
        assert!(needs_escape("a\nb") && needs_escape("\r"));
        assert_eq!(
            roundtrip(["a\nb", "x\r\n.", "\r;.;\n"]),
            vec!["a_b", "x__", "_;_;_"]
        );
    }

    #[test]
    fn trailing_dots_are_dropped_as_envoy_does() {
        assert_eq!(
            roundtrip(["trail.", "two..", "a;."]),
            vec!["trail", "two", "a;"]
        );
        assert_eq!(roundtrip([".", "..", ".lead"]), vec!["", "", ".lead"]);
    }

    #[test]
    fn regex_is_istio_compatible() {
        assert_eq!(tag_regex("reporter"), r"(reporter=\.=(.*?);\.;)");
        assert_eq!(tag_regex("a.b"), r"(a\.b=\.=(.*?);\.;)");
    }

    proptest! {
        #[test]
        fn every_value_round_trips_or_is_minimally_escaped(a in ".*", b in "[;.=a ]{0,12}", c in any::<String>()) {
            let got = roundtrip([&a, &b, &c]);
            for (orig, out) in [a, b, c].iter().zip(got) {
                let orig = orig.trim_end_matches('.');
                if needs_escape(orig) {
                    prop_assert_eq!(out.len(), orig.len());
                    prop_assert!(!needs_escape(&out));
                } else {
                    prop_assert_eq!(&out, orig);
                }
            }
        }
    }
}
