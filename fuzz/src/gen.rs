//! Structured input from the fuzzer's bytes. Every helper is total: when the bytes run out,
//! `arbitrary` answers with the smallest choice, so a target never rejects an input.
//!
//! The dictionaries bias generation towards what the filter treats specially (separators of
//! stat names, JSON escapes, line breaks, tag names, attribute names), which random bytes
//! would almost never spell.

use arbitrary::Unstructured;

/// Pieces that stat names, JSON and header parsing treat specially.
pub const HOSTILE: &[&str] = &[
    ";.;",
    "=.=",
    ".",
    "..",
    ";",
    "=",
    ";.",
    ".;",
    "=.",
    ".=",
    "\n",
    "\r",
    "\r\n",
    "\t",
    "\0",
    "\u{1}",
    "\u{1f}",
    "\u{7f}",
    "\"",
    "\\",
    "\\u0000",
    "/",
    ",",
    "{",
    "}",
    "[",
    "]",
    ":",
    "\u{2028}",
    "\u{2029}",
    "\u{fffd}",
    "\u{e2}",
    "é",
    "日本",
    "🦀",
    " ",
    "a",
    "x",
    "0",
    "reporter=.=",
    "response_code=.=999;.;",
    "source_app=.=",
    "app=.=",
    "tag=.=",
    "istio_requests_total",
    "unknown",
    "spiffe://cluster.local/ns/default/sa/x",
];

pub fn below(u: &mut Unstructured<'_>, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    u.choose_index(n).unwrap_or(0)
}

pub fn pick<'x, T>(u: &mut Unstructured<'_>, items: &'x [T]) -> &'x T {
    let i = below(u, items.len());
    // `below` keeps `i` in range; the first item stands in for an empty list's none.
    items
        .get(i)
        .or_else(|| items.first())
        .expect("non-empty dictionary")
}

pub fn flag(u: &mut Unstructured<'_>) -> bool {
    u.arbitrary::<bool>().unwrap_or(false)
}

/// One chance in `n`.
pub fn one_in(u: &mut Unstructured<'_>, n: u8) -> bool {
    u.ratio(1, n.max(1)).unwrap_or(false)
}

/// A string of up to `max_parts` pieces, each hostile or arbitrary.
pub fn string(u: &mut Unstructured<'_>, max_parts: usize) -> String {
    let mut s = String::new();
    for _ in 0..below(u, max_parts + 1) {
        if flag(u) {
            let piece: &str = pick::<&str>(u, HOSTILE);
            s.push_str(piece);
        } else {
            let len = below(u, 9);
            for _ in 0..len {
                s.push(u.arbitrary::<char>().unwrap_or('a'));
            }
        }
    }
    s
}

pub fn int(u: &mut Unstructured<'_>) -> i64 {
    match below(u, 6) {
        0 => *pick(u, &[0, 1, -1, i64::MAX, i64::MIN, 200, 503, 1_000_000_000]),
        1 => u.int_in_range(-1000..=1000).unwrap_or(0),
        _ => u.arbitrary::<i64>().unwrap_or(0),
    }
}

pub fn double(u: &mut Unstructured<'_>) -> f64 {
    match below(u, 4) {
        0 => *pick(
            u,
            &[
                0.0,
                -0.0,
                0.5,
                1e-7,
                1e21,
                f64::MAX,
                f64::MIN_POSITIVE,
                5e-324,
                f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
                9.223_372_036_854_776e18,
            ],
        ),
        _ => u.arbitrary::<f64>().unwrap_or(0.0),
    }
}

/// Key/value pairs, repeated keys included (header maps may repeat a name).
pub fn pairs(u: &mut Unstructured<'_>, keys: &[&str], max: usize) -> Vec<(String, String)> {
    (0..below(u, max + 1))
        .map(|_| {
            let k = if !keys.is_empty() && flag(u) {
                pick(u, keys).to_string()
            } else {
                string(u, 2)
            };
            (k, string(u, 4))
        })
        .collect()
}

/// What is left of the input, for a second consumer (the hostile host).
pub fn rest<'a>(u: &mut Unstructured<'a>) -> &'a [u8] {
    let n = u.len();
    u.bytes(n).unwrap_or_default()
}
