//! Tokens → syntax tree, by precedence climbing (the table is in `expr/mod.rs`).

#[cfg(test)]
pub(super) mod tests;

use super::ast::{children, Ast, BinOp, Kind, UnOp, MAX_DEPTH};
use super::error::ExprError;
use super::lexer::{Tok, Token};

pub(crate) fn parse(tokens: &[Token]) -> Result<Ast, ExprError> {
    let mut parser = Parser {
        tokens,
        pos: 0,
        depth: 0,
    };
    let ast = parser.expr()?;
    let next = parser.peek();
    if next.tok != Tok::Eof {
        return Err(ExprError::new(
            next.col,
            format!("expected end of expression, found {}", next.tok),
        ));
    }
    Ok(ast)
}

/// The binary operator a token spells, if any.
fn binary_op(tok: &Tok) -> Option<BinOp> {
    let p = match tok {
        Tok::In => return Some(BinOp::In),
        Tok::Punct(p) => *p,
        _ => return None,
    };
    [
        BinOp::Or,
        BinOp::And,
        BinOp::Eq,
        BinOp::Ne,
        BinOp::Lt,
        BinOp::Le,
        BinOp::Gt,
        BinOp::Ge,
        BinOp::Add,
        BinOp::Sub,
        BinOp::Default,
        BinOp::Mul,
        BinOp::Div,
        BinOp::Rem,
    ]
    .into_iter()
    .find(|op| op.symbol() == p)
}

struct Parser<'t> {
    tokens: &'t [Token],
    pos: usize,
    depth: usize,
}

const EOF: Token = Token {
    tok: Tok::Eof,
    col: 1,
    len: 0,
};

impl Parser<'_> {
    fn peek(&self) -> &Token {
        self.tokens
            .get(self.pos)
            .or_else(|| self.tokens.last())
            .unwrap_or(&EOF)
    }

    fn bump(&mut self) -> Token {
        let token = self.peek().clone();
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        token
    }

    fn eat(&mut self, punct: &'static str) -> bool {
        if self.peek().tok == Tok::Punct(punct) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, punct: &'static str) -> Result<(), ExprError> {
        if self.eat(punct) {
            return Ok(());
        }
        let next = self.peek();
        Err(ExprError::new(
            next.col,
            format!("expected `{punct}`, found {}", next.tok),
        ))
    }

    fn enter(&mut self) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.too_deep());
        }
        Ok(())
    }

    fn too_deep(&self) -> ExprError {
        ExprError::new(
            self.peek().col,
            format!("expression nested too deeply (more than {MAX_DEPTH} levels)"),
        )
    }

    fn node(&self, col: usize, kind: Kind) -> Result<Ast, ExprError> {
        let depth = 1 + children(&kind).map(|c| c.depth).max().unwrap_or(0);
        if depth > MAX_DEPTH {
            return Err(self.too_deep());
        }
        Ok(Ast { col, depth, kind })
    }

    fn expr(&mut self) -> Result<Ast, ExprError> {
        self.enter()?;
        let cond = self.binary(1)?;
        let result = if self.peek().tok == Tok::Punct("?") {
            let q_col = self.bump().col;
            let then = self.expr()?;
            self.expect(":")?;
            let otherwise = self.expr()?;
            let col = cond.col;
            self.node(
                col,
                Kind::Cond(q_col, Box::new(cond), Box::new(then), Box::new(otherwise)),
            )
        } else {
            Ok(cond)
        };
        self.depth -= 1;
        result
    }

    fn binary(&mut self, min_prec: u8) -> Result<Ast, ExprError> {
        let mut lhs = self.unary()?;
        while let Some(op) = binary_op(&self.peek().tok).filter(|op| op.prec() >= min_prec) {
            let op_col = self.bump().col;
            let rhs = self.binary(op.prec() + 1)?;
            let col = lhs.col;
            lhs = self.node(col, Kind::Binary(op, op_col, Box::new(lhs), Box::new(rhs)))?;
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Ast, ExprError> {
        let op = match self.peek().tok {
            Tok::Punct("!") => UnOp::Not,
            Tok::Punct("-") => UnOp::Neg,
            _ => return self.postfix(),
        };
        let col = self.bump().col;
        if op == UnOp::Neg {
            if let Tok::Int(n) = self.peek().tok {
                // The one literal that only exists negated.
                if n == 1 << 63 {
                    self.pos += 1;
                    return self.node(col, Kind::Int(i64::MIN));
                }
            }
        }
        self.enter()?;
        let operand = self.unary()?;
        self.depth -= 1;
        // Folding keeps `-4` a literal, so it prints and re-parses as itself.
        let kind = match (op, operand.kind) {
            (UnOp::Neg, Kind::Int(n)) if n >= 0 => Kind::Int(-n),
            (UnOp::Neg, Kind::Double(d)) if d.is_sign_positive() => Kind::Double(-d),
            (op, kind) => Kind::Unary(
                op,
                Box::new(Ast {
                    col: operand.col,
                    depth: operand.depth,
                    kind,
                }),
            ),
        };
        self.node(col, kind)
    }

    fn postfix(&mut self) -> Result<Ast, ExprError> {
        let mut target = self.primary()?;
        loop {
            let col = target.col;
            if self.eat(".") {
                let name_tok = self.bump();
                let Tok::Ident(name) = name_tok.tok else {
                    return Err(ExprError::new(
                        name_tok.col,
                        format!("expected a field name after `.`, found {}", name_tok.tok),
                    ));
                };
                let kind = if self.eat("(") {
                    let args = self.args(")")?;
                    Kind::Method(Box::new(target), name, name_tok.col, args)
                } else {
                    Kind::Select(Box::new(target), name, name_tok.col)
                };
                target = self.node(col, kind)?;
            } else if self.eat("[") {
                let key = self.expr()?;
                self.expect("]")?;
                target = self.node(col, Kind::Index(Box::new(target), Box::new(key)))?;
            } else {
                return Ok(target);
            }
        }
    }

    /// Comma-separated expressions up to `close` (already past the opener); a trailing
    /// comma is allowed, as in CEL.
    fn args(&mut self, close: &'static str) -> Result<Vec<Ast>, ExprError> {
        let mut args = Vec::new();
        while !self.eat(close) {
            args.push(self.expr()?);
            if !self.eat(",") {
                self.expect(close)?;
                break;
            }
        }
        Ok(args)
    }

    fn primary(&mut self) -> Result<Ast, ExprError> {
        let Token { tok, col, .. } = self.bump();
        let kind = match tok {
            Tok::Int(n) => Kind::Int(
                i64::try_from(n)
                    .map_err(|_| ExprError::new(col, "integer literal out of range"))?,
            ),
            Tok::Double(d) => Kind::Double(d),
            Tok::Str(s) => Kind::Str(s),
            Tok::True => Kind::Bool(true),
            Tok::False => Kind::Bool(false),
            Tok::Ident(name) if self.eat("(") => Kind::Call(name, self.args(")")?),
            Tok::Ident(name) => Kind::Ident(name),
            Tok::Punct("(") => {
                let inner = self.expr()?;
                self.expect(")")?;
                return Ok(inner);
            }
            Tok::Punct("[") => Kind::List(self.args("]")?),
            other => {
                return Err(ExprError::new(
                    col,
                    format!("expected an expression, found {other}"),
                ))
            }
        };
        self.node(col, kind)
    }
}
