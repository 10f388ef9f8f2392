//! Evaluation of the compiled tree over a request's attribute slots.
//!
//! The checker has already proved every operand's type, so a mismatch here is a checker bug:
//! it surfaces as `EvalError::Type`, never as a panic.

mod builtins;
#[cfg(test)]
mod tests;

use super::error::EvalError;
use super::ir::{Arith, Cmp, Node};
use super::value::{Attr, Type, Value};
use builtins::{eval_call, eval_str_op};
use std::borrow::Cow;
use std::cmp::Ordering;

fn mismatch(expected: Type, found: &Value<'_>) -> EvalError {
    EvalError::Type {
        expected,
        found: found.type_of(),
    }
}

fn attr(a: &Attr) -> Value<'_> {
    match a {
        Attr::Str(s) => Value::Str(Cow::Borrowed(s)),
        Attr::Int(n) => Value::Int(*n),
        Attr::Double(d) => Value::Double(*d),
        Attr::Bool(b) => Value::Bool(*b),
        Attr::Duration(ns) => Value::Duration(*ns),
        Attr::Timestamp(ns) => Value::Timestamp(*ns),
        Attr::Map(entries) => Value::Map(entries),
    }
}

pub(crate) fn eval<'a>(node: &'a Node, slots: &'a [Option<Attr>]) -> Result<Value<'a>, EvalError> {
    Ok(match node {
        Node::Str(s) => Value::Str(Cow::Borrowed(s)),
        Node::Int(n) => Value::Int(*n),
        Node::Double(d) => Value::Double(*d),
        Node::Bool(b) => Value::Bool(*b),
        Node::Duration(ns) => Value::Duration(*ns),
        Node::Timestamp(ns) => Value::Timestamp(*ns),
        Node::EmptyMap => Value::Map(&[]),
        Node::Slot(i) => attr(
            slots
                .get(*i)
                .and_then(Option::as_ref)
                .ok_or(EvalError::Absent)?,
        ),
        Node::Cmp(op, l, r) => Value::Bool(compare(*op, &eval(l, slots)?, &eval(r, slots)?)?),
        Node::Cond(c, then, otherwise) => {
            if eval_bool(c, slots)? {
                eval(then, slots)?
            } else {
                eval(otherwise, slots)?
            }
        }
        Node::Default(l, r) => match eval(l, slots) {
            Err(EvalError::Absent) => eval(r, slots)?,
            other => other?,
        },
        _ => eval_compound(node, slots)?,
    })
}

/// Out of line so that the frame of `eval`, which every node goes through, stays small.
#[inline(never)]
fn eval_compound<'a>(node: &'a Node, slots: &'a [Option<Attr>]) -> Result<Value<'a>, EvalError> {
    Ok(match node {
        Node::Index(map, key) => {
            let entries = eval_map(map, slots)?;
            let key = eval_str(key, slots)?;
            let found = entries.iter().find(|(k, _)| **k == *key);
            Value::Str(Cow::Borrowed(&found.ok_or(EvalError::Absent)?.1))
        }
        Node::HasSlot(i) => Value::Bool(slots.get(*i).is_some_and(Option::is_some)),
        Node::HasIndex(map, key) => Value::Bool(match eval(map, slots) {
            Ok(Value::Map(entries)) => {
                let key = eval_str(key, slots)?;
                entries.iter().any(|(k, _)| **k == *key)
            }
            Ok(other) => return Err(mismatch(Type::Map, &other)),
            Err(EvalError::Absent) => false,
            Err(e) => return Err(e),
        }),
        Node::Not(e) => Value::Bool(!eval_bool(e, slots)?),
        Node::Neg(e) => match eval(e, slots)? {
            Value::Int(n) => Value::Int(n.checked_neg().ok_or(EvalError::Overflow)?),
            Value::Double(d) => Value::Double(-d),
            Value::Duration(n) => Value::Duration(n.checked_neg().ok_or(EvalError::Overflow)?),
            other => return Err(mismatch(Type::Int, &other)),
        },
        Node::Arith(op, l, r) => arith(*op, eval(l, slots)?, eval(r, slots)?)?,
        // CEL's absorption: a decisive right side wins over an error on the left.
        Node::And(l, r) => Value::Bool(match eval_bool(l, slots) {
            Ok(false) => false,
            Ok(true) => eval_bool(r, slots)?,
            Err(e) => match eval_bool(r, slots) {
                Ok(false) => false,
                _ => return Err(e),
            },
        }),
        Node::Or(l, r) => Value::Bool(match eval_bool(l, slots) {
            Ok(true) => true,
            Ok(false) => eval_bool(r, slots)?,
            Err(e) => match eval_bool(r, slots) {
                Ok(true) => true,
                _ => return Err(e),
            },
        }),
        Node::InList(needle, items) => {
            let needle = eval(needle, slots)?;
            let mut found = false;
            for item in items {
                if compare(Cmp::Eq, &needle, &eval(item, slots)?)? {
                    found = true;
                    break;
                }
            }
            Value::Bool(found)
        }
        Node::InMap(key, map) => {
            let key = eval_str(key, slots)?;
            Value::Bool(eval_map(map, slots)?.iter().any(|(k, _)| **k == *key))
        }
        Node::Call(func, arg) => eval_call(*func, eval(arg, slots)?)?,
        Node::StrOp(op, l, r) => eval_str_op(*op, eval_str(l, slots)?, eval_str(r, slots)?)?,
        Node::Regex(s, re) => Value::Bool(re.is_match(&eval_str(s, slots)?)),
        // `eval` handles these itself and never sends them here.
        Node::Str(_)
        | Node::Int(_)
        | Node::Double(_)
        | Node::Bool(_)
        | Node::Duration(_)
        | Node::Timestamp(_)
        | Node::EmptyMap
        | Node::Slot(_)
        | Node::Cmp(..)
        | Node::Cond(..)
        | Node::Default(..) => eval(node, slots)?,
    })
}

fn eval_bool(node: &Node, slots: &[Option<Attr>]) -> Result<bool, EvalError> {
    match eval(node, slots)? {
        Value::Bool(b) => Ok(b),
        other => Err(mismatch(Type::Bool, &other)),
    }
}

fn eval_str<'a>(node: &'a Node, slots: &'a [Option<Attr>]) -> Result<Cow<'a, str>, EvalError> {
    match eval(node, slots)? {
        Value::Str(s) => Ok(s),
        other => Err(mismatch(Type::String, &other)),
    }
}

fn eval_map<'a>(
    node: &'a Node,
    slots: &'a [Option<Attr>],
) -> Result<&'a [(String, String)], EvalError> {
    match eval(node, slots)? {
        Value::Map(entries) => Ok(entries),
        other => Err(mismatch(Type::Map, &other)),
    }
}

fn checked(n: Option<i64>) -> Result<i64, EvalError> {
    n.ok_or(EvalError::Overflow)
}

fn arith<'a>(op: Arith, l: Value<'a>, r: Value<'a>) -> Result<Value<'a>, EvalError> {
    use Value::{Double as D, Duration as Dur, Int as I, Timestamp as Ts};
    Ok(match (op, l, r) {
        (Arith::Add, I(a), I(b)) => I(checked(a.checked_add(b))?),
        (Arith::Sub, I(a), I(b)) => I(checked(a.checked_sub(b))?),
        (Arith::Mul, I(a), I(b)) => I(checked(a.checked_mul(b))?),
        (Arith::Div | Arith::Rem, I(_), I(0)) => return Err(EvalError::DivisionByZero),
        (Arith::Div, I(a), I(b)) => I(checked(a.checked_div(b))?),
        (Arith::Rem, I(a), I(b)) => I(checked(a.checked_rem(b))?),
        (Arith::Add, D(a), D(b)) => D(a + b),
        (Arith::Sub, D(a), D(b)) => D(a - b),
        (Arith::Mul, D(a), D(b)) => D(a * b),
        (Arith::Div, D(a), D(b)) => D(a / b),
        (Arith::Rem, D(a), D(b)) => D(a % b),
        (Arith::Add, Value::Str(a), Value::Str(b)) => {
            if b.is_empty() {
                Value::Str(a)
            } else if a.is_empty() {
                Value::Str(b)
            } else {
                let mut s = String::with_capacity(a.len() + b.len());
                s.push_str(&a);
                s.push_str(&b);
                Value::Str(Cow::Owned(s))
            }
        }
        (Arith::Add, Dur(a), Dur(b)) => Dur(checked(a.checked_add(b))?),
        (Arith::Sub, Dur(a), Dur(b)) => Dur(checked(a.checked_sub(b))?),
        (Arith::Add, Ts(a), Dur(b)) | (Arith::Add, Dur(b), Ts(a)) => Ts(checked(a.checked_add(b))?),
        (Arith::Sub, Ts(a), Dur(b)) => Ts(checked(a.checked_sub(b))?),
        (Arith::Sub, Ts(a), Ts(b)) => Dur(checked(a.checked_sub(b))?),
        (_, l, r) => {
            return Err(EvalError::Type {
                expected: l.type_of(),
                found: r.type_of(),
            })
        }
    })
}

fn compare(op: Cmp, l: &Value<'_>, r: &Value<'_>) -> Result<bool, EvalError> {
    let ord = match (l, r) {
        (Value::Str(a), Value::Str(b)) => Some(a.as_ref().cmp(b.as_ref())),
        (Value::Int(a), Value::Int(b))
        | (Value::Duration(a), Value::Duration(b))
        | (Value::Timestamp(a), Value::Timestamp(b)) => Some(a.cmp(b)),
        (Value::Double(a), Value::Double(b)) => a.partial_cmp(b),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        _ => {
            return Err(EvalError::Type {
                expected: l.type_of(),
                found: r.type_of(),
            })
        }
    };
    // An unordered pair (NaN) is unequal and in no order, as in IEEE 754.
    Ok(match op {
        Cmp::Eq => ord == Some(Ordering::Equal),
        Cmp::Ne => ord != Some(Ordering::Equal),
        Cmp::Lt => ord == Some(Ordering::Less),
        Cmp::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
        Cmp::Gt => ord == Some(Ordering::Greater),
        Cmp::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
    })
}
