//! Compile errors, with their column, and evaluation errors.

use super::value::Type;
use std::fmt;

/// A compile error: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    /// 1-based, counted in chars.
    pub column: usize,
    pub message: String,
    pub class: ErrorClass,
}

/// Istio's split between an expression Envoy's CEL refuses to build and one it builds but
/// cannot evaluate: the first removes its tag, the second gives `unknown` on every request.
/// Our checker finds both when the configuration loads, so the class says which Istio would
/// have found at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// What CEL's parser or planner rejects: syntax, an unknown function or method, a wrong
    /// argument count, an invalid regular expression literal; and what we do not support
    /// (`null`, a list outside `in`, a field of a computed value, `has()` of a non-attribute).
    Parse,
    /// What CEL only meets when evaluating: an unknown attribute, a type mismatch, a literal
    /// that does not convert (`int("x")`, `duration("soon")`).
    Evaluation,
}

impl ExprError {
    pub(crate) fn new(column: usize, message: impl Into<String>) -> ExprError {
        ExprError {
            column,
            message: message.into(),
            class: ErrorClass::Parse,
        }
    }

    /// An error Istio's CEL would only have met when evaluating.
    pub(crate) fn evaluation(column: usize, message: impl Into<String>) -> ExprError {
        ExprError {
            class: ErrorClass::Evaluation,
            ..ExprError::new(column, message)
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
