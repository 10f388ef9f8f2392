//! Expressions: any source compiles or fails with a column inside it; any compiled program
//! evaluates over any slot values (hostile strings, extreme numbers, absent attributes)
//! without panicking, to a value of the type the checker promised, the same way twice.
//!
//! Sources are token soups over the language's words (every attribute name the vocabulary
//! knows, every function, operator and literal form), raw text, or deep nests, so that most
//! inputs get past the lexer and a good share past the checker.

use crate::gen::{self, below, flag, one_in, pick};
use arbitrary::Unstructured;
use meshstats_filter::attributes::vocabulary::Vocabulary;
use meshstats_filter::expr::{compile, Attr, Type, Value};
use std::sync::OnceLock;

const WORDS: &[&str] = &[
    "conditional",
    "match",
    "toLower",
    "has",
    "size",
    "startsWith",
    "endsWith",
    "contains",
    "matches",
    "string",
    "int",
    "double",
    "duration",
    "timestamp",
    "emptyStringMap",
    "lowerAscii",
    "upperAscii",
    "true",
    "false",
    "null",
    "in",
    "headers",
    "x-user",
];

const PUNCT: &[&str] = &[
    "+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "&&", "||", "!", "?", ":", "|", ".",
    "[", "]", "(", ")", ",", "{", "}", " ", "'", "\"", "\\", "=", "&",
];

const LITERALS: &[&str] = &[
    "0",
    "1",
    "-1",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "0x10",
    "1.5",
    "1e308",
    "1e-320",
    ".5",
    "5.",
    "1e",
    "\"\"",
    "''",
    "\"a\\\"b\"",
    "'\\n'",
    "\"\\u00e9\"",
    "\"\\x41\"",
    "\"\\777\"",
    "'\\'",
    "\"unterminated",
    "\"1s\"",
    "\"-1.5h\"",
    "\"9999999999h\"",
    "\"2018-11-14T01:46:26.528539Z\"",
    "\"0001-01-01T00:00:00Z\"",
    "\"9999-12-31T23:59:59.999999999+23:59\"",
    "\"GET\"",
    "'*'",
    "\"a*\"",
    "\"(\"",
    "\"[z-a]\"",
    "\"a{99999}\"",
    "\"(((((((((((a)))))))))))\"",
    "\"é\"",
    "\"🦀\"",
];

fn attribute_names() -> &'static [String] {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(Vocabulary::known_names)
}

/// An expression source.
pub fn source(u: &mut Unstructured<'_>) -> String {
    match below(u, 8) {
        0 => gen::string(u, 6),
        1 => {
            // Deep nesting: the parser and checker must bound their recursion.
            let open = *pick(
                u,
                &[
                    "(",
                    "!",
                    "-",
                    "[",
                    "conditional(true,",
                    "a | ",
                    "x.",
                    "has(",
                ],
            );
            let n = below(u, 3000);
            format!(
                "{}{}{}",
                open.repeat(n),
                pick(u, LITERALS),
                ")".repeat(below(u, n + 1))
            )
        }
        _ => {
            let mut s = String::new();
            for _ in 0..below(u, 16) {
                let token: String = match below(u, 5) {
                    0 => pick(u, attribute_names()).clone(),
                    1 => pick(u, WORDS).to_string(),
                    2 => pick(u, LITERALS).to_string(),
                    3 => format!("'{}'", gen::string(u, 2).replace(['\'', '\\'], "")),
                    _ => pick(u, PUNCT).to_string(),
                };
                s.push_str(&token);
                if one_in(u, 3) {
                    s.push(' ');
                }
            }
            s
        }
    }
}

pub fn attr(u: &mut Unstructured<'_>, ty: Type) -> Option<Attr> {
    if one_in(u, 5) {
        return None;
    }
    Some(match ty {
        Type::String => Attr::Str(gen::string(u, 6)),
        Type::Int => Attr::Int(gen::int(u)),
        Type::Double => Attr::Double(gen::double(u)),
        Type::Bool => Attr::Bool(flag(u)),
        Type::Duration => Attr::Duration(gen::int(u)),
        Type::Timestamp => Attr::Timestamp(gen::int(u)),
        Type::Map | Type::List => Attr::Map(gen::pairs(u, &["x-user", "content-type", ""], 6)),
    })
}

fn shown(v: &Result<Value<'_>, meshstats_filter::expr::EvalError>) -> String {
    match v {
        Ok(v) => {
            let mut out = format!("{:?}:", v.type_of());
            v.write_to(&mut out);
            out
        }
        Err(e) => format!("error: {e}"),
    }
}

pub fn run(data: &[u8]) {
    let u = &mut Unstructured::new(data);
    let src = source(u);
    let expected = *pick(
        u,
        &[
            None,
            Some(Type::String),
            Some(Type::Int),
            Some(Type::Bool),
            Some(Type::Double),
        ],
    );
    let mut vocab = Vocabulary::default();
    let program = match compile(&src, expected, &mut vocab) {
        Ok(p) => p,
        Err(e) => {
            let chars = src.chars().count();
            assert!(
                (1..=chars + 1).contains(&e.column),
                "column {} outside {src:?} ({chars} chars): {}",
                e.column,
                e.message
            );
            assert!(!e.message.is_empty(), "empty message for {src:?}");
            return;
        }
    };
    let defs = vocab.slots();
    assert!(
        program.slots().iter().all(|&s| s < defs.len()),
        "{src:?} reads a slot the vocabulary never handed out"
    );
    let slots: Vec<Option<Attr>> = defs.iter().map(|d| attr(u, d.ty)).collect();
    let first = program.eval(&slots);
    if let Ok(v) = &first {
        assert_eq!(
            v.type_of(),
            program.result_type(),
            "{src:?} evaluated to {v:?}"
        );
    }
    assert_eq!(shown(&first), shown(&program.eval(&slots)), "{src:?} twice");
    let _ = program.eval_bool(&slots);
    let _ = program.eval_i64(&slots);
    // Every attribute absent, and slots shorter than the program expects.
    let _ = program.eval(&[]);
}
