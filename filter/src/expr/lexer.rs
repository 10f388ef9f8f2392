//! Source text → tokens with their columns.
//!
//! Public as well as the parser's input, so that tools which rewrite expressions (the CLI's
//! Mixer importer) read them exactly as the filter does rather than with a lexer of their own.

use super::error::ExprError;
use std::fmt;
use std::ops::Range;

/// What a token is. Names, literals and operators as the language spells them.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A name: an attribute, a field, a function or a method.
    Ident(String),
    /// Unsigned: `-9223372036854775808` is a minus and 2^63, which only the parser can fold.
    Int(u64),
    Double(f64),
    /// A string literal's value, escapes decoded (its spelling is [`Token::span`]).
    Str(String),
    True,
    False,
    In,
    /// An operator or delimiter: `==`, `|`, `.`, `(`, …
    Punct(&'static str),
    /// After the last token; [`lex`] always ends with it.
    Eof,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Ident(name) => write!(f, "`{name}`"),
            Tok::Int(n) => write!(f, "`{n}`"),
            Tok::Double(d) => write!(f, "`{d}`"),
            Tok::Str(s) => write!(f, "{s:?}"),
            Tok::True => f.write_str("`true`"),
            Tok::False => f.write_str("`false`"),
            Tok::In => f.write_str("`in`"),
            Tok::Punct(p) => write!(f, "`{p}`"),
            Tok::Eof => f.write_str("end of input"),
        }
    }
}

/// A token and where it is in the source.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    /// Where it starts, 1-based in chars: the column error messages give.
    pub col: usize,
    /// Its length in chars (0 for [`Tok::Eof`]).
    pub len: usize,
}

impl Token {
    /// The chars the token spans, 0-based: a literal's spelling, quotes and escapes included,
    /// is `source.chars().skip(span.start).take(span.len())`.
    pub fn span(&self) -> Range<usize> {
        let start = self.col.saturating_sub(1);
        start..start + self.len
    }
}

/// Longest first, so `<=` is not read as `<` then `=`.
const PUNCTS: [&str; 23] = [
    "==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "?", ":", "+", "-", "*", "/", "%", "|", ".",
    "[", "]", "(", ")", ",",
];

/// Splits `source` into tokens, ending with [`Tok::Eof`]; the first character that starts
/// no token is an error at its column.
pub fn lex(source: &str) -> Result<Vec<Token>, ExprError> {
    let mut lexer = Lexer {
        chars: source.chars().collect(),
        pos: 0,
        tokens: Vec::new(),
    };
    lexer.run()?;
    Ok(lexer.tokens)
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
    tokens: Vec<Token>,
}

impl Lexer {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    fn col(&self) -> usize {
        self.pos + 1
    }

    /// Pushes a token that started at `col` and ends where the lexer is now.
    fn push(&mut self, tok: Tok, col: usize) {
        let len = self.col().saturating_sub(col);
        self.tokens.push(Token { tok, col, len });
    }

    fn run(&mut self) -> Result<(), ExprError> {
        while let Some(c) = self.peek(0) {
            let col = self.col();
            if c.is_whitespace() {
                self.pos += 1;
            } else if c.is_ascii_digit() {
                self.number()?;
            } else if c == '"' || c == '\'' {
                self.pos += 1;
                let s = self.string(c, false, col)?;
                self.push(Tok::Str(s), col);
            } else if (c == 'r' || c == 'R') && matches!(self.peek(1), Some('"' | '\'')) {
                let quote = self.peek(1).unwrap_or('"');
                self.pos += 2;
                let s = self.string(quote, true, col)?;
                self.push(Tok::Str(s), col);
            } else if c.is_ascii_alphabetic() || c == '_' {
                self.ident(col);
            } else {
                self.punct(c, col)?;
            }
        }
        let col = self.col();
        self.push(Tok::Eof, col);
        Ok(())
    }

    fn ident(&mut self, col: usize) {
        let mut name = String::new();
        while let Some(c) = self
            .peek(0)
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        {
            name.push(c);
            self.pos += 1;
        }
        let tok = match name.as_str() {
            "true" => Tok::True,
            "false" => Tok::False,
            "in" => Tok::In,
            _ => Tok::Ident(name),
        };
        self.push(tok, col);
    }

    fn punct(&mut self, c: char, col: usize) -> Result<(), ExprError> {
        let next = self.peek(1);
        for p in PUNCTS {
            let mut want = p.chars();
            if want.next() == Some(c) && want.next().is_none_or(|w| Some(w) == next) {
                self.pos += p.chars().count();
                self.push(Tok::Punct(p), col);
                return Ok(());
            }
        }
        let message = match c {
            '&' => "unexpected `&`; did you mean `&&`?".to_string(),
            '=' => "unexpected `=`; did you mean `==`?".to_string(),
            _ => format!("unexpected character `{c}`"),
        };
        Err(ExprError::new(col, message))
    }

    fn digits(&mut self, radix: u32, text: &mut String) {
        while let Some(c) = self.peek(0).filter(|c| c.is_digit(radix)) {
            text.push(c);
            self.pos += 1;
        }
    }

    fn number(&mut self) -> Result<(), ExprError> {
        let col = self.col();
        let mut text = String::new();
        if self.peek(0) == Some('0') && matches!(self.peek(1), Some('x' | 'X')) {
            self.pos += 2;
            self.digits(16, &mut text);
            let n = u64::from_str_radix(&text, 16)
                .map_err(|_| ExprError::new(col, "invalid hexadecimal literal"))?;
            self.push(Tok::Int(n), col);
            return Ok(());
        }
        self.digits(10, &mut text);
        let mut is_double = false;
        if self.peek(0) == Some('.') && self.peek(1).is_some_and(|c| c.is_ascii_digit()) {
            is_double = true;
            text.push('.');
            self.pos += 1;
            self.digits(10, &mut text);
        }
        if matches!(self.peek(0), Some('e' | 'E')) {
            let sign = matches!(self.peek(1), Some('+' | '-'));
            let digit_at = if sign { 2 } else { 1 };
            if self.peek(digit_at).is_some_and(|c| c.is_ascii_digit()) {
                is_double = true;
                text.push('e');
                if sign {
                    text.push(self.peek(1).unwrap_or('+'));
                }
                self.pos += digit_at;
                self.digits(10, &mut text);
            }
        }
        let tok = if is_double {
            Tok::Double(
                text.parse()
                    .map_err(|_| ExprError::new(col, "invalid number"))?,
            )
        } else {
            Tok::Int(
                text.parse()
                    .map_err(|_| ExprError::new(col, "integer literal out of range"))?,
            )
        };
        self.push(tok, col);
        Ok(())
    }

    /// Reads up to the closing `quote`; the opening one (and `r`) is already consumed.
    fn string(&mut self, quote: char, raw: bool, col: usize) -> Result<String, ExprError> {
        let mut out = String::new();
        loop {
            let Some(c) = self.peek(0) else {
                return Err(ExprError::new(col, "unterminated string"));
            };
            self.pos += 1;
            if c == quote {
                return Ok(out);
            }
            if c == '\\' && !raw {
                out.push(self.escape()?);
            } else {
                out.push(c);
            }
        }
    }

    fn escape(&mut self) -> Result<char, ExprError> {
        let col = self.pos; // the backslash, 1-based
        let Some(c) = self.peek(0) else {
            return Err(ExprError::new(col, "unterminated string"));
        };
        self.pos += 1;
        let simple = match c {
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            '0' => Some('\0'),
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'v' => Some('\u{b}'),
            '\\' | '"' | '\'' | '`' | '?' => Some(c),
            _ => None,
        };
        if let Some(s) = simple {
            return Ok(s);
        }
        let code = match c {
            'x' => self.hex_digits(2),
            'U' => self.hex_digits(8),
            'u' if self.peek(0) == Some('{') => {
                self.pos += 1;
                let mut text = String::new();
                self.digits(16, &mut text);
                if self.peek(0) != Some('}') || text.is_empty() || text.len() > 6 {
                    None
                } else {
                    self.pos += 1;
                    u32::from_str_radix(&text, 16).ok()
                }
            }
            'u' => self.hex_digits(4),
            _ => return Err(ExprError::new(col, format!("invalid escape `\\{c}`"))),
        };
        code.and_then(char::from_u32)
            .ok_or_else(|| ExprError::new(col, format!("invalid `\\{c}` escape")))
    }

    fn hex_digits(&mut self, n: usize) -> Option<u32> {
        let mut code = 0u32;
        for _ in 0..n {
            let digit = self.peek(0)?.to_digit(16)?;
            code = code * 16 + digit;
            self.pos += 1;
        }
        Some(code)
    }
}
