//! Durations and timestamps: Go's duration syntax and RFC 3339, both ways, in nanoseconds.

use std::fmt::Write;

const NS_PER_SEC: i64 = 1_000_000_000;
const SECS_PER_DAY: i64 = 86_400;

/// Go's `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?unit)+` or `0`, units
/// `ns us µs μs ms s m h`.
pub(crate) fn parse_duration(text: &str) -> Result<i64, String> {
    let invalid = |why: &str| format!("invalid duration {text:?}: {why}");
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, text.get(1..).unwrap_or("")),
        Some(b'+') => (false, text.get(1..).unwrap_or("")),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid("empty"));
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(f) => f.split_at(f.find(|c: char| !c.is_ascii_digit()).unwrap_or(f.len())),
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid("expected a number"));
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(invalid("missing unit")),
            other => return Err(invalid(&format!("unknown unit {other:?}"))),
        };
        let too_big = || invalid("out of range");
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| too_big())?
        };
        let mut frac_ns: u128 = 0;
        let mut divisor: u128 = 1;
        // Beyond 20 digits nothing changes at nanosecond precision.
        for d in frac_part.bytes().take(20) {
            frac_ns = frac_ns * 10 + u128::from(d - b'0');
            divisor *= 10;
        }
        let part = int
            .checked_mul(scale)
            .and_then(|ns| ns.checked_add(frac_ns * scale / divisor))
            .ok_or_else(too_big)?;
        total = total.checked_add(part).ok_or_else(too_big)?;
        if total > 1 << 63 {
            return Err(too_big());
        }
        rest = after;
    }
    let signed = if negative {
        0i128 - total as i128
    } else {
        total as i128
    };
    i64::try_from(signed).map_err(|_| invalid("out of range"))
}

/// RFC 3339: `2018-11-14T01:46:26.528539Z`, `2018-11-14T02:46:26+01:00`.
pub(crate) fn parse_timestamp(text: &str) -> Result<i64, String> {
    let invalid =
        || format!("invalid timestamp {text:?}: expected RFC 3339 like \"2018-11-14T01:46:26Z\"");
    let b = text.as_bytes();
    let num = |at: usize, len: usize| -> Result<i64, String> {
        let digits = b.get(at..at + len).ok_or_else(invalid)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(invalid());
        }
        Ok(digits.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let sep = |at: usize, want: &[u8]| b.get(at).is_some_and(|c| want.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return Err(invalid());
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(invalid());
    }
    let mut at = 19;
    let mut nanos = 0i64;
    if sep(at, b".") {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            if at - start < 9 {
                nanos = nanos * 10 + i64::from(b.get(at).map_or(0, |d| d - b'0'));
            }
            at += 1;
        }
        if at == start {
            return Err(invalid());
        }
        for _ in (at - start)..9 {
            nanos *= 10;
        }
    }
    let offset_secs = match b.get(at) {
        Some(b'Z' | b'z') if at + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if at + 6 == b.len() && sep(at + 3, b":") => {
            let secs = num(at + 1, 2)? * 3600 + num(at + 4, 2)? * 60;
            if *sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return Err(invalid()),
    };
    let secs =
        days_from_civil(year, month, day) * SECS_PER_DAY + hour * 3600 + minute * 60 + second
            - offset_secs;
    secs.checked_mul(NS_PER_SEC)
        .and_then(|ns| ns.checked_add(nanos))
        .ok_or_else(|| format!("timestamp {text:?} is out of range"))
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Appends `.ddd` with trailing zeros dropped, or nothing for a zero fraction.
fn write_frac(out: &mut String, frac: u64, digits: usize) {
    if frac == 0 {
        return;
    }
    let mut frac = frac;
    let mut width = digits;
    while frac % 10 == 0 {
        frac /= 10;
        width -= 1;
    }
    let _ = write!(out, ".{frac:0width$}");
}

/// Go's `time.Duration.String`.
pub(crate) fn write_duration(ns: i64, out: &mut String) {
    if ns < 0 {
        out.push('-');
    }
    let u = ns.unsigned_abs();
    if u == 0 {
        out.push_str("0s");
        return;
    }
    if u < 1_000_000_000 {
        let (prec, unit) = match u {
            0..1_000 => (0, "ns"),
            1_000..1_000_000 => (3, "µs"),
            _ => (6, "ms"),
        };
        let scale = 10u64.pow(prec);
        let _ = write!(out, "{}", u / scale);
        write_frac(out, u % scale, prec as usize);
        out.push_str(unit);
        return;
    }
    let secs = u / 1_000_000_000;
    let (hours, minutes, seconds) = (secs / 3600, secs / 60 % 60, secs % 60);
    if hours > 0 {
        let _ = write!(out, "{hours}h{minutes}m");
    } else if minutes > 0 {
        let _ = write!(out, "{minutes}m");
    }
    let _ = write!(out, "{seconds}");
    write_frac(out, u % 1_000_000_000, 9);
    out.push('s');
}

/// RFC 3339 in UTC with the fewest fraction digits.
pub(crate) fn write_timestamp(ns: i64, out: &mut String) {
    let secs = ns.div_euclid(NS_PER_SEC);
    let nanos = ns.rem_euclid(NS_PER_SEC).unsigned_abs();
    let (year, month, day) = civil_from_days(secs.div_euclid(SECS_PER_DAY));
    let of_day = secs.rem_euclid(SECS_PER_DAY);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    );
    write_frac(out, nanos, 9);
    out.push('Z');
}
