//! Values as label and log strings (`Value::write_to`), without allocating.

use super::time::{write_duration, write_timestamp};
use super::value::Value;
use std::fmt::{self, Write};

impl Value<'_> {
    /// Appends the value as a label or log string:
    /// - strings as they are; ints in decimal; bools `true`/`false`;
    /// - doubles as Go's `%g` (what CEL's `string(double)` prints): shortest digits that read
    ///   back to the same double, exponent form below 1e-4 and from 1e6 on: `1.5`, `2`,
    ///   `100000`, `1e+06`, `1e-05`, `NaN`, `+Inf`;
    /// - durations as Go's `time.Duration`: `1.5s`, `2.109624ms`, `1m30s`, `1h0m0s`, `0s`;
    /// - timestamps as RFC 3339 in UTC with the fewest fraction digits:
    ///   `2018-11-14T01:46:26.528539Z`;
    /// - maps as `k=v` pairs sorted by key and joined by `,`, so equal maps give equal labels
    ///   whatever order the caller filled them in.
    pub fn write_to(&self, out: &mut String) {
        match self {
            Value::Str(s) => out.push_str(s),
            Value::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Value::Double(d) => write_double(*d, out),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Duration(ns) => write_duration(*ns, out),
            Value::Timestamp(ns) => write_timestamp(*ns, out),
            Value::Map(entries) => write_map(entries, out),
        }
    }
}

/// Sorted by (key, value) by repeated selection: quadratic, but maps here are a handful of
/// labels and this needs no scratch space.
fn write_map(entries: &[(String, String)], out: &mut String) {
    let mut last: Option<&(String, String)> = None;
    loop {
        let next = entries.iter().filter(|e| last.is_none_or(|l| *e > l)).min();
        let Some(entry) = next else { return };
        if last.is_some() {
            out.push(',');
        }
        out.push_str(&entry.0);
        out.push('=');
        out.push_str(&entry.1);
        last = Some(entry);
    }
}

/// A fixed buffer so Rust's shortest-digits formatting can be reshaped without allocating.
struct Buf {
    bytes: [u8; 48],
    len: usize,
}

impl Write for Buf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let dst = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Go's `%g` (`strconv.FormatFloat(d, 'g', -1, 64)`): the shortest digits, in exponent form
/// when the exponent is below -4 or at least 6.
fn write_double(d: f64, out: &mut String) {
    if d.is_nan() {
        out.push_str("NaN");
        return;
    }
    if d.is_infinite() {
        out.push_str(if d > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    let mut buf = Buf {
        bytes: [0; 48],
        len: 0,
    };
    // Rust's `{:e}` is the shortest round-tripping form, e.g. `-1.2345e-7`.
    if write!(buf, "{:e}", d.abs()).is_err() {
        let _ = write!(out, "{d}");
        return;
    }
    let sci = std::str::from_utf8(buf.bytes.get(..buf.len).unwrap_or(&[])).unwrap_or("0e0");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits_buf = [0u8; 24];
    let mut nd = 0;
    for b in mantissa.bytes().filter(u8::is_ascii_digit) {
        if let Some(slot) = digits_buf.get_mut(nd) {
            *slot = b;
            nd += 1;
        }
    }
    let digits = std::str::from_utf8(digits_buf.get(..nd).unwrap_or(&[])).unwrap_or("0");
    if d.is_sign_negative() {
        out.push('-');
    }
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(digits.len().min(1));
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let sign = if exp < 0 { '-' } else { '+' };
        let _ = write!(out, "e{sign}{:02}", exp.unsigned_abs());
        return;
    }
    // Digits before the point; `exp` is in -4..6 here.
    let point = exp + 1;
    if point <= 0 {
        out.push_str("0.");
        for _ in point..0 {
            out.push('0');
        }
        out.push_str(digits);
        return;
    }
    let point = point.unsigned_abs() as usize;
    match (digits.get(..point), digits.get(point..)) {
        (Some(int), Some(frac)) if !frac.is_empty() => {
            out.push_str(int);
            out.push('.');
            out.push_str(frac);
        }
        _ => {
            out.push_str(digits);
            for _ in digits.len()..point {
                out.push('0');
            }
        }
    }
}
