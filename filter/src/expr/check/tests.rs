//! Compile-time errors: exact messages and columns.

use crate::expr::tests::{compile_err, TestResolver};
use crate::expr::*;

fn compile_as(src: &str, expected: Type) -> Result<Type, String> {
    compile(src, Some(expected), &mut TestResolver::default())
        .map(|p| p.result_type())
        .map_err(|e| e.to_string())
}

#[test]
fn type_errors_name_the_column_and_both_types() {
    let cases = [
        ("response.code == \"200\"", "column 15: `==` cannot compare int with string"),
        ("request.size + 1.5", "column 14: `+` cannot mix int and double; convert one side with double() or int()"),
        ("true + false", "column 6: `+` is not defined for bool and bool"),
        ("\"a\" - \"b\"", "column 5: `-` is not defined for string and string"),
        ("request.host && true", "column 1: the operands of `&&` must be a bool, found string"),
        ("true || 1", "column 9: the operands of `||` must be a bool, found int"),
        ("!response.code", "column 2: the operand of `!` must be a bool, found int"),
        ("-request.host", "column 2: the operand of `-` must be a number, found string"),
        ("response.code ? 1 : 2", "column 1: the condition of `?:` must be a bool, found int"),
        ("flag ? 1 : \"x\"", "column 6: the branches of `?:` must have the same type, found int and string"),
        ("conditional(flag, 1)", "column 1: `conditional` takes 3 arguments, found 2"),
        ("conditional(1, 2, 3)", "column 13: the condition of `conditional` must be a bool, found int"),
        ("request.size | \"0\"", "column 14: the two sides of `|` must have the same type, found int and string"),
        ("source.labels == source.labels", "column 15: `==` cannot compare maps"),
        ("1 in [1, \"a\"]", "column 10: a list element, like the left side of `in`, must be an int, found string"),
        ("1 in request.headers", "column 1: a map key must be a string, found int"),
        ("\"a\" in request.host", "column 8: the right side of `in` must be a list literal or a map, found string"),
        ("[1, 2]", "column 1: a list literal is only allowed on the right of `in`"),
        ("(request.host | 'x')['k']", "column 2: an indexed value must be a map, found string"),
        ("request.headers[1]", "column 1: unknown attribute `request.headers[1]`; did you mean `request.headers`?"),
        ("toLower(response.code)", "column 9: the argument of `toLower` must be a string, found int"),
        ("request.path.startsWith(1)", "column 25: the receiver and argument of `startsWith` must be a string, found int"),
        ("response.code.endsWith('x')", "column 1: the receiver and argument of `endsWith` must be a string, found int"),
        ("match(request.path, 1)", "column 21: the arguments of `match` must be a string, found int"),
        ("size(response.code)", "column 6: size() needs a string or a map, found int"),
        ("string(source.labels)", "column 8: string() cannot convert a map"),
        ("int(source.labels)", "column 5: int() cannot convert a map"),
        ("double(flag)", "column 8: double() cannot convert a bool"),
        ("int(\"4x\")", "column 5: cannot convert \"4x\" to int"),
        ("double(\"x\")", "column 8: cannot convert \"x\" to double"),
        ("duration(\"5\")", "column 10: invalid duration \"5\": missing unit"),
        ("duration(\"5d\")", "column 10: invalid duration \"5d\": unknown unit \"d\""),
        ("duration(\"9999999999h\")", "column 10: invalid duration \"9999999999h\": out of range"),
        (
            "timestamp(\"2018-13-01T00:00:00Z\")",
            "column 11: invalid timestamp \"2018-13-01T00:00:00Z\": expected RFC 3339 like \"2018-11-14T01:46:26Z\"",
        ),
        ("has(1)", "column 5: has() needs an attribute or a map entry, like has(request.headers['x'])"),
        ("emptyStringMap(1)", "column 1: `emptyStringMap` takes 0 arguments, found 1"),
        ("request.path.lowerAscii(1)", "column 14: `lowerAscii` takes 0 arguments, found 1"),
        ("toLower(request.path, 1)", "column 1: `toLower` takes 1 argument, found 2"),
        ("(request.host | \"x\").size.foo", "column 22: cannot select `.size` from a computed value: fields exist only on attributes"),
        ("null", "column 1: null is not supported; use `|` or has() for absent attributes"),
    ];
    for (src, want) in cases {
        assert_eq!(compile_err(src), want, "{src}");
    }
}

#[test]
fn unknown_names() {
    assert_eq!(
        compile_err("request.path.startswith('/x')"),
        "column 14: unknown function `startswith`; did you mean `startsWith`?"
    );
    assert_eq!(
        compile_err("tolower(request.path)"),
        "column 1: unknown function `tolower`; did you mean `toLower`?"
    );
    assert_eq!(
        compile_err("frobnicate(1)"),
        "column 1: unknown function `frobnicate`"
    );
    assert_eq!(
        compile_err("startsWith(request.path, 'x')"),
        "column 1: `startsWith` is a method: write x.startsWith(…)"
    );
    assert_eq!(
        compile_err("request.path.toLower()"),
        "column 14: `toLower` is a function, not a method: write toLower(x)"
    );
    // The resolver's own message, pointing at the start of the chain.
    assert_eq!(
        compile_err("1 + size(request.hots)"),
        "column 10: unknown attribute `request.hots`; did you mean `request.host`?"
    );
    assert_eq!(
        compile_err("request.host.size"),
        "column 1: unknown attribute `request.host.size`; did you mean `request.host`?"
    );
    assert_eq!(
        compile_err("has(request.nope)"),
        "column 5: unknown attribute `request.nope`; did you mean `request.host`?"
    );
}

#[test]
fn regexes_compile_once_and_report_the_column() {
    let err = compile_err("request.host.matches('a(')");
    assert!(
        err.starts_with("column 22: invalid regular expression: "),
        "{err}"
    );
    let err = compile_err("matches(request.host, \"[z-a]\")");
    assert!(
        err.starts_with("column 23: invalid regular expression: "),
        "{err}"
    );
}

#[test]
fn expected_types() {
    assert_eq!(compile_as("request.host", Type::String), Ok(Type::String));
    for scalar in [
        "response.code",
        "ratio",
        "flag",
        "response.duration",
        "request.time",
    ] {
        assert!(compile_as(scalar, Type::String).is_ok(), "{scalar}");
    }
    assert_eq!(
        compile_as("source.labels", Type::String),
        Err("column 1: expected a string, found map".into())
    );
    assert_eq!(compile_as("request.size", Type::Int), Ok(Type::Int));
    assert_eq!(compile_as("ratio * 2.0", Type::Int), Ok(Type::Double));
    assert_eq!(compile_as("\"2\"", Type::Int), Ok(Type::Int));
    assert_eq!(
        compile_as("\"two\"", Type::Int),
        Err("column 1: expected an int, found string".into())
    );
    assert_eq!(
        compile_as("flag", Type::Int),
        Err("column 1: expected an int, found bool".into())
    );
    assert_eq!(
        compile_as("\"abc\"", Type::Bool),
        Err("column 1: expected a bool, found string".into())
    );
    assert_eq!(
        compile_as("response.code", Type::Bool),
        Err("column 1: expected a bool, found int".into())
    );
    assert_eq!(
        compile_as("response.code >= 500", Type::Bool),
        Ok(Type::Bool)
    );
    assert_eq!(compile_as("1.5", Type::Double), Ok(Type::Double));
    assert_eq!(
        compile_as("1", Type::Double),
        Err("column 1: expected a double, found int".into())
    );
}

#[test]
fn display_types() {
    let e = ExprError {
        column: 12,
        message: "boom".into(),
        class: ErrorClass::Parse,
    };
    assert_eq!(e.to_string(), "column 12: boom");
    assert_eq!(Type::Timestamp.to_string(), "timestamp");
    assert_eq!(
        chain_to_string(&[
            Seg::Field("a"),
            Seg::Field("b"),
            Seg::Key("k"),
            Seg::Field("c")
        ]),
        "a.b['k'].c"
    );
    assert_eq!(did_you_mean("sise", ["size", "string"]), Some("size"));
    assert_eq!(did_you_mean("x", ["size", "string"]), None);
}

/// Istio 1.0's own configs default durations with strings: `response.duration | "0ms"`.
#[test]
fn string_literal_defaults_of_durations_and_timestamps() {
    use crate::expr::tests::{ev_with, run};
    assert_eq!(
        compile_as("response.duration | \"0ms\"", Type::Duration),
        Ok(Type::Duration)
    );
    assert_eq!(ev_with("response.duration | \"0ms\"", &[]), "0s");
    let d = [("response.duration", Attr::Duration(9_486_802))];
    assert_eq!(ev_with("response.duration | \"1.5s\"", &d), "9.486802ms");
    assert_eq!(ev_with("response.duration | \"1.5s\"", &[]), "1.5s");
    assert_eq!(
        ev_with("request.time | \"2017-01-01T00:00:00Z\"", &[]),
        "2017-01-01T00:00:00Z"
    );
    assert_eq!(
        run("request.time | '2017-01-01T00:00:00Z'", &[]).unwrap().0,
        Type::Timestamp
    );
    assert_eq!(
        compile_err("response.duration | \"soon\""),
        "column 21: invalid duration \"soon\": expected a number"
    );
    assert!(compile_err("request.time | \"today\"")
        .starts_with("column 16: invalid timestamp \"today\""));
    // Only a literal, only for these two types.
    assert_eq!(
        compile_err("response.duration | request.host"),
        "column 19: the two sides of `|` must have the same type, found duration and string"
    );
    assert_eq!(
        compile_err("request.size | \"0\""),
        "column 14: the two sides of `|` must have the same type, found int and string"
    );
}

#[test]
fn int_of_a_duration_is_nanoseconds() {
    use crate::expr::tests::ev_with;
    let d = [("response.duration", Attr::Duration(9_486_802))];
    assert_eq!(ev_with("int(response.duration)", &d), "9486802");
    assert_eq!(ev_with("int(response.duration) / 1000000", &d), "9");
}

/// Istio's split: what Envoy's CEL refuses to build removes a tag, what it builds but cannot
/// evaluate gives `unknown`; each error says which it would have been.
#[test]
fn errors_are_classed_as_istio_would_meet_them() {
    let class = |src: &str| {
        compile(src, Some(Type::String), &mut TestResolver::default())
            .unwrap_err()
            .class
    };
    for src in [
        "cannot _ parse | 1",
        "request.host +",
        "nosuch(request.host)",
        "size(request.host, 1)",
        "request.host.matches('(')",
        "null",
        "has(1)",
        "[1, 2]",
    ] {
        assert_eq!(class(src), ErrorClass::Parse, "{src}");
    }
    for src in [
        "cannot_evaluate",
        "request.hots",
        "response.code + 'x'",
        "request.headers",
        "response.code == '200'",
        "-request.host",
        "int('x')",
        "duration('soon')",
        "flag ? 'a' : 1",
        "string(request.headers)",
    ] {
        assert_eq!(class(src), ErrorClass::Evaluation, "{src}");
    }
}
