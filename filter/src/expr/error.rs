//! Compile errors, with their column, and evaluation errors.

use super::value::Type;
use std::fmt;

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
