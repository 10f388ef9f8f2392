//! Mixer expressions made into expressions the filter compiles, checked by the filter's own
//! compiler (`meshstats_filter::expr::compile`) against its attribute vocabulary.
//!
//! Mixer's language is mostly ours already. What differs is rewritten, in this order:
//! 1. Mixer's type-conversion calls on a literal, `ip("0.0.0.0")`, `email(…)`, `dnsName(…)`,
//!    `uri(…)`, become the string literal (addresses are strings here).
//! 2. [`RENAMES`]: Mixer attributes the filter spells differently.
//! 3. An attribute a sidecar cannot know (`api.protocol`, `request.auth.*`, …) was absent in
//!    Mixer too unless an adapter or the client supplied it, and Mixer then took the `|`
//!    default. Where such an attribute is one alternative of a `|` chain it is removed, as
//!    always absent (`api.protocol | context.protocol | "unknown"` →
//!    `context.protocol | "unknown"`), and the caller reports it. Anywhere else the expression
//!    cannot be carried over.

use meshstats_filter::attributes::vocabulary::{Source, Vocabulary};
use meshstats_filter::expr::{self, Attr, Program, Type};

/// Mixer attributes the filter knows under another name: (Mixer's name, replacement).
/// The replacement is parenthesized when it is not a single name.
pub const RENAMES: &[(&str, &str)] = &[
    // The reporting proxy: the local node, which is `source` on the client side.
    (
        "context.reporter.uid",
        "conditional(context.reporter.kind == \"outbound\", source.uid, destination.uid)",
    ),
    // When the response was complete: the request's start plus its duration.
    ("response.time", "(request.time + response.duration)"),
];

/// Mixer's conversion functions of a string literal; each value is a plain string here.
const LITERAL_CONVERSIONS: &[&str] = &["ip", "email", "dnsName", "uri"];

/// An expression ready for the filter, and what was changed to get there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carried {
    pub source: String,
    /// Attributes treated as absent (removed from a `|` chain), in order.
    pub absent: Vec<String>,
}

/// Rewrites `source` (steps in the module doc) until the filter compiles it with the expected
/// type, or says why it cannot be carried over.
pub fn carry(source: &str, ty: Option<Type>) -> Result<Carried, String> {
    let mut text = rename(&convert_literals(source.trim()));
    let mut absent = Vec::new();
    // Each round removes one alternative, so this ends; the bound is only a backstop.
    for _ in 0..64 {
        let err = match compile(&text, ty) {
            Ok(_) => {
                return Ok(Carried {
                    source: text,
                    absent,
                })
            }
            Err(e) => e,
        };
        let Some(attr) = unknown_attribute(&err.message) else {
            return Err(format!("{err} in `{text}`"));
        };
        match remove_alternative(&text, err.column.saturating_sub(1)) {
            Some(shorter) => {
                absent.push(attr.to_string());
                text = shorter;
            }
            None => {
                return Err(format!(
                    "attribute `{attr}` is not available in the filter (docs/attributes.md) and has no `|` default"
                ))
            }
        }
    }
    Err(format!("cannot be carried over: `{text}`"))
}

/// Compiles with a fresh vocabulary, exactly as the filter would.
pub fn compile(source: &str, ty: Option<Type>) -> Result<Program, expr::ExprError> {
    expr::compile(source, ty, &mut Vocabulary::default())
}

/// The static type of a compiled expression (before any conversion to `ty`).
pub fn result_type(source: &str) -> Option<Type> {
    compile(source, None).ok().map(|p| p.result_type())
}

/// True when `predicate` is false for every HTTP request the filter sees, whatever else holds:
/// it is decided to false by `context.protocol` being `http` and being `grpc` (everything
/// else absent, which `&&` absorbs). Mixer's `context.protocol == "tcp"` rules are such.
pub fn never_holds_for_http(predicate: &str) -> bool {
    let mut vocab = Vocabulary::default();
    let Ok(program) = expr::compile(predicate, Some(Type::Bool), &mut vocab) else {
        return false;
    };
    ["http", "grpc"].iter().all(|protocol| {
        let slots: Vec<Option<Attr>> = vocab
            .slots()
            .iter()
            .map(|s| (s.source == Source::Protocol).then(|| Attr::Str(protocol.to_string())))
            .collect();
        program.eval_bool(&slots) == Ok(false)
    })
}

/// The string a string literal denotes, if `source` is exactly one.
pub fn string_literal(source: &str) -> Option<String> {
    let tokens = lex(source.trim());
    match tokens.as_slice() {
        [t] if t.kind == Kind::Str => unquote(&t.text),
        _ => None,
    }
}

/// A string as a literal of the expression language.
pub fn quote(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn unknown_attribute(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown attribute `")?;
    rest.split('`').next()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ident,
    Str,
    Num,
    Punct,
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    text: String,
    /// Char offsets: `start..end`.
    start: usize,
    end: usize,
}

/// A permissive tokenizer: enough to find names, literals and operators; the filter's own
/// compiler judges the result.
fn lex(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let start = i;
        let kind = if c.is_whitespace() {
            i += 1;
            continue;
        } else if c == '"' || c == '\'' {
            i += 1;
            while let Some(&d) = chars.get(i) {
                i += 1;
                if d == '\\' {
                    i += 1;
                } else if d == c {
                    break;
                }
            }
            Kind::Str
        } else if c.is_ascii_alphabetic() || c == '_' {
            while chars
                .get(i)
                .is_some_and(|d| d.is_ascii_alphanumeric() || *d == '_')
            {
                i += 1;
            }
            Kind::Ident
        } else if c.is_ascii_digit() {
            while chars
                .get(i)
                .is_some_and(|d| d.is_ascii_alphanumeric() || *d == '_' || *d == '.')
            {
                i += 1;
            }
            Kind::Num
        } else {
            let two: String = chars.iter().skip(i).take(2).collect();
            i += if ["&&", "||", "==", "!=", "<=", ">="].contains(&two.as_str()) {
                2
            } else {
                1
            };
            Kind::Punct
        };
        let i_end = i.min(chars.len());
        out.push(Token {
            kind,
            text: chars.get(start..i_end).unwrap_or_default().iter().collect(),
            start,
            end: i_end,
        });
    }
    out
}

fn unquote(literal: &str) -> Option<String> {
    let mut chars = literal.chars();
    let q = chars.next()?;
    let inner = literal.get(1..literal.len().checked_sub(1)?)?;
    if !literal.ends_with(q) || literal.len() < 2 {
        return None;
    }
    let mut out = String::new();
    let mut it = inner.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next()? {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            c @ ('"' | '\'' | '\\') => out.push(c),
            _ => return None,
        }
    }
    Some(out)
}

/// Replaces char ranges of `source` (sorted, not overlapping).
fn splice(source: &str, edits: &[(usize, usize, String)]) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::new();
    let mut at = 0;
    for (start, end, with) in edits {
        out.extend(chars.get(at..*start).unwrap_or_default());
        out.push_str(with);
        at = *end;
    }
    out.extend(chars.get(at..).unwrap_or_default());
    out
}

fn is_punct(t: Option<&Token>, p: &str) -> bool {
    t.is_some_and(|t| t.kind == Kind::Punct && t.text == p)
}

/// `ip("1.2.3.4")` → `"1.2.3.4"`.
fn convert_literals(source: &str) -> String {
    let tokens = lex(source);
    let mut edits = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let free = i == 0 || !is_punct(tokens.get(i.wrapping_sub(1)), ".");
        if t.kind == Kind::Ident
            && free
            && LITERAL_CONVERSIONS.contains(&t.text.as_str())
            && is_punct(tokens.get(i + 1), "(")
        {
            if let (Some(lit), true) = (
                tokens.get(i + 2).filter(|l| l.kind == Kind::Str),
                is_punct(tokens.get(i + 3), ")"),
            ) {
                let end = tokens.get(i + 3).map_or(lit.end, |c| c.end);
                edits.push((t.start, end, lit.text.clone()));
            }
        }
    }
    splice(source, &edits)
}

/// Applies [`RENAMES`] to whole attribute chains (`a.b.c` not preceded by `.` nor followed by
/// `.name`).
fn rename(source: &str) -> String {
    let tokens = lex(source);
    let mut edits = Vec::new();
    let mut i = 0;
    while let Some(t) = tokens.get(i) {
        let free = i == 0 || !is_punct(tokens.get(i - 1), ".");
        if t.kind != Kind::Ident || !free {
            i += 1;
            continue;
        }
        // The dotted chain from here.
        let mut j = i;
        let mut name = t.text.clone();
        while is_punct(tokens.get(j + 1), ".")
            && tokens.get(j + 2).is_some_and(|n| n.kind == Kind::Ident)
        {
            j += 2;
            name.push('.');
            name.push_str(tokens.get(j).map(|n| n.text.as_str()).unwrap_or_default());
        }
        if let Some((_, with)) = RENAMES.iter().find(|(from, _)| *from == name) {
            let end = tokens.get(j).map_or(t.end, |n| n.end);
            edits.push((t.start, end, with.to_string()));
        }
        i = j + 1;
    }
    splice(source, &edits)
}

/// Tokens that bind looser than `|` (or are `|`, which is left-associative), so an operand
/// next to them is a whole alternative.
fn loose_left(t: Option<&Token>) -> bool {
    match t {
        None => true,
        Some(t) if t.kind == Kind::Ident => t.text == "in",
        Some(t) if t.kind == Kind::Punct => [
            "(", ",", "[", "?", ":", "&&", "||", "==", "!=", "<", "<=", ">", ">=", "|",
        ]
        .contains(&t.text.as_str()),
        Some(_) => false,
    }
}

fn loose_right(t: Option<&Token>) -> bool {
    match t {
        None => true,
        Some(t) if t.kind == Kind::Ident => t.text == "in",
        Some(t) if t.kind == Kind::Punct => [
            ")", ",", "]", "?", ":", "&&", "||", "==", "!=", "<", "<=", ">", ">=", "|", "+", "-",
        ]
        .contains(&t.text.as_str()),
        Some(_) => false,
    }
}

/// Removes the `|` alternative that starts at char `column`: `X | rest` → `rest`,
/// `first | X` → `first`. `None` when the operand there is not a whole alternative.
fn remove_alternative(source: &str, column: usize) -> Option<String> {
    let tokens = lex(source);
    let first = tokens.iter().position(|t| t.start == column)?;
    // The operand: a name, then `.name`, `[…]` and `(…)` suffixes.
    let mut last = first;
    loop {
        let next = tokens.get(last + 1);
        if is_punct(next, ".") && tokens.get(last + 2).is_some_and(|t| t.kind == Kind::Ident) {
            last += 2;
        } else if is_punct(next, "[") || is_punct(next, "(") {
            let (open, close) = if is_punct(next, "[") {
                ("[", "]")
            } else {
                ("(", ")")
            };
            let mut depth = 0usize;
            let mut k = last + 1;
            loop {
                let t = tokens.get(k)?;
                if t.kind == Kind::Punct && t.text == open {
                    depth += 1;
                } else if t.kind == Kind::Punct && t.text == close {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                k += 1;
            }
            last = k;
        } else {
            break;
        }
    }
    let before = first.checked_sub(1).and_then(|b| tokens.get(b));
    let after = tokens.get(last + 1);
    let start = tokens.get(first)?.start;
    let end = tokens.get(last)?.end;
    if is_punct(after, "|") && loose_left(before) {
        // `X | rest`: up to the next alternative.
        let resume = tokens.get(last + 2)?.start;
        return Some(splice(source, &[(start, resume, String::new())]));
    }
    if is_punct(before, "|") && loose_right(after) {
        // `first | X`: from the end of `first`.
        let from = tokens.get(first.checked_sub(2)?)?.end;
        return Some(splice(source, &[(from, end, String::new())]));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(source: &str, ty: Option<Type>) -> (String, Vec<String>) {
        let c = carry(source, ty).unwrap_or_else(|e| panic!("{source}: {e}"));
        (c.source, c.absent)
    }

    #[test]
    fn mixer_expressions_pass_unchanged() {
        for s in [
            "conditional((context.reporter.kind | \"inbound\") == \"outbound\", \"client\", \"server\")",
            "source.labels[\"app\"] | source.workload.name | \"unknown\"",
            "response.duration | \"0ms\"",
            "context.time | timestamp(\"2017-01-01T00:00:00Z\")",
        ] {
            assert_eq!(ok(s, None), (s.to_string(), vec![]));
        }
    }

    #[test]
    fn unknown_alternatives_are_absent() {
        assert_eq!(
            ok(
                "api.protocol | context.protocol | \"unknown\"",
                Some(Type::String)
            ),
            (
                "context.protocol | \"unknown\"".to_string(),
                vec!["api.protocol".to_string()]
            )
        );
        assert_eq!(
            ok(
                "request.api_key | request.headers[\"x-api-key\"] | \"\"",
                None
            ),
            (
                "request.headers[\"x-api-key\"] | \"\"".to_string(),
                vec!["request.api_key".to_string()]
            )
        );
        assert_eq!(ok("request.auth.raw_claims | \"\"", None).0, "\"\"");
        assert_eq!(
            ok("request.host | request.auth.claims[\"iss\"]", None).0,
            "request.host"
        );
        assert_eq!(
            ok("(api.operation | \"x\") == \"y\"", Some(Type::Bool)).0,
            "(\"x\") == \"y\""
        );
        // Not a whole alternative: `a + X | b` is `(a + X) | b`.
        assert!(carry("request.host + api.service | \"x\"", None)
            .unwrap_err()
            .contains("`api.service`"));
        assert_eq!(
            carry("origin.ip", None).unwrap_err(),
            "attribute `origin.ip` is not available in the filter (docs/attributes.md) and has no `|` default"
        );
    }

    #[test]
    fn conversions_and_renames() {
        assert_eq!(
            ok("source.ip | ip(\"0.0.0.0\")", None).0,
            "source.ip | \"0.0.0.0\""
        );
        assert_eq!(
            ok("response.time", Some(Type::Timestamp)).0,
            "(request.time + response.duration)"
        );
        assert_eq!(
            ok("context.reporter.uid | \"\"", Some(Type::String)).0,
            "conditional(context.reporter.kind == \"outbound\", source.uid, destination.uid) | \"\""
        );
        // Inside a string, or a longer chain: untouched.
        assert_eq!(ok("\"response.time\"", None).0, "\"response.time\"");
    }

    #[test]
    fn other_errors_are_the_filters_text() {
        let source = "response.code == \"200\"";
        let e = compile(source, Some(Type::Bool)).unwrap_err();
        assert_eq!(
            carry(source, Some(Type::Bool)).unwrap_err(),
            format!("{e} in `{source}`")
        );
    }

    #[test]
    fn tcp_matches_never_hold() {
        assert!(never_holds_for_http("context.protocol == \"tcp\""));
        assert!(never_holds_for_http(
            "context.protocol == \"tcp\" && destination.port == 5432"
        ));
        assert!(!never_holds_for_http(
            "context.protocol == \"http\" || context.protocol == \"grpc\""
        ));
        assert!(!never_holds_for_http("request.host == \"x\""));
        assert!(!never_holds_for_http("true"));
    }

    #[test]
    fn literals() {
        assert_eq!(string_literal("'\"warning\"'"), Some("\"warning\"".into()));
        assert_eq!(string_literal("\"warning\""), Some("warning".into()));
        assert_eq!(string_literal(" 'Info' "), Some("Info".into()));
        assert_eq!(string_literal("a"), None);
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
    }
}
