//! One line of an import's report.

use std::fmt;

/// One part of the input that was not carried over (or not as it was), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// `kind/namespace/name`.
    pub resource: String,
    /// The field within the resource's spec; empty for the whole resource.
    pub field: String,
    pub reason: String,
}

impl Warning {
    pub fn new(
        resource: impl Into<String>,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Warning {
        Warning {
            resource: resource.into(),
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.resource, self.reason)
        } else {
            write!(f, "{}: {}: {}", self.resource, self.field, self.reason)
        }
    }
}
