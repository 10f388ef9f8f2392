//! The local node's metadata. Envoy 1.40's dynamic-module ABI cannot read `xds.node` (the
//! attribute id exists, but no callback returns it), so the native build takes the node
//! metadata from the environment, read once at load:
//!
//! - `MESHSTATS_NODE_METADATA`: a JSON object, the bootstrap's `node.metadata` verbatim;
//! - otherwise what Istio's injector gives every sidecar: `ISTIO_META_<KEY>` (a string each)
//!   and `ISTIO_METAJSON_<KEY>` (JSON, e.g. `LABELS`), the variables pilot-agent builds the
//!   node metadata from, with `POD_NAME`/`POD_NAMESPACE` for `NAME`/`NAMESPACE`;
//! - `MESHSTATS_NODE_ID`: the node id (the exchange's `x-envoy-peer-metadata-id`).

use meshstats_filter::host::decode;
use serde_json::{Map, Value};
use std::sync::OnceLock;

#[derive(Debug, Default)]
pub struct Node {
    metadata: Map<String, Value>,
    id: Option<String>,
}

/// Node metadata values longer than this are ignored (the environment is trusted, but every
/// structure has a bound).
const MAX_VALUE: usize = 64 * 1024;

impl Node {
    pub fn from_vars(vars: impl Iterator<Item = (String, String)>) -> Node {
        let mut explicit = None;
        let mut node = Node::default();
        let mut pod = (None, None);
        for (k, v) in vars {
            if v.len() > MAX_VALUE {
                continue;
            }
            if k == "MESHSTATS_NODE_METADATA" {
                explicit = serde_json::from_str::<Map<String, Value>>(&v).ok();
            } else if k == "MESHSTATS_NODE_ID" {
                node.id = Some(v);
            } else if let Some(key) = k.strip_prefix("ISTIO_METAJSON_") {
                if let Ok(json) = serde_json::from_str::<Value>(&v) {
                    node.metadata.insert(key.to_string(), json);
                }
            } else if let Some(key) = k.strip_prefix("ISTIO_META_") {
                node.metadata.insert(key.to_string(), Value::String(v));
            } else if k == "POD_NAME" {
                pod.0 = Some(v);
            } else if k == "POD_NAMESPACE" {
                pod.1 = Some(v);
            }
        }
        if let Some(m) = explicit {
            node.metadata = m;
        } else {
            for (key, v) in [("NAME", pod.0), ("NAMESPACE", pod.1)] {
                if let Some(v) = v {
                    node.metadata.entry(key).or_insert(Value::String(v));
                }
            }
        }
        node
    }

    /// `xds.node.metadata.<path…>` in proxy-wasm's encoding: a string as its bytes, a map of
    /// strings as pairs (what Envoy's Wasm host returns for `LABELS`). Envoy's Wasm host walks
    /// into the metadata struct (an expression's `xds.node.metadata.LABELS.version` is one
    /// property read), so the module walks its copy the same way: objects by key, lists by
    /// index.
    pub fn metadata_path(&self, path: &[&str]) -> Option<Vec<u8>> {
        let (first, rest) = path.split_first()?;
        let mut value = self.metadata.get(*first)?;
        for step in rest {
            value = match value {
                Value::Object(m) => m.get(*step)?,
                Value::Array(items) => items.get(step.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        match value {
            Value::String(s) => Some(s.as_bytes().to_vec()),
            Value::Object(m) => {
                let pairs: Vec<(&str, String)> = m
                    .iter()
                    .map(|(k, v)| {
                        let v = match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        (k.as_str(), v)
                    })
                    .collect();
                let pairs: Vec<(&str, &str)> =
                    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
                Some(decode::encode_pairs(&pairs))
            }
            other => Some(other.to_string().into_bytes()),
        }
    }

    pub fn id(&self) -> Option<Vec<u8>> {
        self.id.as_ref().map(|s| s.as_bytes().to_vec())
    }
}

static NODE: OnceLock<Node> = OnceLock::new();

pub fn get() -> &'static Node {
    NODE.get_or_init(|| Node::from_vars(std::env::vars()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(v: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn explicit_json_wins_and_labels_are_pairs() {
        let n = Node::from_vars(vars(&[
            ("ISTIO_META_WORKLOAD_NAME", "ignored"),
            (
                "MESHSTATS_NODE_METADATA",
                r#"{"WORKLOAD_NAME":"ratings-v1","LABELS":{"app":"ratings"}}"#,
            ),
            ("MESHSTATS_NODE_ID", "sidecar~1"),
        ]));
        assert_eq!(
            n.metadata_path(&["WORKLOAD_NAME"]),
            Some(b"ratings-v1".to_vec())
        );
        assert_eq!(
            n.metadata_path(&["LABELS"]).map(|b| decode::pairs(&b)),
            Some(vec![("app".to_string(), "ratings".to_string())])
        );
        assert_eq!(n.id(), Some(b"sidecar~1".to_vec()));
        assert_eq!(
            n.metadata_path(&["LABELS", "app"]),
            Some(b"ratings".to_vec())
        );
        assert_eq!(n.metadata_path(&["LABELS", "version"]), None);
        assert_eq!(n.metadata_path(&["WORKLOAD_NAME", "x"]), None);
    }

    #[test]
    fn istio_injector_variables() {
        let n = Node::from_vars(vars(&[
            ("ISTIO_META_WORKLOAD_NAME", "reviews-v2"),
            (
                "ISTIO_METAJSON_LABELS",
                r#"{"app":"reviews","version":"v2"}"#,
            ),
            ("POD_NAMESPACE", "default"),
            ("POD_NAME", "reviews-v2-abc"),
        ]));
        assert_eq!(
            n.metadata_path(&["WORKLOAD_NAME"]),
            Some(b"reviews-v2".to_vec())
        );
        assert_eq!(n.metadata_path(&["NAMESPACE"]), Some(b"default".to_vec()));
        assert_eq!(n.metadata_path(&["NAME"]), Some(b"reviews-v2-abc".to_vec()));
        assert_eq!(
            n.metadata_path(&["LABELS"])
                .map(|b| decode::pairs(&b).len()),
            Some(2)
        );
        assert_eq!(n.metadata_path(&["MESH_ID"]), None);
    }
}
