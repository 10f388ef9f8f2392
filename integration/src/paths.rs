//! Where the artifacts under test and their inputs are, and free ports to run them on.

use meshstats_cli::Build;
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

/// The native build: `$MESHSTATS_NATIVE`, else `<workspace>/dist/libmeshstats.so`
/// (`make build`).
pub fn native_module_path() -> PathBuf {
    artifact("MESHSTATS_NATIVE", "dist/libmeshstats.so", "make build")
}

/// The directory of [`native_module_path`]: what `ENVOY_DYNAMIC_MODULES_SEARCH_PATH` names.
pub fn native_module_dir() -> PathBuf {
    let path = native_module_path();
    path.parent().map(PathBuf::from).unwrap_or(path)
}

/// The build every harness sidecar runs: `$MESHSTATS_BUILD`, `wasm` (the default) or
/// `native`, read in this one place so that one variable switches the whole suite (`make
/// integration` runs it once per build). Any other value panics: a typo must not quietly
/// test the default build.
pub fn build() -> Build {
    match std::env::var("MESHSTATS_BUILD").ok().as_deref() {
        None | Some("") | Some("wasm") => Build::Wasm,
        Some("native") => Build::Native,
        Some(other) => panic!("MESHSTATS_BUILD={other:?}: expected `wasm` or `native`"),
    }
}

/// For a test about one build only: true under `only`; under the other build prints why the
/// test does not apply (in the test's output, `--nocapture` shows it) and returns false, so
/// the test returns early.
pub fn runs_under(only: Build, reason: &str) -> bool {
    let current = build();
    if current != only {
        println!(
            "skipped under MESHSTATS_BUILD={}: {reason} ({} build only)",
            current.as_str(),
            only.as_str()
        );
    }
    current == only
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

/// An empty directory of this process for test `name`'s files (under
/// `$TMPDIR/meshstats-it/`, where the harness keeps each Envoy's), made afresh.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join("meshstats-it")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("{}: {e}", dir.display());
    }
    dir
}
