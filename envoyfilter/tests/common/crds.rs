//! Istio's CRD schemas (`../shared/istio-crds/`) as a cluster applies them: unknown fields
//! are errors (a structural schema would silently prune them), and the CEL rules the schema
//! validator cannot run are written out by hand.

use jsonschema::Validator;
use meshstats_testkit::shared_dir;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// A validator per served `(apiVersion, kind)`.
pub type Schemas = BTreeMap<(String, String), Validator>;

/// `additionalProperties: false` wherever the schema lists `properties` and does not keep
/// unknown fields, recursively: what a structural schema prunes is an error here.
fn strict(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            let preserves = map.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
            if map.contains_key("properties")
                && !map.contains_key("additionalProperties")
                && !preserves
            {
                map.insert("additionalProperties".into(), json!(false));
            }
            for value in map.values_mut() {
                strict(value);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strict),
        _ => {}
    }
}

/// The schema of `apiVersion`/`kind` from the CRDs, made strict; the object's top level gets
/// the fields every Kubernetes object has (the CRD schemas leave them out).
pub fn schemas() -> Schemas {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(shared_dir("istio-crds")).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with(".crd.yaml") {
            continue;
        }
        let crd: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let group = crd["spec"]["group"].as_str().unwrap();
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap();
        for version in crd["spec"]["versions"].as_array().unwrap() {
            if version["served"] != json!(true) {
                continue;
            }
            let mut schema = version["schema"]["openAPIV3Schema"].clone();
            let props = schema["properties"].as_object_mut().unwrap();
            props.insert("apiVersion".into(), json!({"type": "string"}));
            props.insert("kind".into(), json!({"type": "string"}));
            props.insert(
                "metadata".into(),
                json!({"type": "object", "required": ["name"], "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "namespace": {"type": "string", "minLength": 1},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                }}),
            );
            strict(&mut schema);
            let api_version = format!("{group}/{}", version["name"].as_str().unwrap());
            let validator = jsonschema::validator_for(&schema).unwrap();
            out.insert((api_version, kind.to_string()), validator);
        }
    }
    out
}

/// Problems with `doc` under its CRD's schema, and under the CEL rules
/// (`x-kubernetes-validations`) the schema validator cannot run, written out here.
pub fn problems(schemas: &Schemas, doc: &Value) -> Vec<String> {
    let key = (
        doc["apiVersion"].as_str().unwrap_or_default().to_string(),
        doc["kind"].as_str().unwrap_or_default().to_string(),
    );
    let Some(validator) = schemas.get(&key) else {
        return vec![format!("no served CRD version for {key:?}")];
    };
    let mut out: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{e} at `{}`", e.instance_path()))
        .collect();
    let spec = &doc["spec"];
    let scopes = ["selector", "workloadSelector", "targetRef", "targetRefs"]
        .iter()
        .filter(|f| spec.get(**f).is_some())
        .count();
    if scopes > 1 {
        out.push("only one of targetRefs or selector can be set".into());
    }
    for labels in [
        &spec["selector"]["matchLabels"],
        &spec["workloadSelector"]["labels"],
    ] {
        for (k, v) in labels.as_object().into_iter().flatten() {
            if k.is_empty() || k.contains('*') || v.as_str().unwrap_or("*").contains('*') {
                out.push(format!("bad label {k}={v}"));
            }
        }
    }
    if let Some(url) = spec["url"].as_str() {
        let scheme = url.split_once("://").map(|(s, _)| s);
        if !matches!(scheme, Some("http" | "https" | "oci" | "file")) {
            out.push(format!(
                "url must have schema one of [http, https, file, oci]: {url}"
            ));
        }
    }
    for patch in spec["configPatches"].as_array().into_iter().flatten() {
        if patch["match"].get("waypoint").is_some() != (patch["match"]["context"] == "WAYPOINT") {
            out.push("only support waypointMatch when context is WAYPOINT".into());
        }
    }
    out
}

/// Every document of `what` (at least one) is valid.
pub fn assert_valid(schemas: &Schemas, what: &str, docs: &[Value]) {
    assert!(!docs.is_empty(), "{what}: nothing rendered");
    for doc in docs {
        let p = problems(schemas, doc);
        assert!(
            p.is_empty(),
            "{what}: {} {} is invalid:\n{}",
            doc["kind"],
            doc["metadata"]["name"],
            p.join("\n")
        );
    }
}
