//! Properties: no input panics; printing a tree and parsing it back keeps its meaning.

use super::ast::{Ast, BinOp, Kind, UnOp, MAX_DEPTH};
use super::parser::tests::{parse_str, show};
use super::tests::{setup, TestResolver};
use super::{check, compile, Attr, EvalError, Type};
use proptest::prelude::*;

/// A typed random tree, so that most generated programs compile and evaluation (not just the
/// checker) is exercised. xorshift keeps the generator in one small function per type.
struct Gen(u64);

#[derive(Clone, Copy)]
enum T {
    Int,
    Bool,
    Str,
}

fn ast(kind: Kind) -> Ast {
    Ast {
        col: 1,
        depth: 0,
        kind,
    }
}

fn b(kind: Kind) -> Box<Ast> {
    Box::new(ast(kind))
}

fn ident(path: &str) -> Kind {
    let mut parts = path.split('.');
    let mut kind = Kind::Ident(parts.next().unwrap().into());
    for part in parts {
        kind = Kind::Select(Box::new(ast(kind)), part.into(), 1);
    }
    kind
}

fn bin(op: BinOp, l: Kind, r: Kind) -> Kind {
    Kind::Binary(op, 1, b(l), b(r))
}

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn gen(&mut self, t: T, depth: u32) -> Kind {
        let leaf = depth == 0 || self.pick(4) == 0;
        match t {
            T::Int if leaf => match self.pick(5) {
                0 => ident("response.code"),
                1 => ident("request.size"),
                2 => Kind::Int(i64::MAX - self.pick(2) as i64),
                _ => Kind::Int(self.pick(20) as i64 - 5),
            },
            T::Bool if leaf => match self.pick(3) {
                0 => ident("flag"),
                1 => Kind::Call("has".into(), vec![ast(ident("request.host"))]),
                _ => Kind::Bool(self.pick(2) == 0),
            },
            T::Str if leaf => match self.pick(4) {
                0 => ident("request.host"),
                1 => Kind::Index(b(ident("request.headers")), b(Kind::Str("x-user".into()))),
                _ => {
                    let words = ["", "a", "GET", "kube-probe", "é\"'\\\n", "\u{1}\u{7f}"];
                    Kind::Str(words[self.pick(words.len() as u64) as usize].into())
                }
            },
            T::Int => {
                let d = depth - 1;
                match self.pick(7) {
                    0 => Kind::Unary(UnOp::Neg, b(self.gen(T::Int, d))),
                    1 => Kind::Cond(
                        1,
                        b(self.gen(T::Bool, d)),
                        b(self.gen(T::Int, d)),
                        b(self.gen(T::Int, d)),
                    ),
                    2 => Kind::Call("size".into(), vec![ast(self.gen(T::Str, d))]),
                    3 => Kind::Method(b(self.gen(T::Str, d)), "size".into(), 1, vec![]),
                    _ => {
                        let ops = [
                            BinOp::Add,
                            BinOp::Sub,
                            BinOp::Mul,
                            BinOp::Div,
                            BinOp::Rem,
                            BinOp::Default,
                        ];
                        let op = ops[self.pick(ops.len() as u64) as usize];
                        bin(op, self.gen(T::Int, d), self.gen(T::Int, d))
                    }
                }
            }
            T::Bool => {
                let d = depth - 1;
                match self.pick(7) {
                    0 => Kind::Unary(UnOp::Not, b(self.gen(T::Bool, d))),
                    1 => bin(
                        if self.pick(2) == 0 {
                            BinOp::And
                        } else {
                            BinOp::Or
                        },
                        self.gen(T::Bool, d),
                        self.gen(T::Bool, d),
                    ),
                    2 => {
                        let ops = [
                            BinOp::Eq,
                            BinOp::Ne,
                            BinOp::Lt,
                            BinOp::Le,
                            BinOp::Gt,
                            BinOp::Ge,
                        ];
                        let op = ops[self.pick(ops.len() as u64) as usize];
                        bin(op, self.gen(T::Int, d), self.gen(T::Int, d))
                    }
                    3 => bin(BinOp::Eq, self.gen(T::Str, d), self.gen(T::Str, d)),
                    4 => {
                        let names = ["startsWith", "endsWith", "contains"];
                        let name = names[self.pick(3) as usize];
                        Kind::Method(
                            b(self.gen(T::Str, d)),
                            name.into(),
                            1,
                            vec![ast(self.gen(T::Str, d))],
                        )
                    }
                    5 => Kind::Call(
                        "match".into(),
                        vec![ast(self.gen(T::Str, d)), ast(Kind::Str("a*".into()))],
                    ),
                    _ => bin(
                        BinOp::In,
                        self.gen(T::Str, d),
                        Kind::List(vec![ast(self.gen(T::Str, d)), ast(Kind::Str("GET".into()))]),
                    ),
                }
            }
            T::Str => {
                let d = depth - 1;
                match self.pick(5) {
                    0 => bin(BinOp::Add, self.gen(T::Str, d), self.gen(T::Str, d)),
                    1 => bin(BinOp::Default, self.gen(T::Str, d), self.gen(T::Str, d)),
                    2 => Kind::Cond(
                        1,
                        b(self.gen(T::Bool, d)),
                        b(self.gen(T::Str, d)),
                        b(self.gen(T::Str, d)),
                    ),
                    3 => Kind::Call("toLower".into(), vec![ast(self.gen(T::Str, d))]),
                    _ => Kind::Call("string".into(), vec![ast(self.gen(T::Int, d))]),
                }
            }
        }
    }
}

fn outcome(result: Result<super::Value<'_>, EvalError>) -> Result<String, EvalError> {
    result.map(|v| {
        let mut out = String::new();
        v.write_to(&mut out);
        format!("{}:{out}", v.type_of())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(src in any::<String>()) {
        let _ = compile(&src, None, &mut TestResolver::default());
    }

    #[test]
    fn expression_like_text_never_panics(src in "[a-z .'\"\\[\\]()!?:|&=<>+*/%,0-9xeu{}\\\\-]{0,60}") {
        let _ = compile(&src, Some(Type::Int), &mut TestResolver::default());
        let _ = compile(&src, Some(Type::String), &mut TestResolver::default());
    }

    #[test]
    fn printed_trees_parse_back_to_the_same_meaning(seed in 1u64.., t in 0u8..3, present in any::<bool>()) {
        let t = [T::Int, T::Bool, T::Str][t as usize];
        let tree = ast(Gen(seed).gen(t, 4));
        let src = show(&tree, true);
        // Printing is a fixed point after one parse (which folds `-0` into `0`).
        let printed = show(&parse_str(&src).unwrap(), true);
        prop_assert_eq!(show(&parse_str(&printed).unwrap(), true), printed);
        // And it means the same: compile the generated tree directly and the text, then
        // evaluate both over the same slots.
        let attrs: Vec<(&str, Attr)> = if present {
            vec![
                ("response.code", Attr::Int(200)),
                ("request.size", Attr::Int(-3)),
                ("flag", Attr::Bool(true)),
                ("request.host", Attr::Str("Kube-Probe.example".into())),
                ("request.headers['x-user']", Attr::Str("a".into())),
            ]
        } else {
            vec![]
        };
        let (from_text, slots) = setup(&src, None, &attrs);
        let mut resolver = TestResolver::default();
        let direct = check::compile(&tree, None, &mut resolver).unwrap();
        let direct_slots: Vec<Option<Attr>> = resolver
            .names
            .iter()
            .map(|n| attrs.iter().find(|(a, _)| a == n).map(|(_, v)| v.clone()))
            .collect();
        let direct = super::Program { root: direct.0, ty: direct.1, slots: direct.2 };
        prop_assert_eq!(from_text.result_type(), direct.result_type());
        prop_assert_eq!(outcome(from_text.eval(&slots)), outcome(direct.eval(&direct_slots)), "{}", src);
    }

    #[test]
    fn deep_nesting_fails_cleanly(n in (MAX_DEPTH + 1)..3000, shape in 0usize..6) {
        let (open, close) = [("(", ")"), ("!", ""), ("-", ""), ("f(", ")"), ("a[", "]"), ("[", "]")][shape];
        let src = format!("{}1{}", open.repeat(n), close.repeat(n));
        let err = compile(&src, None, &mut TestResolver::default()).unwrap_err();
        prop_assert!(err.message.contains("nested too deeply"), "{}", err);
    }
}
