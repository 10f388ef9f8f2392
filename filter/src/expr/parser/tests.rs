//! Lexer and parser: tokens, precedence, associativity, nesting limits.

use super::parse;
use crate::expr::ast::{Ast, Kind, UnOp};
use crate::expr::lexer::{lex, Tok};

/// Prints a tree back to source. `minimal` uses as few parentheses as precedence allows (the
/// round-trip property relies on it); otherwise every compound is parenthesized, which shows
/// how the parser grouped an expression.
pub(in crate::expr) fn show(ast: &Ast, minimal: bool) -> String {
    let mut out = String::new();
    write(ast, minimal, 0, &mut out);
    out
}

fn prec(ast: &Ast) -> u8 {
    match &ast.kind {
        Kind::Cond(..) => 0,
        Kind::Binary(op, ..) => op.prec(),
        Kind::Unary(..) => 6,
        Kind::Int(n) if *n < 0 => 6,
        Kind::Double(d) if d.is_sign_negative() => 6,
        _ => 7,
    }
}

fn write(ast: &Ast, minimal: bool, need: u8, out: &mut String) {
    let compound = prec(ast) < 7;
    let paren = if minimal { prec(ast) < need } else { compound };
    if paren {
        out.push('(');
    }
    match &ast.kind {
        Kind::Int(n) => out.push_str(&n.to_string()),
        Kind::Double(d) => out.push_str(&format!("{d:?}")),
        Kind::Str(s) => out.push_str(&format!("{s:?}")),
        Kind::Bool(b) => out.push_str(&b.to_string()),
        Kind::Ident(name) => out.push_str(name),
        Kind::List(items) => {
            out.push('[');
            write_list(items, minimal, out);
            out.push(']');
        }
        Kind::Select(target, field, _) => {
            write(target, minimal, 7, out);
            out.push('.');
            out.push_str(field);
        }
        Kind::Index(target, key) => {
            write(target, minimal, 7, out);
            out.push('[');
            write(key, minimal, 0, out);
            out.push(']');
        }
        Kind::Call(name, args) => {
            out.push_str(name);
            out.push('(');
            write_list(args, minimal, out);
            out.push(')');
        }
        Kind::Method(target, name, _, args) => {
            write(target, minimal, 7, out);
            out.push('.');
            out.push_str(name);
            out.push('(');
            write_list(args, minimal, out);
            out.push(')');
        }
        Kind::Unary(op, operand) => {
            out.push(if *op == UnOp::Not { '!' } else { '-' });
            // `- -4` must not become `--4`… which would lex the same, but keep it readable.
            let mut inner = String::new();
            write(operand, minimal, 6, &mut inner);
            if inner.starts_with('-') {
                out.push(' ');
            }
            out.push_str(&inner);
        }
        Kind::Binary(op, _, l, r) => {
            write(l, minimal, op.prec(), out);
            out.push_str(&format!(" {} ", op.symbol()));
            write(r, minimal, op.prec() + 1, out);
        }
        Kind::Cond(_, c, then, otherwise) => {
            write(c, minimal, 1, out);
            out.push_str(" ? ");
            write(then, minimal, 0, out);
            out.push_str(" : ");
            write(otherwise, minimal, 0, out);
        }
    }
    if paren {
        out.push(')');
    }
}

fn write_list(items: &[Ast], minimal: bool, out: &mut String) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write(item, minimal, 0, out);
    }
}

pub(in crate::expr) fn parse_str(src: &str) -> Result<Ast, String> {
    let tokens = lex(src).map_err(|e| e.to_string())?;
    parse(&tokens).map_err(|e| e.to_string())
}

fn grouped(src: &str) -> String {
    show(&parse_str(src).unwrap(), false)
}

#[test]
fn precedence_and_associativity() {
    let cases = [
        (
            "1 + 2 * 3 - -4 / 2 % 3",
            "((1 + (2 * 3)) - (((-4) / 2) % 3))",
        ),
        ("a - b - c", "((a - b) - c)"),
        ("a / b * c % d", "(((a / b) * c) % d)"),
        ("a || b && c", "(a || (b && c))"),
        ("a && b || c && d", "((a && b) || (c && d))"),
        ("a == b && c != d", "((a == b) && (c != d))"),
        ("a < b == c >= d", "(((a < b) == c) >= d)"),
        ("!a == b", "((!a) == b)"),
        ("-a.b * c", "((-a.b) * c)"),
        ("!!a", "(!(!a))"),
        // Mixer's `|` is additive, as in Go: tighter than comparison, looser than `*`.
        ("a | \"x\" == \"y\"", "((a | \"x\") == \"y\")"),
        ("a | b | c", "((a | b) | c)"),
        ("a + b | c", "((a + b) | c)"),
        ("a | b * c", "(a | (b * c))"),
        ("a || b | c", "(a || (b | c))"),
        ("x in [1, 2] && y", "((x in [1, 2]) && y)"),
        ("x + 1 in y", "((x + 1) in y)"),
        ("a ? b : c ? d : e", "(a ? b : (c ? d : e))"),
        ("a || b ? c : d", "((a || b) ? c : d)"),
        ("a ? b ? c : d : e", "(a ? (b ? c : d) : e)"),
        ("(a + b) * c", "((a + b) * c)"),
        (
            "request.headers['x'].size()",
            "request.headers[\"x\"].size()",
        ),
        ("f(a, b,)[0].g()", "f(a, b)[0].g()"),
    ];
    for (src, want) in cases {
        assert_eq!(grouped(src), want, "{src}");
    }
}

#[test]
fn negative_literals_fold() {
    assert_eq!(parse_str("-4").unwrap().kind, Kind::Int(-4));
    assert_eq!(parse_str("-1.5").unwrap().kind, Kind::Double(-1.5));
    assert_eq!(
        parse_str("-9223372036854775808").unwrap().kind,
        Kind::Int(i64::MIN)
    );
    assert_eq!(
        parse_str("9223372036854775808").unwrap_err(),
        "column 1: integer literal out of range"
    );
    // Found by the round-trip property: `-0` folds to `0`.
    assert_eq!(show(&parse_str("-0").unwrap(), true), "0");
    assert_eq!(grouped("- -4"), "(-(-4))");
    assert_eq!(show(&parse_str("- -4").unwrap(), true), "- -4");
}

fn toks(src: &str) -> Vec<Tok> {
    lex(src).unwrap().into_iter().map(|t| t.tok).collect()
}

#[test]
fn lexes_literals() {
    assert_eq!(
        toks("0x1F 42 1.5 1e3 2.5E-2 7"),
        [
            Tok::Int(31),
            Tok::Int(42),
            Tok::Double(1.5),
            Tok::Double(1000.0),
            Tok::Double(0.025),
            Tok::Int(7),
            Tok::Eof
        ]
    );
    assert_eq!(
        toks(r#"'a"b' "a'b" "\n\t\\\"\'" "\u00e9\u{1F600}\x41" r"\d+" R'\n'"#),
        [
            Tok::Str("a\"b".into()),
            Tok::Str("a'b".into()),
            Tok::Str("\n\t\\\"'".into()),
            Tok::Str("é😀A".into()),
            Tok::Str("\\d+".into()),
            Tok::Str("\\n".into()),
            Tok::Eof
        ]
    );
    assert_eq!(
        toks("a.b_1 in true false r"),
        [
            Tok::Ident("a".into()),
            Tok::Punct("."),
            Tok::Ident("b_1".into()),
            Tok::In,
            Tok::True,
            Tok::False,
            Tok::Ident("r".into()),
            Tok::Eof
        ]
    );
    assert_eq!(
        toks("<=>= !=! < > ==&&||?:+-*/%|[](),"),
        [
            "<=", ">=", "!=", "!", "<", ">", "==", "&&", "||", "?", ":", "+", "-", "*", "/", "%",
            "|", "[", "]", "(", ")", ","
        ]
        .into_iter()
        .map(Tok::Punct)
        .chain([Tok::Eof])
        .collect::<Vec<_>>()
    );
}

#[test]
fn columns_count_chars() {
    let tokens = lex("'é' + x").unwrap();
    let cols: Vec<usize> = tokens.iter().map(|t| t.col).collect();
    assert_eq!(cols, [1, 5, 7, 8]);
}

#[test]
fn lex_and_parse_errors() {
    let cases = [
        ("request.host == \"abc", "column 17: unterminated string"),
        ("'abc\\", "column 5: unterminated string"),
        ("'a\\qb'", "column 3: invalid escape `\\q`"),
        ("'\\uD800'", "column 2: invalid `\\u` escape"),
        ("'\\u{110000}'", "column 2: invalid `\\u` escape"),
        ("a & b", "column 3: unexpected `&`; did you mean `&&`?"),
        ("a = b", "column 3: unexpected `=`; did you mean `==`?"),
        ("a # b", "column 3: unexpected character `#`"),
        ("0x", "column 1: invalid hexadecimal literal"),
        (
            "99999999999999999999",
            "column 1: integer literal out of range",
        ),
        ("(a + b", "column 7: expected `)`, found end of input"),
        (
            "a +",
            "column 4: expected an expression, found end of input",
        ),
        ("a b", "column 3: expected end of expression, found `b`"),
        (
            "a.1",
            "column 3: expected a field name after `.`, found `1`",
        ),
        ("f(a b)", "column 5: expected `)`, found `b`"),
        ("a ? b", "column 6: expected `:`, found end of input"),
        ("", "column 1: expected an expression, found end of input"),
        (")", "column 1: expected an expression, found `)`"),
    ];
    for (src, want) in cases {
        assert_eq!(parse_str(src).unwrap_err(), want, "{src}");
    }
}

#[test]
fn nesting_is_bounded() {
    let ok = format!("{}1{}", "(".repeat(60), ")".repeat(60));
    assert!(parse_str(&ok).is_ok());
    let too_deep = |src: String| {
        let err = parse_str(&src).unwrap_err();
        assert!(
            err.contains("nested too deeply (more than 64 levels)"),
            "{err}"
        );
    };
    too_deep(format!("{}1{}", "(".repeat(100), ")".repeat(100)));
    too_deep(format!("{}1", "!".repeat(10_000)));
    too_deep(format!("{}1", "- ".repeat(10_000)));
    too_deep(format!("1{}", " + 1".repeat(10_000)));
    too_deep(format!("a{}", ".b".repeat(10_000)));
    too_deep(format!("{}x{}", "f(".repeat(10_000), ")".repeat(10_000)));
    too_deep(format!("{}x{}", "[".repeat(10_000), "]".repeat(10_000)));
    too_deep(format!("{}x{}", "a[".repeat(10_000), "]".repeat(10_000)));
    too_deep(format!("{}1", "true ? 1 : ".repeat(10_000)));
}

#[test]
fn token_spans_cover_the_spelling() {
    // Columns count chars, not bytes: `é` is one.
    let src = "ip( 'é\\'b' ) <= x";
    let spans: Vec<(Tok, String)> = lex(src)
        .unwrap()
        .into_iter()
        .map(|t| {
            let span = t.span();
            (
                t.tok,
                src.chars().skip(span.start).take(span.len()).collect(),
            )
        })
        .collect();
    assert_eq!(
        spans,
        [
            (Tok::Ident("ip".into()), "ip".into()),
            (Tok::Punct("("), "(".into()),
            (Tok::Str("é'b".into()), "'é\\'b'".into()),
            (Tok::Punct(")"), ")".into()),
            (Tok::Punct("<="), "<=".into()),
            (Tok::Ident("x".into()), "x".into()),
            (Tok::Eof, String::new()),
        ]
    );
}
