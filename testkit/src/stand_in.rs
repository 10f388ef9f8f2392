//! A stand-in for the filter where only the Envoy configuration around it is under test.
//!
//! `envoy --mode validate` loads the Wasm module and starts the plugin, so a nonexistent or
//! empty file fails validation. The real filter is exercised by the integration tests.

use std::path::{Path, PathBuf};

/// The smallest module Envoy accepts as proxy-wasm: the ABI version marker, memory and the
/// callbacks Envoy calls while loading and configuring a plugin, each succeeding.
const STAND_IN_FILTER: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_delete") (param i32)))"#;

/// Writes the stand-in module to `dir/stand-in.wasm` and returns its path.
pub fn stand_in_filter(dir: &Path) -> PathBuf {
    let path = dir.join("stand-in.wasm");
    let wasm = wat::parse_str(STAND_IN_FILTER).expect("the stand-in module is valid WAT");
    std::fs::write(&path, wasm).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path
}
