//! Built-in functions and methods: their names, arities and type checking. Written as methods
//! of `Checker`, so `check` calls them without importing this module: the dependency runs one
//! way, from this child to its parent.

use super::{box2, Checker};
use crate::expr::ast::{Ast, Kind};
use crate::expr::error::ExprError;
use crate::expr::ir::{parse_int, Func, Node, StrOp};
use crate::expr::suggest::did_you_mean;
use crate::expr::time;
use crate::expr::value::Type;

const FUNCTIONS: [(&str, usize); 12] = [
    ("conditional", 3),
    ("double", 1),
    ("duration", 1),
    ("emptyStringMap", 0),
    ("has", 1),
    ("int", 1),
    ("match", 2),
    ("matches", 2),
    ("size", 1),
    ("string", 1),
    ("timestamp", 1),
    ("toLower", 1),
];

const METHODS: [(&str, usize); 7] = [
    ("contains", 1),
    ("endsWith", 1),
    ("lowerAscii", 0),
    ("matches", 1),
    ("size", 0),
    ("startsWith", 1),
    ("upperAscii", 0),
];

fn arity(table: &[(&str, usize)], name: &str) -> Option<usize> {
    table.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
}

fn unknown(name: &str, col: usize, method: bool) -> ExprError {
    type Table<'t> = &'t [(&'t str, usize)];
    let (own, other): (Table<'_>, Table<'_>) = if method {
        (&METHODS, &FUNCTIONS)
    } else {
        (&FUNCTIONS, &METHODS)
    };
    let message = if arity(other, name).is_some() && method {
        format!("`{name}` is a function, not a method: write {name}(x)")
    } else if arity(other, name).is_some() {
        format!("`{name}` is a method: write x.{name}(…)")
    } else {
        let mut message = format!("unknown function `{name}`");
        if let Some(near) = did_you_mean(name, own.iter().map(|(n, _)| *n)) {
            message.push_str(&format!("; did you mean `{near}`?"));
        }
        message
    };
    ExprError::new(col, message)
}

fn wrong_arity(name: &str, col: usize, want: usize, found: usize) -> ExprError {
    let s = if want == 1 { "" } else { "s" };
    ExprError::new(
        col,
        format!("`{name}` takes {want} argument{s}, found {found}"),
    )
}

impl Checker<'_> {
    /// Type-checks a call of a builtin function.
    pub(super) fn check_call(
        &mut self,
        col: usize,
        name: &str,
        args: &[Ast],
    ) -> Result<(Node, Type), ExprError> {
        let c = self;
        let Some(want) = arity(&FUNCTIONS, name) else {
            return Err(unknown(name, col, false));
        };
        let what = format!("the argument of `{name}`");
        Ok(match (name, args) {
            ("has", [a]) => (c.has(a)?, Type::Bool),
            ("size", [a]) => size(c, a)?,
            ("string", [a]) => {
                let (node, ty) = c.check(a)?;
                if matches!(ty, Type::Map | Type::List) {
                    return Err(ExprError::evaluation(
                        a.col,
                        format!("string() cannot convert {}", ty.with_article()),
                    ));
                }
                (Node::Call(Func::String, Box::new(node)), Type::String)
            }
            ("int", [a]) => {
                if let Kind::Str(s) = &a.kind {
                    let n =
                        parse_int(s).map_err(|e| ExprError::evaluation(a.col, e.to_string()))?;
                    return Ok((Node::Int(n), Type::Int));
                }
                convert(
                    c,
                    a,
                    Func::Int,
                    &[
                        Type::Int,
                        Type::Double,
                        Type::String,
                        Type::Bool,
                        Type::Timestamp,
                        Type::Duration,
                    ],
                )?
            }
            ("double", [a]) => {
                if let Kind::Str(s) = &a.kind {
                    let message =
                        || ExprError::evaluation(a.col, format!("cannot convert {s:?} to double"));
                    return Ok((
                        Node::Double(s.parse().map_err(|_| message())?),
                        Type::Double,
                    ));
                }
                convert(c, a, Func::Double, &[Type::Double, Type::Int, Type::String])?
            }
            ("duration", [a]) => {
                if let Kind::Str(s) = &a.kind {
                    let ns =
                        time::parse_duration(s).map_err(|m| ExprError::evaluation(a.col, m))?;
                    return Ok((Node::Duration(ns), Type::Duration));
                }
                convert(c, a, Func::Duration, &[Type::String, Type::Duration])?
            }
            ("timestamp", [a]) => {
                if let Kind::Str(s) = &a.kind {
                    let ns =
                        time::parse_timestamp(s).map_err(|m| ExprError::evaluation(a.col, m))?;
                    return Ok((Node::Timestamp(ns), Type::Timestamp));
                }
                convert(c, a, Func::Timestamp, &[Type::String, Type::Timestamp])?
            }
            ("conditional", [x, y, z]) => c.cond("`conditional`", col, x, y, z)?,
            ("match", [s, p]) => {
                str_op(c, StrOp::Glob, s, p, &format!("the arguments of `{name}`"))?
            }
            ("matches", [s, p]) => matches(c, s, p, &format!("the arguments of `{name}`"))?,
            ("toLower", [s]) => {
                let node = c.want(s, Type::String, &what)?;
                (Node::Call(Func::ToLower, Box::new(node)), Type::String)
            }
            ("emptyStringMap", []) => (Node::EmptyMap, Type::Map),
            _ => return Err(wrong_arity(name, col, want, args.len())),
        })
    }
}

impl Checker<'_> {
    /// Type-checks a method call (`s.startsWith(p)`) of a builtin.
    pub(super) fn check_method(
        &mut self,
        target: &Ast,
        name: &str,
        col: usize,
        args: &[Ast],
    ) -> Result<(Node, Type), ExprError> {
        let c = self;
        let Some(want) = arity(&METHODS, name) else {
            return Err(unknown(name, col, true));
        };
        let what = format!("the receiver and argument of `{name}`");
        let op = match (name, args) {
            ("size", []) => return size(c, target),
            ("lowerAscii" | "upperAscii", []) => {
                let func = if name == "lowerAscii" {
                    Func::LowerAscii
                } else {
                    Func::UpperAscii
                };
                let node = c.want(target, Type::String, &format!("the receiver of `{name}`"))?;
                return Ok((Node::Call(func, Box::new(node)), Type::String));
            }
            ("matches", [p]) => return matches(c, target, p, &what),
            ("startsWith", [_]) => StrOp::StartsWith,
            ("endsWith", [_]) => StrOp::EndsWith,
            ("contains", [_]) => StrOp::Contains,
            _ => return Err(wrong_arity(name, col, want, args.len())),
        };
        match args {
            [arg] => str_op(c, op, target, arg, &what),
            _ => Err(wrong_arity(name, col, want, args.len())),
        }
    }
}

fn convert(
    c: &mut Checker<'_>,
    a: &Ast,
    func: Func,
    from: &[Type],
) -> Result<(Node, Type), ExprError> {
    let (node, ty) = c.check(a)?;
    let (name, to) = match func {
        Func::Int => ("int", Type::Int),
        Func::Double => ("double", Type::Double),
        Func::Duration => ("duration", Type::Duration),
        _ => ("timestamp", Type::Timestamp),
    };
    if !from.contains(&ty) {
        return Err(ExprError::evaluation(
            a.col,
            format!("{name}() cannot convert {}", ty.with_article()),
        ));
    }
    Ok((Node::Call(func, Box::new(node)), to))
}

fn size(c: &mut Checker<'_>, a: &Ast) -> Result<(Node, Type), ExprError> {
    let (node, ty) = c.check(a)?;
    if !matches!(ty, Type::String | Type::Map) {
        return Err(ExprError::evaluation(
            a.col,
            format!("size() needs a string or a map, found {ty}"),
        ));
    }
    Ok((Node::Call(Func::Size, Box::new(node)), Type::Int))
}

fn str_op(
    c: &mut Checker<'_>,
    op: StrOp,
    s: &Ast,
    p: &Ast,
    what: &str,
) -> Result<(Node, Type), ExprError> {
    let (s, p) = box2(
        c.want(s, Type::String, what)?,
        c.want(p, Type::String, what)?,
    );
    Ok((Node::StrOp(op, s, p), Type::Bool))
}

/// A literal pattern is compiled here, once, and a bad one is a configuration error.
fn matches(c: &mut Checker<'_>, s: &Ast, p: &Ast, what: &str) -> Result<(Node, Type), ExprError> {
    let Kind::Str(pattern) = &p.kind else {
        return str_op(c, StrOp::Matches, s, p, what);
    };
    let s = c.want(s, Type::String, what)?;
    let re = regex_lite::Regex::new(pattern)
        .map_err(|e| ExprError::new(p.col, format!("invalid regular expression: {e}")))?;
    Ok((Node::Regex(Box::new(s), Box::new(re)), Type::Bool))
}
