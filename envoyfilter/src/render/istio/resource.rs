//! What every rendered resource shares: its metadata (name, namespace, the `part-of` label)
//! and the workloads it applies to.

use serde_json::{json, Map, Value};

/// The label every rendered resource carries (`kubectl delete -l app.kubernetes.io/part-of=meshstats`).
const PART_OF: (&str, &str) = ("app.kubernetes.io/part-of", "meshstats");

/// A `targetRefs` entry: a Gateway API `Gateway`/`GatewayClass` or a `Service`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRef {
    pub group: String,
    pub kind: String,
    pub name: String,
}

impl TargetRef {
    /// `Kind/name` (the group follows from the kind: `Gateway` and `GatewayClass` are
    /// `gateway.networking.k8s.io`, anything else the core group) or `group/Kind/name`.
    pub fn parse(text: &str) -> Result<TargetRef, String> {
        let parts: Vec<&str> = text.split('/').collect();
        let (group, kind, name) = match parts[..] {
            [kind, name] => {
                let group = match kind {
                    "Gateway" | "GatewayClass" => "gateway.networking.k8s.io",
                    _ => "",
                };
                (group, kind, name)
            }
            [group, kind, name] => (group, kind, name),
            _ => {
                return Err(format!(
                    "expected Kind/name or group/Kind/name, got {text:?}"
                ))
            }
        };
        if kind.is_empty() || name.is_empty() {
            return Err(format!(
                "expected Kind/name or group/Kind/name, got {text:?}"
            ));
        }
        Ok(TargetRef {
            group: group.to_string(),
            kind: kind.to_string(),
            name: name.to_string(),
        })
    }

    fn to_json(&self) -> Value {
        json!({ "group": self.group, "kind": self.kind, "name": self.name })
    }
}

/// Which workloads a resource applies to. Empty: every workload in its namespace (in
/// Istio's root namespace, normally `istio-system`: the whole mesh).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub selector: Vec<(String, String)>,
    pub target_refs: Vec<TargetRef>,
}

impl Scope {
    fn labels(&self) -> Value {
        Value::Object(
            self.selector
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        )
    }

    /// Adds `selector_field: {labels_field: …}` or `targetRefs` to `spec`.
    pub fn apply(&self, spec: &mut Map<String, Value>, selector_field: &str, labels_field: &str) {
        if !self.selector.is_empty() {
            spec.insert(
                selector_field.into(),
                json!({ labels_field: self.labels() }),
            );
        }
        if !self.target_refs.is_empty() {
            let refs = self.target_refs.iter().map(TargetRef::to_json).collect();
            spec.insert("targetRefs".into(), Value::Array(refs));
        }
    }
}

pub fn resource(api_version: &str, kind: &str, name: &str, namespace: &str, spec: Value) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": part_of_labels(),
        },
        "spec": spec,
    })
}

/// `metadata.labels` of every rendered resource.
pub fn part_of_labels() -> Value {
    json!({ PART_OF.0: PART_OF.1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_refs_default_their_group() {
        assert_eq!(
            TargetRef::parse("Gateway/bookinfo-gateway").unwrap(),
            TargetRef {
                group: "gateway.networking.k8s.io".into(),
                kind: "Gateway".into(),
                name: "bookinfo-gateway".into()
            }
        );
        assert_eq!(TargetRef::parse("Service/ratings").unwrap().group, "");
        assert_eq!(TargetRef::parse("x.io/Thing/a").unwrap().group, "x.io");
        assert!(TargetRef::parse("ratings").is_err());
        assert!(TargetRef::parse("Service/").is_err());
    }
}
