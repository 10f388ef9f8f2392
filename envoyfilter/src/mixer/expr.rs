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
//!
//! The rewrites work on the filter's own tokens (`meshstats_filter::expr::lex`), so a name,
//! literal or operator is what the filter will read there.

use meshstats_filter::attributes::vocabulary::{Source, Vocabulary};
use meshstats_filter::expr::{self, Attr, Program, Tok, Token, Type};

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
    // Istio 1.1+: Envoy's response flags as its access log prints them (`UF,URX`; `-` for
    // none), which is what istio/proxy reported under this name.
    ("context.proxy_error_code", "response.flags_short"),
    // Istio 1.5+: Mixer's was the `grpc-status` value as a string (`"14"`), ours an int.
    ("response.grpc_status", "string(response.grpc_status)"),
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
    match tokens(source.trim()).as_slice() {
        [Token {
            tok: Tok::Str(value),
            ..
        }] => Some(value.clone()),
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

/// The filter's own tokens of `source` (`meshstats_filter::expr::lex`), without the closing
/// `Eof`. None when it does not lex: the text is then left as it is, for the filter's compiler
/// to report.
fn tokens(source: &str) -> Vec<Token> {
    let mut tokens = expr::lex(source).unwrap_or_default();
    tokens.retain(|t| t.tok != Tok::Eof);
    tokens
}

/// The token's spelling in `source`: a literal with its quotes and escapes.
fn spelling(source: &str, t: &Token) -> String {
    let span = t.span();
    source.chars().skip(span.start).take(span.len()).collect()
}

fn ident(t: Option<&Token>) -> Option<&str> {
    match t.map(|t| &t.tok) {
        Some(Tok::Ident(name)) => Some(name),
        _ => None,
    }
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
    matches!(t.map(|t| &t.tok), Some(Tok::Punct(q)) if *q == p)
}

/// `ip("1.2.3.4")` → `"1.2.3.4"`.
fn convert_literals(source: &str) -> String {
    let tokens = tokens(source);
    let mut edits = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let free = i == 0 || !is_punct(tokens.get(i.wrapping_sub(1)), ".");
        if ident(Some(t)).is_some_and(|name| LITERAL_CONVERSIONS.contains(&name))
            && free
            && is_punct(tokens.get(i + 1), "(")
        {
            if let (Some(lit), Some(close)) = (
                tokens.get(i + 2).filter(|l| matches!(l.tok, Tok::Str(_))),
                tokens.get(i + 3).filter(|c| is_punct(Some(c), ")")),
            ) {
                edits.push((t.span().start, close.span().end, spelling(source, lit)));
            }
        }
    }
    splice(source, &edits)
}

/// Applies [`RENAMES`] to whole attribute chains (`a.b.c` not preceded by `.` nor followed by
/// `.name`).
fn rename(source: &str) -> String {
    let tokens = tokens(source);
    let mut edits = Vec::new();
    let mut i = 0;
    while let Some(t) = tokens.get(i) {
        let free = i == 0 || !is_punct(tokens.get(i - 1), ".");
        let Some(first) = ident(Some(t)).filter(|_| free) else {
            i += 1;
            continue;
        };
        // The dotted chain from here.
        let mut j = i;
        let mut name = first.to_string();
        while let (true, Some(field)) = (is_punct(tokens.get(j + 1), "."), ident(tokens.get(j + 2)))
        {
            j += 2;
            name.push('.');
            name.push_str(field);
        }
        if let Some((_, with)) = RENAMES.iter().find(|(from, _)| *from == name) {
            let end = tokens.get(j).map_or(t.span().end, |n| n.span().end);
            edits.push((t.span().start, end, with.to_string()));
        }
        i = j + 1;
    }
    splice(source, &edits)
}

/// Tokens that bind looser than `|` (or are `|`, which is left-associative), so an operand
/// next to them is a whole alternative.
fn loose_left(t: Option<&Token>) -> bool {
    match t.map(|t| &t.tok) {
        None | Some(Tok::In) => true,
        Some(Tok::Punct(p)) => [
            "(", ",", "[", "?", ":", "&&", "||", "==", "!=", "<", "<=", ">", ">=", "|",
        ]
        .contains(p),
        Some(_) => false,
    }
}

fn loose_right(t: Option<&Token>) -> bool {
    match t.map(|t| &t.tok) {
        None | Some(Tok::In) => true,
        Some(Tok::Punct(p)) => [
            ")", ",", "]", "?", ":", "&&", "||", "==", "!=", "<", "<=", ">", ">=", "|", "+", "-",
        ]
        .contains(p),
        Some(_) => false,
    }
}

/// Removes the `|` alternative that starts at char `column`: `X | rest` → `rest`,
/// `first | X` → `first`. `None` when the operand there is not a whole alternative.
fn remove_alternative(source: &str, column: usize) -> Option<String> {
    let tokens = tokens(source);
    let first = tokens.iter().position(|t| t.span().start == column)?;
    // The operand: a name, then `.name`, `[…]` and `(…)` suffixes.
    let mut last = first;
    loop {
        let next = tokens.get(last + 1);
        if is_punct(next, ".") && ident(tokens.get(last + 2)).is_some() {
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
                let t = Some(tokens.get(k)?);
                if is_punct(t, open) {
                    depth += 1;
                } else if is_punct(t, close) {
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
    let start = tokens.get(first)?.span().start;
    let end = tokens.get(last)?.span().end;
    if is_punct(after, "|") && loose_left(before) {
        // `X | rest`: up to the next alternative.
        let resume = tokens.get(last + 2)?.span().start;
        return Some(splice(source, &[(start, resume, String::new())]));
    }
    if is_punct(before, "|") && loose_right(after) {
        // `first | X`: from the end of `first`.
        let from = tokens.get(first.checked_sub(2)?)?.span().end;
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
