//! Name resolution and type checking: syntax tree → compiled tree.

mod builtins;
#[cfg(test)]
mod tests;

use super::ast::{Ast, BinOp, Kind, UnOp};
use super::error::ExprError;
use super::ir::{Arith, Cmp, Node};
use super::resolver::{Resolver, Seg};
use super::time;
use super::value::Type;

pub(crate) fn compile(
    ast: &Ast,
    expected: Option<Type>,
    resolver: &mut dyn Resolver,
) -> Result<(Node, Type, Vec<usize>), ExprError> {
    // Mixer configs wrote int metric values as strings: `value: "2"`.
    if expected == Some(Type::Int) {
        if let Kind::Str(s) = &ast.kind {
            if let Ok(n) = s.trim().parse::<i64>() {
                return Ok((Node::Int(n), Type::Int, Vec::new()));
            }
        }
    }
    let mut checker = Checker {
        resolver,
        slots: Vec::new(),
    };
    let (node, ty) = checker.check(ast)?;
    if let Some(want) = expected {
        let ok = match want {
            Type::String => !matches!(ty, Type::Map | Type::List),
            Type::Int => matches!(ty, Type::Int | Type::Double),
            _ => want == ty,
        };
        if !ok {
            let message = format!("expected {}, found {}", want.with_article(), ty);
            return Err(ExprError::evaluation(ast.col, message));
        }
    }
    let mut slots = checker.slots;
    slots.sort_unstable();
    slots.dedup();
    Ok((node, ty, slots))
}

pub(crate) struct Checker<'r> {
    resolver: &'r mut dyn Resolver,
    slots: Vec<usize>,
}

/// Collects the attribute chain `ast` spells, if it is one.
fn chain_of<'a>(ast: &'a Ast, out: &mut Vec<Seg<'a>>) -> bool {
    match &ast.kind {
        Kind::Ident(name) => {
            out.push(Seg::Field(name));
            true
        }
        Kind::Select(target, field, _) => {
            let ok = chain_of(target, out);
            out.push(Seg::Field(field));
            ok
        }
        Kind::Index(target, key) => match &key.kind {
            Kind::Str(key) => {
                let ok = chain_of(target, out);
                out.push(Seg::Key(key));
                ok
            }
            Kind::Int(i) => {
                let ok = chain_of(target, out);
                out.push(Seg::Index(*i));
                ok
            }
            _ => false,
        },
        _ => false,
    }
}

/// The innermost `.field` applied to something that is not an attribute chain.
fn computed_select(ast: &Ast) -> Option<(usize, &str)> {
    match &ast.kind {
        Kind::Select(target, field, col) => computed_select(target).or(Some((*col, field))),
        Kind::Index(target, key) if matches!(key.kind, Kind::Str(_) | Kind::Int(_)) => {
            computed_select(target)
        }
        _ => None,
    }
}

pub(crate) fn box2(a: Node, b: Node) -> (Box<Node>, Box<Node>) {
    (Box::new(a), Box::new(b))
}

impl Checker<'_> {
    pub(crate) fn check(&mut self, ast: &Ast) -> Result<(Node, Type), ExprError> {
        Ok(match &ast.kind {
            Kind::Int(n) => (Node::Int(*n), Type::Int),
            Kind::Double(d) => (Node::Double(*d), Type::Double),
            Kind::Str(s) => (Node::Str(s.as_str().into()), Type::String),
            Kind::Bool(b) => (Node::Bool(*b), Type::Bool),
            Kind::List(_) => {
                let message = "a list literal is only allowed on the right of `in`";
                return Err(ExprError::new(ast.col, message));
            }
            Kind::Ident(_) | Kind::Select(..) => self.attribute(ast)?,
            Kind::Index(target, key) => {
                if chain_of(ast, &mut Vec::new()) {
                    return self.attribute(ast);
                }
                let map = self.want(target, Type::Map, "an indexed value")?;
                let key = self.want(key, Type::String, "a map key")?;
                let (map, key) = box2(map, key);
                (Node::Index(map, key), Type::String)
            }
            Kind::Call(name, args) => self.check_call(ast.col, name, args)?,
            Kind::Method(target, name, col, args) => self.check_method(target, name, *col, args)?,
            Kind::Unary(op, operand) => self.unary(*op, operand)?,
            Kind::Binary(op, col, l, r) => self.binary(*op, *col, l, r)?,
            Kind::Cond(col, c, then, otherwise) => self.cond("`?:`", *col, c, then, otherwise)?,
        })
    }

    /// Checks `ast` and requires `ty`: "{what} must be a string, found int".
    pub(crate) fn want(&mut self, ast: &Ast, ty: Type, what: &str) -> Result<Node, ExprError> {
        let (node, found) = self.check(ast)?;
        if found != ty {
            let message = format!("{what} must be {}, found {found}", ty.with_article());
            return Err(ExprError::evaluation(ast.col, message));
        }
        Ok(node)
    }

    fn resolve(&mut self, ast: &Ast) -> Result<Option<(usize, Type)>, ExprError> {
        let mut chain = Vec::new();
        if !chain_of(ast, &mut chain) {
            return Ok(None);
        }
        if chain == [Seg::Field("null")] {
            let message = "null is not supported; use `|` or has() for absent attributes";
            return Err(ExprError::new(ast.col, message));
        }
        let (slot, ty) = self
            .resolver
            .resolve(&chain)
            .map_err(|message| ExprError::evaluation(ast.col, message))?;
        self.slots.push(slot);
        Ok(Some((slot, ty)))
    }

    fn attribute(&mut self, ast: &Ast) -> Result<(Node, Type), ExprError> {
        if let Some((slot, ty)) = self.resolve(ast)? {
            return Ok((Node::Slot(slot), ty));
        }
        let (col, field) = computed_select(ast).unwrap_or((ast.col, ""));
        let message = format!(
            "cannot select `.{field}` from a computed value: fields exist only on attributes"
        );
        Err(ExprError::new(col, message))
    }

    /// `has(x)`: whether an attribute, or a map entry, is present.
    pub(crate) fn has(&mut self, arg: &Ast) -> Result<Node, ExprError> {
        if let Some((slot, _)) = self.resolve(arg)? {
            return Ok(Node::HasSlot(slot));
        }
        if let Kind::Index(target, key) = &arg.kind {
            let map = self.want(target, Type::Map, "an indexed value")?;
            let key = self.want(key, Type::String, "a map key")?;
            let (map, key) = box2(map, key);
            return Ok(Node::HasIndex(map, key));
        }
        let message = "has() needs an attribute or a map entry, like has(request.headers['x'])";
        Err(ExprError::new(arg.col, message))
    }

    fn unary(&mut self, op: UnOp, operand: &Ast) -> Result<(Node, Type), ExprError> {
        if op == UnOp::Not {
            let node = self.want(operand, Type::Bool, "the operand of `!`")?;
            return Ok((Node::Not(Box::new(node)), Type::Bool));
        }
        let (node, ty) = self.check(operand)?;
        if !matches!(ty, Type::Int | Type::Double | Type::Duration) {
            let message = format!("the operand of `-` must be a number, found {ty}");
            return Err(ExprError::evaluation(operand.col, message));
        }
        Ok((Node::Neg(Box::new(node)), ty))
    }

    pub(crate) fn cond(
        &mut self,
        what: &str,
        col: usize,
        c: &Ast,
        then: &Ast,
        otherwise: &Ast,
    ) -> Result<(Node, Type), ExprError> {
        let c = self.want(c, Type::Bool, &format!("the condition of {what}"))?;
        let (then, t1) = self.check(then)?;
        let (otherwise, t2) = self.check(otherwise)?;
        if t1 != t2 {
            let message =
                format!("the branches of {what} must have the same type, found {t1} and {t2}");
            return Err(ExprError::evaluation(col, message));
        }
        let (then, otherwise) = box2(then, otherwise);
        Ok((Node::Cond(Box::new(c), then, otherwise), t1))
    }

    fn binary(
        &mut self,
        op: BinOp,
        col: usize,
        l: &Ast,
        r: &Ast,
    ) -> Result<(Node, Type), ExprError> {
        let sym = op.symbol();
        if matches!(op, BinOp::And | BinOp::Or) {
            let what = format!("the operands of `{sym}`");
            let (l, r) = box2(
                self.want(l, Type::Bool, &what)?,
                self.want(r, Type::Bool, &what)?,
            );
            let node = if op == BinOp::And {
                Node::And(l, r)
            } else {
                Node::Or(l, r)
            };
            return Ok((node, Type::Bool));
        }
        if op == BinOp::In {
            return self.membership(l, r);
        }
        let (ln, lt) = self.check(l)?;
        let (rn, rt) = self.check(r)?;
        let (ln, rn) = box2(ln, rn);
        let err = |message: String| Err(ExprError::evaluation(col, message));
        let cmp = match op {
            BinOp::Eq => Some(Cmp::Eq),
            BinOp::Ne => Some(Cmp::Ne),
            BinOp::Lt => Some(Cmp::Lt),
            BinOp::Le => Some(Cmp::Le),
            BinOp::Gt => Some(Cmp::Gt),
            BinOp::Ge => Some(Cmp::Ge),
            _ => None,
        };
        if let Some(cmp) = cmp {
            if lt != rt {
                return err(format!("`{sym}` cannot compare {lt} with {rt}"));
            }
            if matches!(lt, Type::Map | Type::List) {
                return err(format!("`{sym}` cannot compare {lt}s"));
            }
            return Ok((Node::Cmp(cmp, ln, rn), Type::Bool));
        }
        if op == BinOp::Default {
            // Mixer wrote duration and timestamp defaults as strings (`response.duration |
            // "0ms"` in Istio 1.0's own configs): a string literal there is parsed now.
            if let (Type::Duration | Type::Timestamp, Kind::Str(text)) = (lt, &r.kind) {
                let literal = if lt == Type::Duration {
                    time::parse_duration(text).map(Node::Duration)
                } else {
                    time::parse_timestamp(text).map(Node::Timestamp)
                };
                let literal = literal.map_err(|m| ExprError::evaluation(r.col, m))?;
                return Ok((Node::Default(ln, Box::new(literal)), lt));
            }
            if lt != rt {
                return err(format!(
                    "the two sides of `|` must have the same type, found {lt} and {rt}"
                ));
            }
            return Ok((Node::Default(ln, rn), lt));
        }
        let arith = match op {
            BinOp::Add => Arith::Add,
            BinOp::Sub => Arith::Sub,
            BinOp::Mul => Arith::Mul,
            BinOp::Div => Arith::Div,
            _ => Arith::Rem,
        };
        use Type::{Double as D, Duration as Dur, Int as I, String as S, Timestamp as Ts};
        let ty = match (arith, lt, rt) {
            (_, I, I) => I,
            (_, D, D) => D,
            (Arith::Add, S, S) => S,
            (Arith::Add | Arith::Sub, Dur, Dur) => Dur,
            (Arith::Add, Ts, Dur) | (Arith::Add, Dur, Ts) | (Arith::Sub, Ts, Dur) => Ts,
            (Arith::Sub, Ts, Ts) => Dur,
            (_, I, D) | (_, D, I) => {
                return err(format!(
                    "`{sym}` cannot mix int and double; convert one side with double() or int()"
                ))
            }
            _ => return err(format!("`{sym}` is not defined for {lt} and {rt}")),
        };
        Ok((Node::Arith(arith, ln, rn), ty))
    }

    fn membership(&mut self, l: &Ast, r: &Ast) -> Result<(Node, Type), ExprError> {
        let (needle, nt) = self.check(l)?;
        if let Kind::List(items) = &r.kind {
            let what = "a list element, like the left side of `in`,";
            let items = items
                .iter()
                .map(|item| self.want(item, nt, what))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok((Node::InList(Box::new(needle), items), Type::Bool));
        }
        let (map, mt) = self.check(r)?;
        if mt != Type::Map {
            let message =
                format!("the right side of `in` must be a list literal or a map, found {mt}");
            return Err(ExprError::evaluation(r.col, message));
        }
        if nt != Type::String {
            let message = format!("a map key must be a string, found {nt}");
            return Err(ExprError::evaluation(l.col, message));
        }
        let (needle, map) = box2(needle, map);
        Ok((Node::InMap(needle, map), Type::Bool))
    }
}
