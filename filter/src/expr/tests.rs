//! Evaluation of attributes and operators, `|` defaults; the test resolver and helpers.

use super::*;

/// A fixed vocabulary like the filter's: one slot per chain, headers one slot per name.
#[derive(Default)]
pub(super) struct TestResolver {
    pub names: Vec<String>,
}

const KNOWN: &[(&str, Type)] = &[
    ("request.host", Type::String),
    ("request.path", Type::String),
    ("request.method", Type::String),
    ("request.useragent", Type::String),
    ("request.size", Type::Int),
    ("request.time", Type::Timestamp),
    ("request.headers", Type::Map),
    ("response.code", Type::Int),
    ("response.duration", Type::Duration),
    ("source.workload.name", Type::String),
    ("source.labels", Type::Map),
    ("context.reporter.kind", Type::String),
    ("xds.node.metadata['WORKLOAD_NAME']", Type::String),
    ("node.metadata['LABELS']['app']", Type::String),
    ("upstream_peer.labels['app'].value", Type::String),
    ("filter_state.upstream_peer.workload", Type::String),
    ("filter_state['wasm.upstream_peer']", Type::String),
    ("ratio", Type::Double),
    ("flag", Type::Bool),
];

impl Resolver for TestResolver {
    fn resolve(&mut self, chain: &[Seg<'_>]) -> Result<(usize, Type), String> {
        let name = chain_to_string(chain);
        let ty = match KNOWN.iter().find(|(n, _)| *n == name) {
            Some((_, ty)) => *ty,
            None if matches!(
                chain,
                [Seg::Field("request"), Seg::Field("headers"), Seg::Key(_)]
            ) =>
            {
                Type::String
            }
            None => {
                let mut message = format!("unknown attribute `{name}`");
                if let Some(near) = did_you_mean(&name, KNOWN.iter().map(|(n, _)| *n)) {
                    message.push_str(&format!("; did you mean `{near}`?"));
                }
                return Err(message);
            }
        };
        let slot = match self.names.iter().position(|n| *n == name) {
            Some(slot) => slot,
            None => {
                self.names.push(name);
                self.names.len() - 1
            }
        };
        Ok((slot, ty))
    }
}

pub(super) fn compile_err(src: &str) -> String {
    compile(src, None, &mut TestResolver::default())
        .unwrap_err()
        .to_string()
}

/// Compiles `src` and fills the slots it reads from `attrs` (by chain spelling).
pub(super) fn setup(
    src: &str,
    expected: Option<Type>,
    attrs: &[(&str, Attr)],
) -> (Program, Vec<Option<Attr>>) {
    let mut resolver = TestResolver::default();
    let program = compile(src, expected, &mut resolver).unwrap_or_else(|e| panic!("{src}: {e}"));
    let slots = resolver
        .names
        .iter()
        .map(|n| attrs.iter().find(|(a, _)| a == n).map(|(_, v)| v.clone()))
        .collect();
    (program, slots)
}

/// The result as its label string, with its type.
pub(super) fn run(src: &str, attrs: &[(&str, Attr)]) -> Result<(Type, String), EvalError> {
    let (program, slots) = setup(src, None, attrs);
    let value = program.eval(&slots)?;
    let mut out = String::new();
    value.write_to(&mut out);
    assert_eq!(value.type_of(), program.result_type(), "{src}");
    Ok((value.type_of(), out))
}

pub(super) fn ev(src: &str) -> String {
    ev_with(src, &request())
}

pub(super) fn ev_with(src: &str, attrs: &[(&str, Attr)]) -> String {
    run(src, attrs).unwrap_or_else(|e| panic!("{src}: {e}")).1
}

pub(super) fn ev_err(src: &str, attrs: &[(&str, Attr)]) -> EvalError {
    run(src, attrs).unwrap_err()
}

pub(super) fn s(v: &str) -> Attr {
    Attr::Str(v.to_string())
}

pub(super) fn map(pairs: &[(&str, &str)]) -> Attr {
    Attr::Map(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

pub(super) fn request() -> Vec<(&'static str, Attr)> {
    vec![
        ("request.host", s("api.example.com")),
        ("request.path", s("/static/app.js")),
        ("request.method", s("GET")),
        ("request.useragent", s("kube-probe/1.27")),
        ("request.size", Attr::Int(300)),
        (
            "request.headers",
            map(&[("x-user", "alice"), ("api.example.com", "by-host")]),
        ),
        ("request.headers['x-user']", s("alice")),
        ("response.code", Attr::Int(503)),
        ("response.duration", Attr::Duration(150_000_000)),
        ("request.time", Attr::Timestamp(1_542_159_986_528_539_000)),
        ("source.labels", map(&[("app", "web"), ("version", "v1")])),
        ("context.reporter.kind", s("outbound")),
        ("xds.node.metadata['WORKLOAD_NAME']", s("reviews-v1")),
        ("node.metadata['LABELS']['app']", s("reviews")),
        ("upstream_peer.labels['app'].value", s("ratings")),
        ("filter_state.upstream_peer.workload", s("ratings-v1")),
        ("filter_state['wasm.upstream_peer']", s("blob")),
        ("ratio", Attr::Double(0.25)),
        ("flag", Attr::Bool(true)),
    ]
}

#[test]
fn attributes_in_every_spelling() {
    assert_eq!(ev("request.host"), "api.example.com");
    assert_eq!(ev("request.headers['x-user']"), "alice");
    assert_eq!(ev("request.headers[\"x-user\"]"), "alice");
    assert_eq!(ev("response.code"), "503");
    assert_eq!(ev("xds.node.metadata['WORKLOAD_NAME']"), "reviews-v1");
    assert_eq!(ev("node.metadata['LABELS']['app']"), "reviews");
    assert_eq!(ev("upstream_peer.labels['app'].value"), "ratings");
    assert_eq!(ev("filter_state.upstream_peer.workload"), "ratings-v1");
    assert_eq!(ev("filter_state['wasm.upstream_peer']"), "blob");
    assert_eq!(ev("request.headers[request.host]"), "by-host");
    assert_eq!(ev("source.labels"), "app=web,version=v1");
}

#[test]
fn arithmetic() {
    assert_eq!(
        run("1 + 2 * 3 - -4 / 2 % 3", &[]),
        Ok((Type::Int, "9".into()))
    );
    assert_eq!(ev("10 - 4 - 3"), "3");
    assert_eq!(ev("100 / 10 / 5"), "2");
    assert_eq!(ev("-7 / 2"), "-3");
    assert_eq!(ev("-7 % 3"), "-1");
    assert_eq!(ev("0x10 * 2"), "32");
    assert_eq!(ev("1.5 + 1.0"), "2.5");
    assert_eq!(ev("ratio * 4.0"), "1");
    assert_eq!(ev("7.5 % 2.0"), "1.5");
    assert_eq!(ev("1.0 / 0.0"), "+Inf");
    assert_eq!(ev("\"a\" + request.host"), "aapi.example.com");
    assert_eq!(ev("response.duration + duration(\"1s\")"), "1.15s");
    assert_eq!(ev("response.duration - duration(\"1s\")"), "-850ms");
    assert_eq!(
        ev("request.time + duration(\"1h\")"),
        "2018-11-14T02:46:26.528539Z"
    );
    assert_eq!(
        ev("request.time - timestamp(\"2018-11-14T00:00:00Z\")"),
        "1h46m26.528539s"
    );
    assert_eq!(ev("-response.duration"), "-150ms");
    assert_eq!(ev("-ratio"), "-0.25");
}

#[test]
fn arithmetic_errors() {
    assert_eq!(ev_err("9223372036854775807 + 1", &[]), EvalError::Overflow);
    assert_eq!(ev_err("-9223372036854775808 - 1", &[]), EvalError::Overflow);
    assert_eq!(ev_err("4611686018427387904 * 2", &[]), EvalError::Overflow);
    assert_eq!(
        ev_err("-9223372036854775808 / -1", &[]),
        EvalError::Overflow
    );
    assert_eq!(
        ev_err("-9223372036854775808 % -1", &[]),
        EvalError::Overflow
    );
    assert_eq!(ev_err("-(-9223372036854775808)", &[]), EvalError::Overflow);
    assert_eq!(
        ev_err("response.code / 0", &request()),
        EvalError::DivisionByZero
    );
    assert_eq!(
        ev_err("response.code % (1 - 1)", &request()),
        EvalError::DivisionByZero
    );
    assert_eq!(
        ev_err(
            "timestamp(\"2262-04-11T23:47:16Z\") + duration(\"1s\")",
            &[]
        ),
        EvalError::Overflow
    );
    assert_eq!(EvalError::Overflow.to_string(), "integer overflow");
    assert_eq!(EvalError::DivisionByZero.to_string(), "division by zero");
}

#[test]
fn comparisons_and_logic() {
    assert_eq!(
        ev("response.code >= 500 && !(request.path.startsWith('/health'))"),
        "true"
    );
    assert_eq!(
        ev("request.path.endsWith(\".css\") || request.path.contains(\"static\")"),
        "true"
    );
    assert_eq!(ev("request.host.matches(\"^api[.]\")"), "true");
    assert_eq!(ev("matches(request.host, \"example\\\\.org$\")"), "false");
    assert_eq!(ev("request.host.matches(request.method)"), "false");
    assert_eq!(
        ev("\"b\" > \"a\" && 1 < 2 && 2 <= 2 && 3 >= 3 && 1.5 > 1.0 && true != false"),
        "true"
    );
    assert_eq!(ev("response.duration > duration(\"100ms\")"), "true");
    assert_eq!(
        ev("request.time < timestamp(\"2019-01-01T00:00:00Z\")"),
        "true"
    );
    assert_eq!(ev("false < true"), "true");
    assert_eq!(ev("double(\"NaN\") == double(\"NaN\")"), "false");
    assert_eq!(ev("double(\"NaN\") != double(\"NaN\")"), "true");
    assert_eq!(ev("\"kube-probe\" in [\"a\", \"kube-probe\"]"), "true");
    assert_eq!(ev("response.code in [200, 201]"), "false");
    assert_eq!(ev("'x-user' in request.headers"), "true");
    assert_eq!(ev("'x-other' in request.headers"), "false");
    assert_eq!(ev("1 in []"), "false");
    assert_eq!(ev("response.code == 200 ? \"ok\" : \"fail\""), "fail");
    assert_eq!(ev("flag ? 1 : 2"), "1");
    assert_eq!(ev("true ? 1 : false ? 2 : 3"), "1");
    assert_eq!(ev("false ? 1 : false ? 2 : 3"), "3");
}

#[test]
fn logic_absorbs_errors_like_cel() {
    let none: &[(&str, Attr)] = &[];
    assert_eq!(ev_with("response.code == 1 || true", none), "true");
    assert_eq!(ev_with("response.code == 1 && false", none), "false");
    assert_eq!(ev_with("false && response.code == 1", none), "false");
    assert_eq!(ev_with("true || response.code == 1", none), "true");
    assert_eq!(
        ev_err("response.code == 1 && true", none),
        EvalError::Absent
    );
    assert_eq!(
        ev_err("true && response.code == 1", none),
        EvalError::Absent
    );
    assert_eq!(
        ev_err("response.code == 1 || false", none),
        EvalError::Absent
    );
}

#[test]
fn defaults() {
    let none: &[(&str, Attr)] = &[];
    assert_eq!(
        ev_with("source.workload.name | \"unknown\"", none),
        "unknown"
    );
    assert_eq!(
        ev_with(
            "source.workload.name | \"unknown\"",
            &[("source.workload.name", s("web"))]
        ),
        "web"
    );
    assert_eq!(
        ev("request.headers['x-a'] | request.headers['x-user'] | \"\""),
        "alice"
    );
    assert_eq!(
        ev("request.headers['x-a'] | request.headers['x-b'] | \"none\""),
        "none"
    );
    assert_eq!(
        ev("request.headers['nope'] | \"missing key\""),
        "missing key"
    );
    assert_eq!(
        ev("request.headers[request.method] | \"missing dynamic key\""),
        "missing dynamic key"
    );
    assert_eq!(ev_with("request.size | 0", none), "0");
    assert_eq!(ev_with("source.labels | emptyStringMap()", none), "");
    assert_eq!(ev("(source.labels | emptyStringMap())['app']"), "web");
    assert_eq!(ev_with("size(source.labels | emptyStringMap())", none), "0");
    let kind = "conditional((context.reporter.kind | \"inbound\") == \"outbound\", \"client\", \"server\")";
    assert_eq!(ev(kind), "client");
    assert_eq!(ev_with(kind, none), "server");
    // `|` binds tighter than `==`, so the parentheses above are optional.
    assert_eq!(
        ev_with("context.reporter.kind | \"inbound\" == \"inbound\"", none),
        "true"
    );
    // Only absence falls through; other errors do not.
    assert_eq!(ev_err("1 / 0 | 2", none), EvalError::DivisionByZero);
    assert_eq!(ev_err("source.workload.name", none), EvalError::Absent);
    assert_eq!(
        ev_err("request.headers['nope']", &request()),
        EvalError::Absent
    );
    assert_eq!(
        ev_err("'a' + source.workload.name", none),
        EvalError::Absent
    );
    assert_eq!(EvalError::Absent.to_string(), "attribute absent");
}
