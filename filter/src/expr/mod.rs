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
//!
//! The pipeline, one module per stage; a stage uses only the stages before it and the leaf
//! modules (`value`, `error`, `resolver`, `time`, `suggest`), never a later one:
//!
//! ```text
//! source ─lexer→ tokens ─parser→ AST (ast) ─check→ IR (ir) ─eval→ Value
//! ```
//!
//! `check` resolves names through the [`Resolver`] and types every node, so the IR carries
//! slots instead of names and `eval` has nothing left to reject but values. Each phase keeps
//! its half of the built-in functions beside it (`check::builtins`, `eval::builtins`); the IR
//! names the builtins (`ir::Func`, `ir::StrOp`), so neither half needs the other. [`lex`] is
//! public for tools that rewrite expressions, so they read them as the filter does.

mod ast;
mod check;
mod error;
mod eval;
mod format;
mod ir;
mod lexer;
mod parser;
mod resolver;
mod suggest;
mod time;
mod value;

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;

pub use error::{ErrorClass, EvalError, ExprError};
pub use lexer::{lex, Tok, Token};
pub use resolver::{chain_to_string, Resolver, Seg};
pub use suggest::did_you_mean;
pub use value::{Attr, Type, Value};

/// A compiled expression.
///
/// A boxed tree rather than an index arena: expressions are tens of nodes, compiled once,
/// and a tree evaluates by direct recursion with no fallible arena lookups in the hot path.
/// Its depth is bounded at compile time, so neither evaluation nor drop can exhaust the stack.
#[derive(Debug, Clone)]
pub struct Program {
    root: ir::Node,
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
            Value::Double(d) => ir::double_to_i64(d),
            Value::Bool(b) => Ok(i64::from(b)),
            Value::Str(s) => ir::parse_int(&s),
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
