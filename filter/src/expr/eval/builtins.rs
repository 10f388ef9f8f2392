//! Evaluation of built-in functions and methods.

use crate::expr::error::EvalError;
use crate::expr::ir::{double_to_i64, parse_int, Func, StrOp};
use crate::expr::time;
use crate::expr::value::{Type, Value};
use std::borrow::Cow;

/// Mixer's `match`: `prefix*`, `*suffix` or an exact string.
fn glob(s: &str, pattern: &str) -> bool {
    if let Some(prefix) = pattern.strip_suffix('*') {
        s.starts_with(prefix)
    } else if let Some(suffix) = pattern.strip_prefix('*') {
        s.ends_with(suffix)
    } else {
        s == pattern
    }
}

pub(super) fn eval_str_op<'a>(
    op: StrOp,
    s: Cow<'a, str>,
    p: Cow<'_, str>,
) -> Result<Value<'a>, EvalError> {
    Ok(Value::Bool(match op {
        StrOp::StartsWith => s.starts_with(&*p),
        StrOp::EndsWith => s.ends_with(&*p),
        StrOp::Contains => s.contains(&*p),
        StrOp::Glob => glob(&s, &p),
        StrOp::Matches => regex_lite::Regex::new(&p)
            .map_err(|e| EvalError::Other(format!("invalid regular expression {p:?}: {e}")))?
            .is_match(&s),
    }))
}

/// Keeps the input (borrowed or not) when the case change would not change it.
fn recase<'a>(s: Cow<'a, str>, func: Func) -> Cow<'a, str> {
    let changes = |b: u8| match func {
        Func::UpperAscii => b.is_ascii_lowercase(),
        _ => b.is_ascii_uppercase(),
    };
    let unicode = func == Func::ToLower && !s.is_ascii();
    if !unicode && !s.bytes().any(changes) {
        return s;
    }
    Cow::Owned(match func {
        Func::UpperAscii => s.to_ascii_uppercase(),
        Func::LowerAscii => s.to_ascii_lowercase(),
        _ => s.to_lowercase(),
    })
}

pub(super) fn eval_call(func: Func, v: Value<'_>) -> Result<Value<'_>, EvalError> {
    let mismatch = |v: &Value<'_>, expected| EvalError::Type {
        expected,
        found: v.type_of(),
    };
    Ok(match (func, v) {
        (Func::Size, Value::Str(s)) => {
            Value::Int(i64::try_from(s.chars().count()).map_err(|_| EvalError::Overflow)?)
        }
        (Func::Size, Value::Map(m)) => {
            Value::Int(i64::try_from(m.len()).map_err(|_| EvalError::Overflow)?)
        }
        (Func::String, Value::Str(s)) => Value::Str(s),
        (Func::String, v @ Value::Map(_)) => return Err(mismatch(&v, Type::String)),
        (Func::String, v) => {
            let mut s = String::new();
            v.write_to(&mut s);
            Value::Str(Cow::Owned(s))
        }
        (Func::Int, Value::Int(n)) => Value::Int(n),
        (Func::Int, Value::Double(d)) => Value::Int(double_to_i64(d)?),
        (Func::Int, Value::Bool(b)) => Value::Int(i64::from(b)),
        (Func::Int, Value::Str(s)) => Value::Int(parse_int(&s)?),
        // As CEL: seconds since the epoch.
        (Func::Int, Value::Timestamp(ns)) => Value::Int(ns.div_euclid(1_000_000_000)),
        // Nanoseconds, as metric values read a duration: `int(request.duration) / 1000000`
        // is Envoy's `%DURATION%` in milliseconds.
        (Func::Int, Value::Duration(ns)) => Value::Int(ns),
        (Func::Double, Value::Double(d)) => Value::Double(d),
        (Func::Double, Value::Int(n)) => Value::Double(n as f64),
        (Func::Double, Value::Str(s)) => Value::Double(
            s.parse()
                .map_err(|_| EvalError::Other(format!("cannot convert {s:?} to double")))?,
        ),
        (Func::Duration, Value::Duration(ns)) => Value::Duration(ns),
        (Func::Duration, Value::Str(s)) => {
            Value::Duration(time::parse_duration(&s).map_err(EvalError::Other)?)
        }
        (Func::Timestamp, Value::Timestamp(ns)) => Value::Timestamp(ns),
        (Func::Timestamp, Value::Str(s)) => {
            Value::Timestamp(time::parse_timestamp(&s).map_err(EvalError::Other)?)
        }
        (Func::ToLower | Func::LowerAscii | Func::UpperAscii, Value::Str(s)) => {
            Value::Str(recase(s, func))
        }
        (_, v) => return Err(mismatch(&v, Type::String)),
    })
}
