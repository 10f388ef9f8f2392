//! The text of rendered resources: YAML documents or JSON.

use serde_json::{json, Value};

/// YAML text of one value.
pub fn to_yaml_text(value: &Value) -> String {
    serde_yaml_ng::to_string(value).unwrap_or_default()
}

/// YAML documents, `---` between them, each after its comment lines (`# …`).
pub fn to_yaml(comment: &[&str], docs: &[Value]) -> String {
    let mut out = String::new();
    for line in comment {
        out.push_str("# ");
        out.push_str(line);
        out.push('\n');
    }
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&to_yaml_text(doc));
    }
    out
}

/// JSON: one document as it is, several as a `List` (`kubectl apply -f` takes both).
pub fn to_json(docs: &[Value]) -> String {
    let value = match docs {
        [one] => one.clone(),
        _ => json!({ "apiVersion": "v1", "kind": "List", "items": docs }),
    };
    let mut out = serde_json::to_string_pretty(&value).unwrap_or_default();
    out.push('\n');
    out
}
