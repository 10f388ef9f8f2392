//! The syntax tree, as the parser builds it and the checker reads it.

/// Bounds both the parser's recursion and the depth of the tree, so that nesting can neither
/// overflow the parser's stack nor the checker's and evaluator's, which recurse over the tree.
pub(crate) const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ast {
    /// Where the expression starts, 1-based in chars.
    pub col: usize,
    pub depth: usize,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Int(i64),
    Double(f64),
    Str(String),
    Bool(bool),
    Ident(String),
    List(Vec<Ast>),
    /// `target.field`, with the field's column.
    Select(Box<Ast>, String, usize),
    Index(Box<Ast>, Box<Ast>),
    Call(String, Vec<Ast>),
    /// `target.name(args)`, with the name's column.
    Method(Box<Ast>, String, usize, Vec<Ast>),
    Unary(UnOp, Box<Ast>),
    /// With the operator's column, where type errors point.
    Binary(BinOp, usize, Box<Ast>, Box<Ast>),
    /// `c ? a : b`, with the `?`'s column.
    Cond(usize, Box<Ast>, Box<Ast>, Box<Ast>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnOp {
    Not,
    Neg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Add,
    Sub,
    Default,
    Mul,
    Div,
    Rem,
}

impl BinOp {
    pub(crate) fn prec(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And => 2,
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::In => 3,
            BinOp::Add | BinOp::Sub | BinOp::Default => 4,
            BinOp::Mul | BinOp::Div | BinOp::Rem => 5,
        }
    }

    pub(crate) fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "||",
            BinOp::And => "&&",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::In => "in",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Default => "|",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
        }
    }
}

pub(crate) fn children(kind: &Kind) -> impl Iterator<Item = &Ast> {
    let (boxed, list): (Vec<&Ast>, &[Ast]) = match kind {
        Kind::Int(_) | Kind::Double(_) | Kind::Str(_) | Kind::Bool(_) | Kind::Ident(_) => {
            (vec![], &[])
        }
        Kind::List(items) | Kind::Call(_, items) => (vec![], items),
        Kind::Select(t, _, _) | Kind::Unary(_, t) => (vec![t], &[]),
        Kind::Index(a, b) | Kind::Binary(_, _, a, b) => (vec![a, b], &[]),
        Kind::Method(t, _, _, args) => (vec![t], args),
        Kind::Cond(_, a, b, c) => (vec![a, b, c], &[]),
    };
    boxed.into_iter().chain(list.iter())
}
