//! Where the artifacts under test and their inputs are, and free ports to run them on.

use meshstats_testkit::artifact;
use std::collections::HashSet;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Mutex;

pub use meshstats_testkit::{envoy_bin, workspace_root};

/// The filter: `$MESHSTATS_WASM`, else `<workspace>/dist/meshstats.wasm` (`make build`).
pub fn wasm_path() -> PathBuf {
    artifact("MESHSTATS_WASM", "dist/meshstats.wasm", "make build")
}

/// The CLI: `$MESHSTATS_BIN`, else `<workspace>/dist/meshstats` (`make build`).
pub fn meshstats_bin() -> PathBuf {
    artifact("MESHSTATS_BIN", "dist/meshstats", "make build")
}

/// `envoyfilter/examples/<name>`, read: the configurations users start from.
pub fn example_config(name: &str) -> String {
    let path = workspace_root().join("envoyfilter/examples").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
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
