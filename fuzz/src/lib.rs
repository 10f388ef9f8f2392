//! Fuzz targets for the filter, as plain functions of bytes (`fn(&[u8])`) that panic only
//! when a property fails. The same functions run in two drivers:
//! - `tests/bounded.rs`: proptest's random bytes, a fixed number of cases per target, on
//!   stable Rust, in `make test`; plus every saved input under `corpus/<target>/regressions`;
//! - `libfuzzer/`: cargo-fuzz (nightly, libFuzzer, coverage-guided) in `make fuzz`.
//!
//! docs/fuzzing.md says what each target proves and how to run them.

pub mod envoy;
pub mod gen;
pub mod host;
pub mod targets;

/// A fuzz target: panics when a property fails.
pub type Target = fn(&[u8]);

/// Every target by name: the names of `libfuzzer/fuzz_targets/*.rs` and `corpus/*`.
pub const TARGETS: &[(&str, Target)] = &[
    ("config", targets::config::run),
    ("expr", targets::expr::run),
    ("peer", targets::peer::run),
    ("stat_name", targets::stat_name::run),
    ("json_log", targets::json_log::run),
];
