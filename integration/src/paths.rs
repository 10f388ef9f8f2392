//! Where the artifacts under test are, and free ports to run them on.

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The repository root (the workspace this crate belongs to).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The Envoy binary: `$ENVOY_BIN`, else `<workspace>/.venv/bin/envoy` (what `make setup`
/// installs). Panics if it is missing: a test against Envoy must fail, never skip.
pub fn envoy_bin() -> PathBuf {
    artifact("ENVOY_BIN", ".venv/bin/envoy", "make setup")
}

/// The filter: `$MESHSTATS_WASM`, else `<workspace>/dist/meshstats.wasm` (`make build`).
pub fn wasm_path() -> PathBuf {
    artifact("MESHSTATS_WASM", "dist/meshstats.wasm", "make build")
}

/// The CLI: `$MESHSTATS_BIN`, else `<workspace>/dist/meshstats` (`make build`).
pub fn meshstats_bin() -> PathBuf {
    artifact("MESHSTATS_BIN", "dist/meshstats", "make build")
}

fn artifact(var: &str, default: &str, make_target: &str) -> PathBuf {
    let root = workspace_root();
    let path = match std::env::var_os(var).filter(|v| !v.is_empty()) {
        // Relative to the workspace, not to cargo's per-package working directory.
        Some(v) => root.join(PathBuf::from(v)),
        None => root.join(default),
    };
    if !path.is_file() {
        panic!(
            "{} not found (from {}): run `make test` (or `{make_target}`) first, \
             or set {var} to an existing file",
            path.display(),
            if std::env::var_os(var).is_some() {
                format!("${var}")
            } else {
                "the default path".into()
            },
        );
    }
    path
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, close).
/// Another process can take it before it is used; collisions show up as Envoy failing to
/// bind, with the port in the error. Never returns the same port twice in one process, so
/// tests running in parallel threads cannot be handed each other's ports.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener
            .local_addr()
            .expect("local_addr of a bound socket")
            .port();
        let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if guard.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}
