//! How labels travel inside Envoy stat names, and the `stats_tags` that take them out again.
//!
//! proxy-wasm can only define a metric by name, so every label is encoded into the name before
//! the metric name itself, and Envoy turns them back into Prometheus labels with one
//! `stats_tags` regex per tag. Envoy runs every regex over every new stat name (libc++
//! `std::regex`, about 65 ns per character scanned and per start position tried), so the
//! encoding decides what a new series costs. Two encodings, one Prometheus output:
//!
//! - [`Encoding::Istio`]: `<tag>=.=<value>;.;` in label order, Istio's own encoding. Istio's
//!   bootstrap already carries unanchored `(tag=\.=(.*?);\.;)` extractors for the standard
//!   tags and a bootstrap cannot remove them, so under Istio names must stay in this form.
//! - [`Encoding::Compact`]: `<key><value>;.;` with a short key per tag ([`tag_key`]), fields
//!   ordered by value length, and regexes anchored at the name's start
//!   ([`compact_tag_regex`]), so each regex matches at the first position it tries and scans
//!   only the fields before its own. For the bootstraps `meshstats render` writes.
//!
//! Envoy applies every extractor to the original name and removes what each one's first group
//! matched; the label order in its output is the extractor order, not the field order.
//!
//! Values are written as they are, with three exceptions. Envoy stores tag values as
//! dot-separated tokens and drops trailing dots, so they are trimmed here first (otherwise
//! `a.` and `a` would be two stats with one label set, which Prometheus rejects as duplicate
//! series). To keep extraction unambiguous a value may not contain a separator (`;.;`,
//! `=.=`): such runs have their `.` replaced by `_`. And Envoy's regexes are ECMAScript, whose
//! `.` does not match `\n` or `\r`: a value holding one would not be extracted at all (the
//! whole label run would stay in the metric's name, a new series per value), so line breaks
//! become `_` too. Every other value, whatever its bytes, comes out of Envoy exactly as it
//! went in (up to the configured length limit, [`bounded`]).

/// How a configuration writes labels into stat names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Encoding {
    #[default]
    Istio,
    Compact,
}

impl Encoding {
    /// The configuration's spelling, for log lines and docs.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Istio => "ISTIO",
            Encoding::Compact => "COMPACT",
        }
    }
}

/// Envoy's namespace for proxy-wasm metrics: every name Envoy's regexes see starts with it.
pub const WASM_NAMESPACE: &str = "wasmcustom.";

const KEY_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// The compact key of the `index`-th tag of a configuration: one character for the first 62,
/// then `_<n>_`. No key is a prefix of another, so a key at a field's start names the tag.
pub fn tag_key(index: usize) -> String {
    match KEY_CHARS.get(index) {
        Some(&c) => char::from(c).to_string(),
        None => format!("_{}_", index - KEY_CHARS.len()),
    }
}

/// The compact `stats_tags` regex for a tag with `key`. `^` makes a match at position 0 the
/// only one possible, the lazy skip crosses whole fields (values contain no `;.;`), so the
/// key can only match where a field starts. Kept free of nested quantifiers: libc++ throws
/// `error_complexity` on those, which Envoy does not catch.
pub fn compact_tag_regex(key: &str) -> String {
    format!(
        "^wasmcustom\\.(?:.*?;\\.;)??({}(.*?);\\.;)",
        regex_escape(key)
    )
}

/// The longest prefix of `value` of at most `max` bytes that ends on a character boundary.
pub fn bounded(value: &str, max: usize) -> &str {
    if value.len() <= max {
        return value;
    }
    let mut end = max;
    while end > 0 && !value.is_char_boundary(end) {
        end -= 1;
    }
    value.get(..end).unwrap_or_default()
}

/// Appends `<key><value>;.;` (a compact field).
pub fn push_compact(buf: &mut String, key: &str, value: &str) {
    buf.push_str(key);
    push_value(buf, value);
    buf.push_str(FIELD_SEPARATOR);
}

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

/// What Envoy's tag extraction makes of a stat name (as defined, without `wasmcustom.`): the
/// remaining name and the labels. `tags` are `stats_tags` entries (tag name, regex); as Envoy
/// does, each regex runs on the original name, its first group is removed and its second is
/// the value, and labels come out in `tags` order. For the host tests and the fuzz targets.
pub fn extract(name: &str, tags: &[(String, String)]) -> (String, Vec<(String, String)>) {
    let full = format!("{WASM_NAMESPACE}{name}");
    let mut remove: Vec<(usize, usize)> = Vec::new();
    let mut labels = Vec::new();
    for (tag, regex) in tags {
        let Ok(re) = regex_lite::Regex::new(regex) else {
            continue;
        };
        let Some(caps) = re.captures(&full) else {
            continue;
        };
        let Some(whole) = caps.get(1) else { continue };
        let value = caps.get(2).unwrap_or(whole).as_str().to_string();
        remove.push((whole.start(), whole.end()));
        labels.push((tag.clone(), value));
    }
    let rest: String = full
        .char_indices()
        .filter(|(i, _)| !remove.iter().any(|&(s, e)| *i >= s && *i < e))
        .map(|(_, c)| c)
        .collect();
    let rest = rest
        .strip_prefix(WASM_NAMESPACE)
        .unwrap_or(&rest)
        .to_string();
    (rest, labels)
}

/// The Istio-encoding `stats_tags` entries for `tags`, for [`extract`].
pub fn istio_tags(tags: &[&str]) -> Vec<(String, String)> {
    tags.iter().map(|t| (t.to_string(), tag_regex(t))).collect()
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
        let (name, labels) = extract(&encode(values), &istio_tags(&TAGS));
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

    #[test]
    fn compact_keys_are_prefix_free() {
        let keys: Vec<String> = (0..300).map(tag_key).collect();
        assert_eq!(
            (&keys[0][..], &keys[61][..], &keys[62][..]),
            ("a", "9", "_0_")
        );
        for (i, a) in keys.iter().enumerate() {
            for (j, b) in keys.iter().enumerate() {
                assert!(i == j || !b.starts_with(a.as_str()), "{a} prefixes {b}");
            }
        }
        assert_eq!(
            compact_tag_regex("a"),
            r"^wasmcustom\.(?:.*?;\.;)??(a(.*?);\.;)"
        );
    }

    #[test]
    fn bounded_cuts_on_a_char_boundary() {
        assert_eq!(bounded("abcdef", 3), "abc");
        assert_eq!(bounded("ab", 3), "ab");
        assert_eq!(bounded("aé", 2), "a");
        assert_eq!(bounded("日本", 5), "日");
    }

    proptest! {
        /// Any values, in any field order, with one- and three-character keys: the compact
        /// regexes read each back exactly (or minimally escaped) and leave only the name.
        #[test]
        fn compact_fields_in_any_order_round_trip(
            values in proptest::collection::vec(any::<String>(), 3),
            order in Just(vec![0usize, 1, 2]).prop_shuffle(),
        ) {
            let keys = [tag_key(0), tag_key(62), tag_key(70)];
            let names = ["reporter", "x", "y"];
            let mut name = String::new();
            for &i in &order {
                push_compact(&mut name, &keys[i], &values[i]);
            }
            name.push_str("istio_requests_total");
            let tags: Vec<(String, String)> = names
                .iter()
                .zip(&keys)
                .map(|(n, k)| (n.to_string(), compact_tag_regex(k)))
                .collect();
            let (rest, labels) = extract(&name, &tags);
            prop_assert_eq!(rest, "istio_requests_total");
            prop_assert_eq!(labels.len(), 3);
            for ((tag, out), (want_tag, orig)) in labels.iter().zip(names.iter().zip(&values)) {
                prop_assert_eq!(tag, want_tag);
                let orig = orig.trim_end_matches('.');
                if needs_escape(orig) {
                    prop_assert_eq!(out.len(), orig.len());
                } else {
                    prop_assert_eq!(out, orig);
                }
            }
        }

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
