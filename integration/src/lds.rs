//! File-based LDS: a sidecar whose listener comes from a watched file instead of the
//! bootstrap, so a test can push new listeners while traffic flows, as istiod does.
//!
//! [`Sidecar::lds`](crate::mesh::Sidecar::lds) moves the rendered listener into that file
//! ([`move_listener_to_file`]); [`Lds::open`] reads it back and [`Lds::push`] replaces it
//! atomically (write a temporary file, rename it over the watched path: Envoy reloads on the
//! move and never reads a half-written file). [`with_filter`] makes the listener variants a
//! push carries: another filter configuration, another `vm_id`.

use crate::envoy::Envoy;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
const WASM_FILTER: &str = "envoy.filters.http.wasm";
const NATIVE_FILTER: &str = "envoy.filters.http.dynamic_modules";

/// Takes the bootstrap's only static listener out, writes it to `path` as an LDS response
/// (version `0`) and points `dynamic_resources.lds_config` at that file. The clusters stay
/// static.
pub fn move_listener_to_file(bootstrap: &mut Value, path: &Path) -> Result<(), String> {
    let listeners = bootstrap
        .pointer_mut("/static_resources/listeners")
        .map(Value::take)
        .unwrap_or(Value::Null);
    let listener = match listeners {
        Value::Array(mut l) if l.len() == 1 => l.remove(0),
        other => return Err(format!("expected one static listener, got {other}")),
    };
    if let Some(sr) = bootstrap["static_resources"].as_object_mut() {
        sr.remove("listeners");
    }
    write_atomically(path, &response("0", &listener))?;
    bootstrap["dynamic_resources"] = json!({
        "lds_config": {
            "path_config_source": { "path": path.to_string_lossy() },
            "resource_api_version": "V3",
        },
    });
    Ok(())
}

fn response(version: &str, listener: &Value) -> Value {
    let mut resource = listener.clone();
    resource["@type"] = json!(LISTENER_TYPE);
    json!({ "version_info": version, "resources": [resource] })
}

/// Writes `value` next to `path`, then renames it over `path`.
fn write_atomically(path: &Path, value: &Value) -> Result<(), String> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string(value).map_err(|e| e.to_string())?;
    std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("rename to {}: {e}", path.display()))
}

/// The listener file of one running sidecar.
#[derive(Debug)]
pub struct Lds {
    path: PathBuf,
    listener: Value,
    version: u64,
}

impl Lds {
    /// The file [`move_listener_to_file`] wrote (the sidecar must have started from it).
    pub fn open(path: &Path) -> Result<Lds, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let response: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let mut listener = response["resources"][0].clone();
        if let Some(obj) = listener.as_object_mut() {
            obj.remove("@type");
        }
        if !listener.is_object() {
            return Err(format!("{}: no listener in {text}", path.display()));
        }
        Ok(Lds {
            path: path.to_path_buf(),
            listener,
            version: 0,
        })
    }

    /// The listener the sidecar started with.
    pub fn listener(&self) -> &Value {
        &self.listener
    }

    /// Replaces the served listener by `listener` under the next version.
    pub fn push(&mut self, listener: &Value) -> Result<(), String> {
        self.version += 1;
        write_atomically(&self.path, &response(&self.version.to_string(), listener))
    }

    /// Pushes so far.
    pub fn pushes(&self) -> u64 {
        self.version
    }
}

/// `listener` with its HTTP filter's configuration replaced, and for the Wasm build its
/// `vm_id` (the native build has no VM: a new filter config is what a push creates).
pub fn with_filter(listener: &Value, vm_id: &str, config: &str) -> Result<Value, String> {
    let mut l = listener.clone();
    let filters = l
        .pointer_mut("/filter_chains/0/filters/0/typed_config/http_filters")
        .and_then(Value::as_array_mut)
        .ok_or("listener has no http_filters")?;
    if let Some(native) = filters.iter_mut().find(|f| f["name"] == NATIVE_FILTER) {
        native["typed_config"]["filter_config"]["value"] = json!(config);
        return Ok(l);
    }
    let wasm = filters
        .iter_mut()
        .find(|f| f["name"] == WASM_FILTER)
        .ok_or("listener has no meshstats filter")?;
    let plugin = &mut wasm["typed_config"]["config"];
    plugin["vm_config"]["vm_id"] = json!(vm_id);
    plugin["configuration"]["value"] = json!(config);
    Ok(l)
}

/// Envoy's own counters and gauges by exact name, from `GET /stats?filter=...` (a stat that
/// does not exist is 0: Envoy creates some only when first used).
pub fn envoy_stat(envoy: &Envoy, name: &str) -> Result<u64, String> {
    let escaped = name.replace('.', "\\.");
    let r = envoy.admin_get(&format!("/stats?filter=^{escaped}$"))?;
    if r.status != 200 {
        return Err(format!("{}: /stats: {} {}", envoy.name(), r.status, r.body));
    }
    for line in r.body.lines() {
        if let Some(v) = line.strip_prefix(name).and_then(|r| r.strip_prefix(": ")) {
            return v
                .trim()
                .parse()
                .map_err(|e| format!("{}: {line:?}: {e}", envoy.name()));
        }
    }
    Ok(0)
}

/// Waits (up to `timeout`) until Envoy has accepted or rejected `n` LDS updates in total
/// (`listener_manager.lds.update_success` + `update_rejected`, the initial load included).
pub fn wait_lds_updates(envoy: &Envoy, n: u64, timeout: Duration) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let done = envoy_stat(envoy, "listener_manager.lds.update_success")?
            + envoy_stat(envoy, "listener_manager.lds.update_rejected")?;
        if done >= n {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(format!(
                "{}: {done} LDS updates after {timeout:?}, wanted {n}",
                envoy.name()
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bootstrap() -> Value {
        json!({
            "static_resources": {
                "listeners": [{ "name": "l", "filter_chains": [{ "filters": [{ "typed_config": {
                    "http_filters": [
                        { "name": WASM_FILTER, "typed_config": { "config": {
                            "vm_config": { "vm_id": "meshstats" },
                            "configuration": { "value": "{}" },
                        } } },
                        { "name": "envoy.filters.http.router" },
                    ],
                } }] }] }],
                "clusters": [{ "name": "c" }],
            },
        })
    }

    #[test]
    fn the_listener_moves_to_the_file_and_pushes_replace_it() {
        let dir = std::env::temp_dir().join(format!("meshstats-lds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lds.json");
        let mut b = bootstrap();
        move_listener_to_file(&mut b, &path).unwrap();
        assert_eq!(
            b["static_resources"],
            json!({ "clusters": [{ "name": "c" }] })
        );
        assert_eq!(
            b["dynamic_resources"]["lds_config"]["path_config_source"]["path"],
            json!(path.to_string_lossy())
        );

        let mut lds = Lds::open(&path).unwrap();
        assert_eq!(
            lds.listener(),
            &bootstrap()["static_resources"]["listeners"][0]
        );
        let next = with_filter(lds.listener(), "other", r#"{"a":1}"#).unwrap();
        lds.push(&next).unwrap();
        let served: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(served["version_info"], json!("1"));
        let plugin = &served["resources"][0]["filter_chains"][0]["filters"][0]["typed_config"]
            ["http_filters"][0]["typed_config"]["config"];
        assert_eq!(plugin["vm_config"]["vm_id"], json!("other"));
        assert_eq!(plugin["configuration"]["value"], json!(r#"{"a":1}"#));
        assert_eq!(served["resources"][0]["@type"], json!(LISTENER_TYPE));
        assert!(!path.with_extension("json.tmp").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_bootstrap_without_exactly_one_listener_is_refused() {
        let mut b = json!({ "static_resources": { "listeners": [] } });
        let path = std::env::temp_dir().join("meshstats-lds-never-written.json");
        assert!(move_listener_to_file(&mut b, &path).is_err());
        assert!(with_filter(&json!({}), "x", "{}").is_err());
    }
}
