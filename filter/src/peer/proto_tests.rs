//! Wire-level tests for `proto`, kept apart so the codec file stays short.
//! Inputs are built byte by byte from the protobuf encoding spec rather than
//! with our own encoder, so a shared misunderstanding cannot hide.

use super::proto::{decode_struct, encode_struct, ProtoValue, Struct, MAX_DEPTH};
use proptest::prelude::*;

fn varint(mut v: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

/// Length-delimited field: tag byte (field << 3 | 2), length, payload.
fn ld(field: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(field << 3) | 2];
    out.extend(varint(payload.len()));
    out.extend_from_slice(payload);
    out
}

fn str_value(s: &str) -> Vec<u8> {
    ld(3, s.as_bytes())
}

/// A Struct map entry as field 1 of the Struct, key first.
fn entry(key: &str, value: &[u8]) -> Vec<u8> {
    ld(1, &[ld(1, key.as_bytes()), ld(2, value)].concat())
}

/// Builds `levels` Structs nested under key "k" without recursion or
/// quadratic copying: lengths are computed inside out, headers joined after.
fn nested_structs(levels: usize) -> Vec<u8> {
    let mut headers = Vec::new();
    let mut size = 0;
    for _ in 1..levels {
        let value = [vec![0x2a], varint(size)].concat();
        size += value.len();
        let entry = [vec![0x0a, 0x01, b'k', 0x12], varint(size)].concat();
        size += entry.len();
        let field = [vec![0x0a], varint(size)].concat();
        size += field.len();
        headers.push([field, entry, value].concat());
    }
    headers.into_iter().rev().flatten().collect()
}

#[test]
fn decodes_every_value_kind() {
    let list = ld(6, &[ld(1, &str_value("a")), ld(1, &[0x20, 0x01])].concat());
    let bytes = [
        entry("null", &[0x08, 0x00]),
        entry("num", &[[0x11].as_slice(), &1.5f64.to_le_bytes()].concat()),
        entry("str", &str_value("héllo")),
        entry("bool", &[0x20, 0x01]),
        entry("obj", &ld(5, &entry("x", &str_value("y")))),
        entry("list", &list),
        entry("unset", &[]),
    ]
    .concat();
    let s = decode_struct(&bytes).unwrap();
    let expected = vec![
        ("null", ProtoValue::Null),
        ("num", ProtoValue::Number(1.5)),
        ("str", ProtoValue::Str("héllo")),
        ("bool", ProtoValue::Bool(true)),
        (
            "obj",
            ProtoValue::Struct(Struct {
                fields: vec![("x", ProtoValue::Str("y"))],
            }),
        ),
        (
            "list",
            ProtoValue::List(vec![ProtoValue::Str("a"), ProtoValue::Bool(true)]),
        ),
        ("unset", ProtoValue::Unset),
    ];
    assert_eq!(s.fields, expected);
}

#[test]
fn skips_unknown_fields_of_every_wire_type() {
    let unknown = [
        vec![0x78, 0x96, 0x01],               // field 15 varint 150
        [vec![0x79], vec![0xff; 8]].concat(), // field 15 fixed64
        vec![0x7d, 1, 2, 3, 4],               // field 15 fixed32
        ld(15, b"ignored"),                   // field 15 bytes
        vec![0x10, 0x01],                     // field 2 as varint: known number, wrong type
    ]
    .concat();
    let value = [unknown.clone(), str_value("v"), unknown.clone()].concat();
    let entry = ld(1, &[unknown.clone(), ld(1, b"k"), ld(2, &value)].concat());
    let bytes = [unknown.clone(), entry, unknown].concat();
    assert_eq!(
        decode_struct(&bytes).unwrap().fields,
        vec![("k", ProtoValue::Str("v"))]
    );
}

#[test]
fn accepts_fields_in_reverse_order() {
    let reversed_entry = ld(1, &[ld(2, &str_value("v")), ld(1, b"k")].concat());
    assert_eq!(
        decode_struct(&reversed_entry).unwrap().fields,
        vec![("k", ProtoValue::Str("v"))]
    );
}

#[test]
fn follows_protobuf_merge_rules() {
    // Within one Value the last oneof member wins; within one entry repeated
    // values merge; a repeated map key replaces the earlier entry.
    let value = [str_value("first"), vec![0x20, 0x00]].concat();
    let merged = ld(
        1,
        &[
            ld(1, b"m"),
            ld(2, &ld(5, &entry("a", &[0x20, 0x01]))),
            ld(2, &ld(5, &entry("b", &[0x08, 0x00]))),
        ]
        .concat(),
    );
    let bytes = [
        entry("k", &value),
        entry("d", &str_value("1")),
        entry("d", &str_value("2")),
        merged,
    ]
    .concat();
    let s = decode_struct(&bytes).unwrap();
    let inner = Struct {
        fields: vec![("a", ProtoValue::Bool(true)), ("b", ProtoValue::Null)],
    };
    assert_eq!(
        s.fields,
        vec![
            ("k", ProtoValue::Bool(false)),
            ("d", ProtoValue::Str("1")),
            ("d", ProtoValue::Str("2")),
            ("m", ProtoValue::Struct(inner))
        ]
    );
}

#[test]
fn rejects_malformed_input_with_a_reason() {
    let cases: [(&[u8], &str); 9] = [
        (&[0x0a], "truncated varint"),
        (&[0x0a, 0x05, 0x0a], "truncated length-delimited field"),
        (
            &[
                0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
            "truncated length-delimited field",
        ),
        (&[0x80; 11], "malformed varint"),
        (&[0x00], "invalid field number"),
        (&[0x0b], "unsupported wire type (group)"),
        (&[0x0e], "invalid wire type"),
        (&[0x09, 1, 2, 3], "truncated fixed64"),
        (
            &[0x0a, 0x04, 0x0a, 0x02, 0xc3, 0x28],
            "invalid UTF-8 in string",
        ),
    ];
    for (bytes, reason) in cases {
        assert_eq!(
            decode_struct(bytes).unwrap_err().0,
            reason,
            "input {bytes:02x?}"
        );
    }
}

#[test]
fn nesting_is_bounded() {
    assert!(decode_struct(&nested_structs(MAX_DEPTH)).is_ok());
    assert_eq!(
        decode_struct(&nested_structs(MAX_DEPTH + 1)).unwrap_err().0,
        "nesting too deep"
    );
    assert_eq!(
        decode_struct(&nested_structs(10_000)).unwrap_err().0,
        "nesting too deep"
    );

    let mut list = Vec::new();
    for _ in 0..2_000 {
        list = ld(1, &ld(6, &list));
    }
    let bytes = entry("l", &ld(6, &list));
    assert_eq!(decode_struct(&bytes).unwrap_err().0, "nesting too deep");
}

#[test]
fn encoding_is_deterministic_and_sorted() {
    let unsorted = Struct {
        fields: vec![
            ("b", ProtoValue::Str("2")),
            ("a", ProtoValue::Str("1")),
            ("b", ProtoValue::Str("3")),
            ("", ProtoValue::Unset),
        ],
    };
    let mut out = Vec::new();
    encode_struct(&unsorted, &mut out);
    // Keys sorted bytewise, the later duplicate wins, and an empty key or
    // unset value is still written, as C++ map entries always are.
    let expected = [
        ld(1, &[ld(1, b""), ld(2, &[])].concat()),
        entry("a", &str_value("1")),
        entry("b", &str_value("3")),
    ]
    .concat();
    assert_eq!(out, expected);
}

#[test]
fn every_value_kind_round_trips() {
    let long = "x".repeat(300);
    let nested = Struct {
        fields: vec![("z", ProtoValue::Number(-0.25)), ("a", ProtoValue::Null)],
    };
    let original = Struct {
        fields: vec![
            ("bool", ProtoValue::Bool(false)),
            (
                "list",
                ProtoValue::List(vec![
                    ProtoValue::Unset,
                    ProtoValue::Str(""),
                    ProtoValue::List(vec![ProtoValue::Bool(true)]),
                ]),
            ),
            ("long", ProtoValue::Str(&long)),
            ("obj", ProtoValue::Struct(nested.clone())),
        ],
    };
    let mut out = Vec::new();
    encode_struct(&original, &mut out);
    let decoded = decode_struct(&out).unwrap();
    let sorted_nested = Struct {
        fields: vec![("a", ProtoValue::Null), ("z", ProtoValue::Number(-0.25))],
    };
    let mut expected = original.clone();
    expected.fields[3].1 = ProtoValue::Struct(sorted_nested);
    assert_eq!(decoded, expected);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_struct(&bytes);
    }

    #[test]
    fn every_prefix_of_a_valid_struct_is_handled(cut in 0usize..200) {
        let first = entry("NAME", &str_value("a"));
        let bytes = [first.clone(), entry("LABELS", &ld(5, &entry("app", &str_value("b"))))].concat();
        let prefix = bytes.get(..cut.min(bytes.len())).unwrap();
        // Only cuts on a top-level field boundary leave a valid message.
        let on_boundary = [0, first.len(), bytes.len()].contains(&prefix.len());
        prop_assert_eq!(decode_struct(prefix).is_ok(), on_boundary);
    }
}

proptest! {
    /// Random bytes mostly fail at the first tag; corrupting a valid message
    /// reaches the nested paths too.
    #[test]
    fn corrupted_valid_struct_never_panics(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let labels = ld(5, &[entry("app", &str_value("reviews")), entry("n", &[0x11, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f])].concat());
        let list = ld(6, &[ld(1, &[0x08, 0x00]), ld(1, &ld(5, &entry("x", &[0x20, 0x01])))].concat());
        let mut bytes = [entry("NAME", &str_value("a")), entry("LABELS", &labels), entry("L", &list)].concat();
        for (at, byte) in edits {
            let len = bytes.len();
            bytes[at % len] = byte;
        }
        let _ = decode_struct(&bytes);
    }
}
