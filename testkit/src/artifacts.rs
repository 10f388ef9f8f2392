//! Where the repository and the artifacts under test are.

use std::path::{Path, PathBuf};

/// The repository root (the workspace this crate belongs to).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The file `$var` names (relative to the workspace, not to cargo's per-package working
/// directory), else `<workspace>/<default>`. Panics if it is missing, naming the `make`
/// target that builds it: a test of an artifact must fail without it, never skip.
pub fn artifact(var: &str, default: &str, make_target: &str) -> PathBuf {
    let root = workspace_root();
    let from_env = std::env::var_os(var).filter(|v| !v.is_empty());
    let path = match &from_env {
        Some(v) => root.join(PathBuf::from(v)),
        None => root.join(default),
    };
    if !path.is_file() {
        panic!(
            "{} not found (from {}): run `make test` (or `{make_target}`) first, \
             or set {var} to an existing file",
            path.display(),
            if from_env.is_some() {
                format!("${var}")
            } else {
                "the default path".into()
            },
        );
    }
    path
}

/// The native build: `$MESHSTATS_NATIVE`, else `<workspace>/dist/libmeshstats.so` (`make
/// build`). Unlike Wasm there is no stand-in: `envoy --mode validate` resolves the module's
/// hooks, so only a real module validates.
pub fn native_module() -> PathBuf {
    artifact("MESHSTATS_NATIVE", "dist/libmeshstats.so", "make build")
}
