//! The expression language of user-defined dimensions, metric values and predicates.
//!
//! One language accepts both spellings users bring from Istio:
//! - CEL as written in stats configs and Telemetry `tagOverrides`: `request.headers['x-user']`,
//!   `a ? b : c`, `x in [..]`, `has(..)`, `size(..)`, `s.startsWith(..)`, `s.matches(re)`;
//! - Mixer's language (Istio ≤ 1.4): `a | b` defaults, `conditional(..)`, `match(s, "glob*")`,
//!   `toLower(..)`, `emptyStringMap()`.
//!
//! [`compile`] runs once per configuration: it lexes, parses, asks the caller's [`Resolver`]
//! for every attribute chain and type-checks, so a typo is a configuration error with its
//! column rather than a per-request surprise. [`Program::eval`] runs per request over the
//! attribute slots the caller filled, and allocates only when it builds a new string.
//!
//! Precedence, loosest first (all binary operators associate to the left, `?:` to the right):
//!
//! | level | operators |
//! | --- | --- |
//! | 0 | `c ? a : b` |
//! | 1 | `\|\|` |
//! | 2 | `&&` |
//! | 3 | `== != < <= > >= in` |
//! | 4 | `+ - \|` |
//! | 5 | `* / %` |
//! | 6 | unary `! -` |
//! | 7 | `.field`, `[key]`, `.method(..)`, `f(..)` |
//!
//! `|` sits with `+` because Mixer parsed expressions with Go's parser, where `|` is an
//! additive operator: `a | "x" == "y"` means `(a | "x") == "y"`, as Mixer configs assume.
//! `a | b` yields `b` when evaluating `a` found an attribute or map key absent.
//!
//! `&&` and `||` follow CEL's error absorption: `false && <error>` and `<error> && false` are
//! false, `true || <error>` and `<error> || true` are true.

mod ast;
mod calls;
mod check;
mod eval;
mod format;
mod funcs;
mod lexer;
mod parser;
mod suggest;
mod time;

#[cfg(test)]
mod check_tests;
#[cfg(test)]
mod eval_tests;
#[cfg(test)]
mod parser_tests;
#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::fmt;

pub use suggest::did_you_mean;

/// The static type of an expression or attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Type {
    String,
    Int,
    Double,
    Bool,
    /// Nanoseconds.
    Duration,
    /// Nanoseconds since the Unix epoch.
    Timestamp,
    /// string → string.
    Map,
    /// Only list literals, only on the right of `in`; no expression evaluates to one.
    List,
}

impl Type {
    /// The name used in messages: `string`, `int`, …
    pub fn name(self) -> &'static str {
        match self {
            Type::String => "string",
            Type::Int => "int",
            Type::Double => "double",
            Type::Bool => "bool",
            Type::Duration => "duration",
            Type::Timestamp => "timestamp",
            Type::Map => "map",
            Type::List => "list",
        }
    }

    /// The name with its article, for "expected an int, found string".
    pub fn with_article(self) -> &'static str {
        match self {
            Type::String => "a string",
            Type::Int => "an int",
            Type::Double => "a double",
            Type::Bool => "a bool",
            Type::Duration => "a duration",
            Type::Timestamp => "a timestamp",
            Type::Map => "a map",
            Type::List => "a list",
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An attribute value supplied per request. Owned, reused across requests by the caller.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    /// Nanoseconds.
    Duration(i64),
    /// Nanoseconds since the Unix epoch.
    Timestamp(i64),
    /// Looked up by exact key; the caller lower-cases header names.
    Map(Vec<(String, String)>),
}

/// A value produced by evaluation. It borrows from the program and the slots, so attribute
/// reads, literals, comparisons, `|` and conditionals allocate nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Double(f64),
    Bool(bool),
    Duration(i64),
    Timestamp(i64),
    Map(&'a [(String, String)]),
}

impl Value<'_> {
    pub fn type_of(&self) -> Type {
        match self {
            Value::Str(_) => Type::String,
            Value::Int(_) => Type::Int,
            Value::Double(_) => Type::Double,
            Value::Bool(_) => Type::Bool,
            Value::Duration(_) => Type::Duration,
            Value::Timestamp(_) => Type::Timestamp,
            Value::Map(_) => Type::Map,
        }
    }

    /// Appends the value as a label or log string:
    /// - strings as they are; ints in decimal; bools `true`/`false`;
    /// - doubles as Go's `%g` (what CEL's `string(double)` prints): shortest digits that read
    ///   back to the same double, exponent form below 1e-4 and from 1e6 on: `1.5`, `2`,
    ///   `100000`, `1e+06`, `1e-05`, `NaN`, `+Inf`;
    /// - durations as Go's `time.Duration`: `1.5s`, `2.109624ms`, `1m30s`, `1h0m0s`, `0s`;
    /// - timestamps as RFC 3339 in UTC with the fewest fraction digits:
    ///   `2018-11-14T01:46:26.528539Z`;
    /// - maps as `k=v` pairs sorted by key and joined by `,`, so equal maps give equal labels
    ///   whatever order the caller filled them in.
    pub fn write_to(&self, out: &mut String) {
        format::write_value(self, out);
    }
}

/// One step of an attribute chain: `request.headers['x']` is
/// `[Field("request"), Field("headers"), Key("x")]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seg<'s> {
    Field(&'s str),
    Key(&'s str),
    /// A list index with a literal integer: `services[0]`.
    Index(i64),
}

/// Writes a chain the way users spell it, for resolver messages: `request.headers['x']`.
pub fn chain_to_string(chain: &[Seg<'_>]) -> String {
    let mut out = String::new();
    for seg in chain {
        match seg {
            Seg::Field(name) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(name);
            }
            Seg::Key(key) => {
                out.push_str("['");
                out.push_str(key);
                out.push_str("']");
            }
            Seg::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

/// Maps attribute chains to the slots the caller fills before each evaluation.
pub trait Resolver {
    /// Resolves a whole attribute chain — the maximal run of identifiers, `.field` selections
    /// and `['literal']` indexes starting at a free identifier — to a slot and its type.
    /// `Err(message)` is reported as is, at the column where the chain starts. An index with a
    /// computed key (`request.headers[request.host]`) asks for the chain without that key,
    /// which must then be a [`Type::Map`]. The resolver may be asked for the same chain more
    /// than once and should hand out the same slot.
    fn resolve(&mut self, chain: &[Seg<'_>]) -> Result<(usize, Type), String>;
}

/// A compiled expression.
///
/// A boxed tree rather than an index arena: expressions are tens of nodes, compiled once,
/// and a tree evaluates by direct recursion with no fallible arena lookups in the hot path.
/// Its depth is bounded at compile time, so neither evaluation nor drop can exhaust the stack.
#[derive(Debug, Clone)]
pub struct Program {
    root: eval::Node,
    ty: Type,
    slots: Vec<usize>,
}

impl Program {
    /// The static type of the result. With an expected type that allowed a conversion, this
    /// is the type before conversion (e.g. `Double` for an `Int` metric value).
    pub fn result_type(&self) -> Type {
        self.ty
    }

    /// Evaluates against the request's attribute slots (`None`, or a slot past the end,
    /// is an absent attribute).
    pub fn eval<'a>(&'a self, slots: &'a [Option<Attr>]) -> Result<Value<'a>, EvalError> {
        eval::eval(&self.root, slots)
    }

    /// For predicates: `Ok` only when the result is a bool.
    pub fn eval_bool(&self, slots: &[Option<Attr>]) -> Result<bool, EvalError> {
        match self.eval(slots)? {
            Value::Bool(b) => Ok(b),
            other => Err(EvalError::Type {
                expected: Type::Bool,
                found: other.type_of(),
            }),
        }
    }

    /// For int-valued metric values: ints as they are, doubles truncated toward zero (NaN and
    /// out of range are [`EvalError::Overflow`]), bools 0/1, durations and timestamps in
    /// nanoseconds, strings parsed as a decimal int; a map is a type error.
    pub fn eval_i64(&self, slots: &[Option<Attr>]) -> Result<i64, EvalError> {
        match self.eval(slots)? {
            Value::Int(n) | Value::Duration(n) | Value::Timestamp(n) => Ok(n),
            Value::Double(d) => eval::double_to_i64(d),
            Value::Bool(b) => Ok(i64::from(b)),
            Value::Str(s) => eval::parse_int(&s),
            Value::Map(_) => Err(EvalError::Type {
                expected: Type::Int,
                found: Type::Map,
            }),
        }
    }

    /// The slots this program may read, sorted and without duplicates.
    pub fn slots(&self) -> &[usize] {
        &self.slots
    }
}

/// A compile error: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    /// 1-based, counted in chars.
    pub column: usize,
    pub message: String,
}

impl ExprError {
    pub(crate) fn new(column: usize, message: impl Into<String>) -> ExprError {
        ExprError {
            column,
            message: message.into(),
        }
    }
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column {}: {}", self.column, self.message)
    }
}

impl std::error::Error for ExprError {}

/// Why an evaluation produced no value.
#[derive(Debug, Clone, PartialEq)]
pub enum EvalError {
    /// An attribute or map key was absent and no `|` default caught it.
    Absent,
    Type {
        expected: Type,
        found: Type,
    },
    Overflow,
    DivisionByZero,
    Other(String),
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvalError::Absent => f.write_str("attribute absent"),
            EvalError::Type { expected, found } => {
                write!(f, "expected {}, found {}", expected.with_article(), found)
            }
            EvalError::Overflow => f.write_str("integer overflow"),
            EvalError::DivisionByZero => f.write_str("division by zero"),
            EvalError::Other(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for EvalError {}

/// Compiles `source`. With `expected`, the result must be assignable to it: a string accepts
/// any scalar (the caller writes it with [`Value::write_to`]); an int accepts an int, a
/// double (truncated by [`Program::eval_i64`]) and a string literal holding an int (Mixer's
/// `"2"`); every other type only itself.
pub fn compile(
    source: &str,
    expected: Option<Type>,
    resolver: &mut dyn Resolver,
) -> Result<Program, ExprError> {
    let tokens = lexer::lex(source)?;
    let ast = parser::parse(&tokens)?;
    let (root, ty, slots) = check::compile(&ast, expected, resolver)?;
    Ok(Program { root, ty, slots })
}
