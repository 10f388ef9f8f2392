//! The compiled tree: what the checker builds from the syntax tree and the evaluator runs.
//!
//! Every node is already resolved (attributes are slots) and type-checked, so it carries no
//! columns and no names. The conversions below are shared by both phases: the checker folds
//! `int("42")` with the same rules evaluation applies to `int(request.headers['x'])`.

use super::error::EvalError;

#[derive(Debug, Clone)]
pub(crate) enum Node {
    Str(Box<str>),
    Int(i64),
    Double(f64),
    Bool(bool),
    Duration(i64),
    Timestamp(i64),
    EmptyMap,
    Slot(usize),
    /// `map[key]` with a computed key, or on a computed map.
    Index(Box<Node>, Box<Node>),
    HasSlot(usize),
    HasIndex(Box<Node>, Box<Node>),
    Not(Box<Node>),
    Neg(Box<Node>),
    Arith(Arith, Box<Node>, Box<Node>),
    Cmp(Cmp, Box<Node>, Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Cond(Box<Node>, Box<Node>, Box<Node>),
    /// Mixer's `a | b`.
    Default(Box<Node>, Box<Node>),
    InList(Box<Node>, Vec<Node>),
    InMap(Box<Node>, Box<Node>),
    Call(Func, Box<Node>),
    StrOp(StrOp, Box<Node>, Box<Node>),
    /// `matches` with a literal pattern, compiled once.
    Regex(Box<Node>, Box<regex_lite::Regex>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// One-argument functions and zero-argument methods, applied to the value of their operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    Size,
    String,
    Int,
    Double,
    Duration,
    Timestamp,
    /// Mixer's `toLower`: Unicode lower case, as Go's `strings.ToLower`.
    ToLower,
    LowerAscii,
    UpperAscii,
}

/// Boolean string predicates over two strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StrOp {
    StartsWith,
    EndsWith,
    Contains,
    /// Mixer's `match`.
    Glob,
    /// `matches` with a computed pattern, compiled on each evaluation.
    Matches,
}

/// A double truncated toward zero, as `int(double)` and int-valued metric values read it.
pub(crate) fn double_to_i64(d: f64) -> Result<i64, EvalError> {
    // 2^63 is exact as a double; anything from it up does not fit, nor does NaN.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if !(-LIMIT..LIMIT).contains(&d) {
        return Err(EvalError::Overflow);
    }
    Ok(d.trunc() as i64)
}

/// A decimal int, as `int(string)` and int-valued metric values read a string.
pub(crate) fn parse_int(s: &str) -> Result<i64, EvalError> {
    s.parse()
        .map_err(|_| EvalError::Other(format!("cannot convert {s:?} to int")))
}
