//! RFC 4648 base64, small enough that a crate would cost more than it saves.
//!
//! Encoding is the standard alphabet with padding, which is what Istio proxies
//! emit. Decoding is lenient in the ways real peers differ (padding optional,
//! URL-safe alphabet) and strict about everything else, so garbage is an
//! error rather than silently different metadata.

use super::DecodeError;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn symbol(sextet: u32) -> char {
    // Masking keeps the lookup total; the fallback is never taken.
    ALPHABET
        .get((sextet & 0x3f) as usize)
        .map_or('A', |&b| char::from(b))
}

pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let mut group = [0u8; 3];
        for (dst, src) in group.iter_mut().zip(chunk) {
            *dst = *src;
        }
        let [a, b, c] = group;
        let n = (u32::from(a) << 16) | (u32::from(b) << 8) | u32::from(c);
        out.push(symbol(n >> 18));
        out.push(symbol(n >> 12));
        out.push(if chunk.len() > 1 { symbol(n >> 6) } else { '=' });
        out.push(if chunk.len() > 2 { symbol(n) } else { '=' });
    }
    out
}

fn value_of(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' | b'-' => 62,
        b'/' | b'_' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

fn invalid_at(pos: usize) -> DecodeError {
    DecodeError(format!("invalid base64 at byte {pos}"))
}

pub fn decode(text: &str) -> Result<Vec<u8>, DecodeError> {
    let input = text.as_bytes();
    let data_len = input.iter().rposition(|&c| c != b'=').map_or(0, |p| p + 1);
    let padding = input.len() - data_len;
    // Padding, when present, must complete the final quantum exactly.
    if padding > 2 || (padding > 0 && input.len() % 4 != 0) {
        return Err(invalid_at(data_len));
    }
    let mut out = Vec::with_capacity(data_len / 4 * 3 + 2);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for (pos, &c) in input.iter().enumerate().take(data_len) {
        let v = value_of(c).ok_or_else(|| invalid_at(pos))?;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // A lone final sextet cannot carry a whole byte.
    if data_len % 4 == 1 {
        return Err(DecodeError("truncated base64".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RFC4648: [(&str, &str); 7] = [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ];

    #[test]
    fn rfc4648_vectors() {
        for (plain, coded) in RFC4648 {
            assert_eq!(encode(plain.as_bytes()), coded);
            assert_eq!(decode(coded).unwrap(), plain.as_bytes());
        }
    }

    #[test]
    fn padding_is_optional_when_decoding() {
        for (plain, coded) in RFC4648 {
            assert_eq!(
                decode(coded.trim_end_matches('=')).unwrap(),
                plain.as_bytes()
            );
        }
    }

    #[test]
    fn url_safe_alphabet_is_accepted() {
        let bytes = [0xfb, 0xff, 0xbf, 0xfe];
        assert_eq!(encode(&bytes), "+/+//g==");
        assert_eq!(decode("-_-__g").unwrap(), bytes);
        assert_eq!(decode("-_-__g==").unwrap(), bytes);
    }

    #[test]
    fn invalid_input_is_rejected() {
        assert_eq!(
            decode("Zm9v!mFy").unwrap_err().to_string(),
            "invalid base64 at byte 4"
        );
        assert_eq!(
            decode("Zm=v").unwrap_err().to_string(),
            "invalid base64 at byte 2"
        );
        assert_eq!(
            decode("Zm9 v").unwrap_err().to_string(),
            "invalid base64 at byte 3"
        );
        assert!(decode("Zg===").is_err(), "three padding characters");
        assert!(
            decode("Zg=").is_err(),
            "padding that does not complete a quantum"
        );
        assert_eq!(decode("Zm9vY").unwrap_err().to_string(), "truncated base64");
        assert!(decode("é").is_err());
        assert!(decode("=").is_err());
    }

    #[test]
    fn all_byte_values_round_trip() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(&encode(&bytes)).unwrap(), bytes);
    }

    proptest! {
        #[test]
        fn round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let coded = encode(&bytes);
            prop_assert_eq!(coded.len() % 4, 0);
            prop_assert_eq!(decode(&coded).unwrap(), bytes);
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,64}") {
            let _ = decode(&text);
        }

        #[test]
        fn arbitrary_alphabet_text_never_panics(text in "[A-Za-z0-9+/_=-]{0,64}") {
            let _ = decode(&text);
        }
    }
}
