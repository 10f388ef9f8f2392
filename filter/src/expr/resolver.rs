//! Attribute chains and the caller's resolver, which maps them to slots.

use super::value::Type;

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
