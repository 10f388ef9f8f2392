//! The types expressions have and the values they take: attributes as the caller supplies
//! them, results as evaluation produces them.

use std::borrow::Cow;
use std::fmt;

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
}
