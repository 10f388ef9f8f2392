//! Shared by the integration tests: example inputs, scratch files, the built binary.
#![allow(dead_code)] // each test binary uses a different part

use meshstats_cli::{default_node_id, stats_config, Direction, SidecarOptions};
use meshstats_filter::config::PluginConfig;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod crds;

/// A config written with odd spacing and a camelCase alias, to prove it reaches Envoy untouched.
pub const CONFIG_TEXT: &str = "{ \"disableHostHeaderFallback\" : true,\n  \"metrics\": [{\"dimensions\": {\"route\": \"request.url_path\"}}] }\n";

pub fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

pub fn node_metadata() -> Value {
    let text = std::fs::read_to_string(example("sidecar-node-metadata.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

pub fn cluster_metadata() -> Value {
    json!({"istio": {"services": [{"host": "ratings.default.svc.cluster.local", "name": "ratings", "namespace": "default"}]}})
}

pub fn endpoint_metadata() -> Value {
    json!({"istio": {"workload": "ratings-v1;default;ratings;v1;Kubernetes"}})
}

pub fn options(direction: Direction) -> SidecarOptions {
    let node_metadata = node_metadata();
    let config = PluginConfig::parse(CONFIG_TEXT).unwrap();
    SidecarOptions {
        direction,
        listen: "127.0.0.1:15006".parse().unwrap(),
        upstream: "127.0.0.1:9080".parse().unwrap(),
        admin: "127.0.0.1:15000".parse().unwrap(),
        node_id: default_node_id(&node_metadata),
        node_metadata,
        wasm_path: Some(PathBuf::from("/opt/meshstats/meshstats.wasm")),
        native_module: None,
        config_json: CONFIG_TEXT.to_string(),
        root_id: format!("stats_{direction}"),
        cluster_name: None,
        cluster_metadata: None,
        endpoint_metadata: None,
        with_filter: true,
        access_log: Vec::new(),
        debug_access_log: false,
        stats_config: stats_config(&config),
        protocol: Default::default(),
        downstream_tls: None,
        upstream_tls: None,
        grpc: false,
    }
}

/// A fresh directory per test (tests run in parallel in one process).
pub fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("meshstats-cli-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The built `meshstats` binary run with `args`.
pub fn meshstats(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshstats"))
        .args(args)
        .output()
        .unwrap()
}

/// The stdout of `meshstats args`, which must succeed.
pub fn render_ok(args: &[&str]) -> String {
    let out = meshstats(args);
    assert!(
        out.status.success(),
        "meshstats {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `meshstats args` fails, saying `expected` on stderr.
pub fn assert_rejected(args: &[&str], expected: &str) {
    let out = meshstats(args);
    assert!(!out.status.success(), "{args:?} was accepted");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(expected), "{args:?}: {stderr}");
}

/// The documents of a multi-document YAML text (empty ones left out).
pub fn yaml_docs(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// `p` as a command-line argument (every test path is UTF-8).
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
