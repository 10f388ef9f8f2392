//! Wire codec for `google.protobuf.Struct`, the only protobuf the metadata
//! exchange needs, so it is written by hand instead of pulling in a protobuf
//! runtime.
//!
//! Decoding borrows strings from the input: a peer header is decoded once per
//! peer and then copied into a [`super::PeerNode`], so the tree is transient.
//! It follows protobuf parse semantics where peers could notice a difference:
//! unknown fields are skipped, the last value of a oneof wins, repeated
//! occurrences of a message field merge, and a repeated map key replaces.

use super::DecodeError;

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// C++ protobuf stops at 100 nested messages, and each Struct level costs it
/// three (Struct, map entry, Value); matching that keeps us from rejecting
/// anything an Istio proxy accepts while bounding our own recursion.
pub const MAX_DEPTH: usize = 32;

/// A `google.protobuf.Value`: what a Struct field (or list item) holds.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum ProtoValue<'a> {
    /// A `Value` with no kind set; protobuf allows it and it must round-trip.
    #[default]
    Unset,
    Null,
    Number(f64),
    Str(&'a str),
    Bool(bool),
    Struct(Struct<'a>),
    List(Vec<ProtoValue<'a>>),
}

/// Entries in wire order; a later duplicate key overrides an earlier one.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Struct<'a> {
    pub fields: Vec<(&'a str, ProtoValue<'a>)>,
}

fn err(reason: &str) -> DecodeError {
    DecodeError(reason.to_owned())
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for (i, &byte) in self.buf.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.buf = self.buf.get(i + 1..).unwrap_or_default();
                return Ok(value);
            }
        }
        Err(err(if self.buf.len() >= 10 {
            "malformed varint"
        } else {
            "truncated varint"
        }))
    }

    fn tag(&mut self) -> Result<(u64, u8), DecodeError> {
        let key = self.varint()?;
        let field = key >> 3;
        if field == 0 || field > (1 << 29) - 1 {
            return Err(err("invalid field number"));
        }
        Ok((field, (key & 7) as u8))
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        let (head, rest) = self.buf.split_at_checked(n).ok_or_else(|| err(what))?;
        self.buf = rest;
        Ok(head)
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| err("truncated length-delimited field"))?;
        self.take(len, "truncated length-delimited field")
    }

    fn string(&mut self) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| err("invalid UTF-8 in string"))
    }

    fn fixed64(&mut self) -> Result<u64, DecodeError> {
        let raw = self.take(8, "truncated fixed64")?;
        let arr: [u8; 8] = raw.try_into().map_err(|_| err("truncated fixed64"))?;
        Ok(u64::from_le_bytes(arr))
    }

    fn skip(&mut self, wire: u8) -> Result<(), DecodeError> {
        match wire {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8, "truncated fixed64").map(drop),
            LEN => self.bytes().map(drop),
            FIXED32 => self.take(4, "truncated fixed32").map(drop),
            3 | 4 => Err(err("unsupported wire type (group)")),
            _ => Err(err("invalid wire type")),
        }
    }

    fn next_field(&mut self) -> Option<Result<(u64, u8), DecodeError>> {
        (!self.buf.is_empty()).then(|| self.tag())
    }
}

fn deeper(depth: usize) -> Result<usize, DecodeError> {
    let next = depth + 1;
    if next > MAX_DEPTH {
        return Err(err("nesting too deep"));
    }
    Ok(next)
}

/// Decodes a top-level Struct, e.g. a peer's node metadata.
pub fn decode_struct(bytes: &[u8]) -> Result<Struct<'_>, DecodeError> {
    let mut out = Struct::default();
    merge_struct(&mut out, bytes, 1)?;
    Ok(out)
}

fn merge_struct<'a>(
    out: &mut Struct<'a>,
    bytes: &'a [u8],
    depth: usize,
) -> Result<(), DecodeError> {
    let mut r = Reader { buf: bytes };
    while let Some(field) = r.next_field() {
        match field? {
            (1, LEN) => out.fields.push(decode_entry(r.bytes()?, depth)?),
            (_, wire) => r.skip(wire)?,
        }
    }
    Ok(())
}

fn decode_entry(bytes: &[u8], depth: usize) -> Result<(&str, ProtoValue<'_>), DecodeError> {
    let mut r = Reader { buf: bytes };
    let (mut key, mut value) = ("", ProtoValue::Unset);
    while let Some(field) = r.next_field() {
        match field? {
            (1, LEN) => key = r.string()?,
            (2, LEN) => merge_value(&mut value, r.bytes()?, depth)?,
            (_, wire) => r.skip(wire)?,
        }
    }
    Ok((key, value))
}

fn merge_value<'a>(
    out: &mut ProtoValue<'a>,
    bytes: &'a [u8],
    depth: usize,
) -> Result<(), DecodeError> {
    let mut r = Reader { buf: bytes };
    while let Some(field) = r.next_field() {
        match field? {
            (1, VARINT) => {
                r.varint()?;
                *out = ProtoValue::Null;
            }
            (2, FIXED64) => *out = ProtoValue::Number(f64::from_bits(r.fixed64()?)),
            (3, LEN) => *out = ProtoValue::Str(r.string()?),
            (4, VARINT) => *out = ProtoValue::Bool(r.varint()? != 0),
            (5, LEN) => {
                let inner = r.bytes()?;
                if !matches!(out, ProtoValue::Struct(_)) {
                    *out = ProtoValue::Struct(Struct::default());
                }
                if let ProtoValue::Struct(s) = out {
                    merge_struct(s, inner, deeper(depth)?)?;
                }
            }
            (6, LEN) => {
                let inner = r.bytes()?;
                if !matches!(out, ProtoValue::List(_)) {
                    *out = ProtoValue::List(Vec::new());
                }
                if let ProtoValue::List(items) = out {
                    merge_list(items, inner, deeper(depth)?)?;
                }
            }
            (_, wire) => r.skip(wire)?,
        }
    }
    Ok(())
}

fn merge_list<'a>(
    out: &mut Vec<ProtoValue<'a>>,
    bytes: &'a [u8],
    depth: usize,
) -> Result<(), DecodeError> {
    let mut r = Reader { buf: bytes };
    while let Some(field) = r.next_field() {
        match field? {
            (1, LEN) => {
                let mut item = ProtoValue::Unset;
                merge_value(&mut item, r.bytes()?, depth)?;
                out.push(item);
            }
            (_, wire) => r.skip(wire)?,
        }
    }
    Ok(())
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_tag(out: &mut Vec<u8>, field: u64, wire: u8) {
    put_varint(out, (field << 3) | u64::from(wire));
}

fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_tag(out, field, LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Serializes like C++ protobuf's deterministic mode (map entries sorted
/// bytewise by key, entry key and value always written) so a peer sees the
/// same bytes an Istio proxy would send.
pub fn encode_struct(s: &Struct<'_>, out: &mut Vec<u8>) {
    let mut entries: Vec<&(&str, ProtoValue<'_>)> = s.fields.iter().rev().collect();
    // Stable sort after reversing puts the winning (last) duplicate first.
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries.dedup_by(|later, first| later.0 == first.0);
    let mut entry = Vec::new();
    let mut value = Vec::new();
    for (key, v) in entries {
        entry.clear();
        value.clear();
        put_bytes(&mut entry, 1, key.as_bytes());
        encode_value(v, &mut value);
        put_bytes(&mut entry, 2, &value);
        put_bytes(out, 1, &entry);
    }
}

fn encode_value(v: &ProtoValue<'_>, out: &mut Vec<u8>) {
    match v {
        ProtoValue::Unset => {}
        ProtoValue::Null => {
            put_tag(out, 1, VARINT);
            put_varint(out, 0);
        }
        ProtoValue::Number(n) => {
            put_tag(out, 2, FIXED64);
            out.extend_from_slice(&n.to_bits().to_le_bytes());
        }
        ProtoValue::Str(s) => put_bytes(out, 3, s.as_bytes()),
        ProtoValue::Bool(b) => {
            put_tag(out, 4, VARINT);
            put_varint(out, u64::from(*b));
        }
        ProtoValue::Struct(s) => {
            let mut inner = Vec::new();
            encode_struct(s, &mut inner);
            put_bytes(out, 5, &inner);
        }
        ProtoValue::List(items) => {
            let mut inner = Vec::new();
            let mut item = Vec::new();
            for v in items {
                item.clear();
                encode_value(v, &mut item);
                put_bytes(&mut inner, 1, &item);
            }
            put_bytes(out, 6, &inner);
        }
    }
}

/// A `google.protobuf.Any`: what the TCP exchange frame carries (its type URL and the
/// serialized message).
pub fn encode_any(type_url: &str, value: &[u8], out: &mut Vec<u8>) {
    put_bytes(out, 1, type_url.as_bytes());
    put_bytes(out, 2, value);
}

/// The type URL and value of a serialized `Any`, with protobuf's last-occurrence-wins rule.
pub fn decode_any(bytes: &[u8]) -> Result<(&str, &[u8]), DecodeError> {
    let mut r = Reader { buf: bytes };
    let (mut type_url, mut value) = ("", &[][..]);
    while let Some(field) = r.next_field() {
        match field? {
            (1, LEN) => type_url = r.string()?,
            (2, LEN) => value = r.bytes()?,
            (_, wire) => r.skip(wire)?,
        }
    }
    Ok((type_url, value))
}
