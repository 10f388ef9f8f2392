//! Evaluation of functions; errors, formats, conversions, allocation-free results.

use crate::expr::tests::{ev, ev_err, ev_with, map, request, run, s, setup, TestResolver};
use crate::expr::*;
use std::borrow::Cow;

#[test]
fn functions() {
    assert_eq!(
        ev("match(request.useragent | \"-\", \"kube-probe*\")"),
        "true"
    );
    assert_eq!(
        ev_with("match(request.useragent | \"-\", \"kube-probe*\")", &[]),
        "false"
    );
    assert_eq!(ev("match(request.path, \"*.js\")"), "true");
    assert_eq!(ev("match(request.method, \"GET\")"), "true");
    assert_eq!(ev("match(request.method, \"GE\")"), "false");
    assert_eq!(ev("match(request.method, \"*\")"), "true");
    assert_eq!(ev("match(request.path, request.method + \"*\")"), "false");
    assert_eq!(ev("toLower(request.method)"), "get");
    assert_eq!(ev("toLower(\"ÀÉ\")"), "àé");
    assert_eq!(ev("request.method.lowerAscii()"), "get");
    assert_eq!(ev("\"ÀbC\".upperAscii()"), "ÀBC");
    assert_eq!(ev("has(request.headers['x-user'])"), "true");
    assert_eq!(ev("has(request.headers['x-other'])"), "false");
    assert_eq!(ev("has(request.headers[request.method])"), "false");
    assert_eq!(
        ev_with(
            "has(request.headers[request.method])",
            &[("request.method", s("x"))]
        ),
        "false"
    );
    assert_eq!(ev("has(source.workload.name)"), "false");
    assert_eq!(ev("size(request.path) > 10"), "true");
    assert_eq!(ev("size(\"héllo\")"), "5");
    assert_eq!(ev("request.path.size()"), "14");
    assert_eq!(ev("size(request.headers)"), "2");
    assert_eq!(
        run("string(response.code)", &request()),
        Ok((Type::String, "503".into()))
    );
    assert_eq!(
        ev("string(ratio) + string(flag) + string(response.duration)"),
        "0.25true150ms"
    );
    assert_eq!(ev("string(request.time)"), "2018-11-14T01:46:26.528539Z");
    assert_eq!(run("int(\"42\") + 1", &[]), Ok((Type::Int, "43".into())));
    assert_eq!(ev("int(request.headers['x-n'] | \"7\") * 2"), "14");
    assert_eq!(ev("int(-2.9) + int(true) + int(response.code)"), "502");
    assert_eq!(ev("int(timestamp(\"1970-01-01T00:01:00Z\"))"), "60");
    assert_eq!(ev("double(request.size) / 2.0"), "150");
    assert_eq!(ev("double(\"2.5\") + double(request.method.size())"), "5.5");
    assert_eq!(ev("duration(\"1h2m3.5s\")"), "1h2m3.5s");
    assert_eq!(
        ev("duration(\"2us\") + duration(\"2µs\") + duration(\"3ns\")"),
        "4.003µs"
    );
    assert_eq!(ev("duration(request.headers['x-t'] | \"1m30s\")"), "1m30s");
    assert_eq!(
        ev("timestamp(\"2018-11-14T02:46:26.5+01:00\")"),
        "2018-11-14T01:46:26.5Z"
    );
    assert_eq!(ev("conditional(flag, \"yes\", \"no\")"), "yes");
}

#[test]
fn runtime_conversion_errors() {
    let hdr = |v: &str| vec![("request.headers['x-n']", s(v))];
    assert_eq!(
        ev_err("int(request.headers['x-n'])", &hdr("abc")),
        EvalError::Other("cannot convert \"abc\" to int".into())
    );
    assert_eq!(
        ev_err("int(double(request.headers['x-n']))", &hdr("1e30")),
        EvalError::Overflow
    );
    assert_eq!(
        ev_err("int(double(request.headers['x-n']))", &hdr("NaN")),
        EvalError::Overflow
    );
    assert_eq!(
        ev_err("duration(request.headers['x-n'])", &hdr("5")),
        EvalError::Other("invalid duration \"5\": missing unit".into())
    );
    match ev_err(
        "request.headers['x-n'].matches(request.headers['x-n'])",
        &hdr("("),
    ) {
        EvalError::Other(m) => assert!(m.starts_with("invalid regular expression \"(\""), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn write_to_formats() {
    let text = |v: Value<'_>| {
        let mut out = String::new();
        v.write_to(&mut out);
        out
    };
    let durations = [
        (0, "0s"),
        (1, "1ns"),
        (1_500, "1.5µs"),
        (2_109_624, "2.109624ms"),
        (1_500_000_000, "1.5s"),
        (90_000_000_000, "1m30s"),
        (3_600_000_000_000, "1h0m0s"),
        (3_723_500_000_000, "1h2m3.5s"),
        (-1_000_000, "-1ms"),
        (i64::MIN, "-2562047h47m16.854775808s"),
    ];
    for (ns, want) in durations {
        assert_eq!(text(Value::Duration(ns)), want);
    }
    let timestamps = [
        (0, "1970-01-01T00:00:00Z"),
        (1_542_159_986_528_539_000, "2018-11-14T01:46:26.528539Z"),
        (1_542_159_986_000_000_001, "2018-11-14T01:46:26.000000001Z"),
        (-1, "1969-12-31T23:59:59.999999999Z"),
        (951_782_400_000_000_000, "2000-02-29T00:00:00Z"),
    ];
    for (ns, want) in timestamps {
        assert_eq!(text(Value::Timestamp(ns)), want);
    }
    let doubles = [
        (1.5, "1.5"),
        (2.0, "2"),
        (0.0, "0"),
        (-0.0, "-0"),
        (100000.0, "100000"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (-1.25e-7, "-1.25e-07"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1e300, "1e+300"),
        (f64::NAN, "NaN"),
        (f64::NEG_INFINITY, "-Inf"),
        (123.456, "123.456"),
    ];
    for (d, want) in doubles {
        assert_eq!(text(Value::Double(d)), want, "{d}");
    }
    let entries = [
        ("b".to_string(), "2".to_string()),
        ("a".to_string(), "1".to_string()),
    ];
    assert_eq!(text(Value::Map(&entries)), "a=1,b=2");
    assert_eq!(text(Value::Map(&[])), "");
    assert_eq!(text(Value::Bool(false)), "false");
    assert_eq!(text(Value::Int(-42)), "-42");
}

#[test]
fn eval_i64_and_eval_bool() {
    let int = |src: &str, attrs: &[(&str, Attr)]| {
        let (program, slots) = setup(src, Some(Type::Int), attrs);
        program.eval_i64(&slots)
    };
    assert_eq!(
        int("request.size", &[("request.size", Attr::Int(12))]),
        Ok(12)
    );
    assert_eq!(int("2", &[]), Ok(2));
    assert_eq!(int("\"2\"", &[]), Ok(2));
    assert_eq!(
        int("ratio * 10.0", &[("ratio", Attr::Double(-0.25))]),
        Ok(-2)
    );
    assert_eq!(int("double(\"1e19\")", &[]), Err(EvalError::Overflow));
    let (program, slots) = setup(
        "request.headers['x-n']",
        None,
        &[("request.headers['x-n']", s("17"))],
    );
    assert_eq!(program.eval_i64(&slots), Ok(17));
    let (program, slots) = setup(
        "request.headers['x-n']",
        None,
        &[("request.headers['x-n']", s("x"))],
    );
    assert_eq!(
        program.eval_i64(&slots),
        Err(EvalError::Other("cannot convert \"x\" to int".into()))
    );
    let (program, slots) = setup("flag", None, &[("flag", Attr::Bool(true))]);
    assert_eq!(
        (program.eval_i64(&slots), program.eval_bool(&slots)),
        (Ok(1), Ok(true))
    );
    let (program, slots) = setup(
        "response.duration",
        None,
        &[("response.duration", Attr::Duration(5))],
    );
    assert_eq!(program.eval_i64(&slots), Ok(5));
    let (program, slots) = setup("source.labels", None, &[("source.labels", map(&[]))]);
    let err = EvalError::Type {
        expected: Type::Int,
        found: Type::Map,
    };
    assert_eq!(program.eval_i64(&slots), Err(err));
    let (program, slots) = setup("response.code", None, &[("response.code", Attr::Int(1))]);
    let err = EvalError::Type {
        expected: Type::Bool,
        found: Type::Int,
    };
    assert_eq!(program.eval_bool(&slots), Err(err.clone()));
    assert_eq!(err.to_string(), "expected a bool, found int");
}

#[test]
fn results_borrow_instead_of_allocating() {
    let attrs = request();
    let borrowed = [
        "request.host",
        "request.headers['x-user']",
        "request.headers[request.host]",
        "\"literal\"",
        "source.workload.name | \"unknown\"",
        "conditional(flag, request.method, \"x\")",
        "flag ? request.path : \"x\"",
        "toLower(\"already lower\")",
        "request.host.lowerAscii()",
        "string(request.method)",
        "request.host + \"\"",
    ];
    for src in borrowed {
        let (program, slots) = setup(src, None, &attrs);
        let value = program.eval(&slots).unwrap();
        assert!(
            matches!(value, Value::Str(Cow::Borrowed(_))),
            "{src}: {value:?}"
        );
    }
    let (program, slots) = setup("toLower(request.method)", None, &attrs);
    assert_eq!(
        program.eval(&slots).unwrap(),
        Value::Str(Cow::Owned("get".into()))
    );
}

#[test]
fn slots_lists_what_the_program_reads() {
    let mut resolver = TestResolver::default();
    compile("request.host", None, &mut resolver).unwrap();
    let program = compile(
        "response.code > 1 ? request.path : request.host | request.path",
        None,
        &mut resolver,
    )
    .unwrap();
    assert_eq!(
        resolver.names,
        ["request.host", "response.code", "request.path"]
    );
    assert_eq!(program.slots(), [0, 1, 2]);
    assert_eq!(
        compile("1 + 2", None, &mut resolver).unwrap().slots(),
        [] as [usize; 0]
    );
    // A slot past the end of what the caller passes reads as absent.
    assert_eq!(program.eval(&[]), Err(EvalError::Absent));
}
