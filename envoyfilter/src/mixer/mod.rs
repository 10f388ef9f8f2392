//! `meshstats mixer import FILE...`: Istio Mixer telemetry configuration (v1alpha2 `metric`,
//! `logentry`, `prometheus`, `stdio`, `rule`, and the 1.1+ `instance` / `handler` forms) as one
//! meshstats configuration. What cannot be carried over is reported, one line per resource
//! field, never dropped silently. docs/migrating-from-mixer.md describes the mapping.

pub mod expr;
mod resources;
mod translate;
mod warning;

use serde_json::Value;

pub use translate::safe_name;
pub use warning::Warning;

/// The result of an import.
#[derive(Debug, Clone, PartialEq)]
pub struct Import {
    /// The meshstats configuration; `None` when nothing in the input could be used.
    pub config: Option<Value>,
    /// In the order of the resources they are about.
    pub warnings: Vec<Warning>,
}

/// Imports YAML texts, each with the name it is reported under. `Err` names the input whose
/// YAML does not parse.
pub fn import(inputs: &[(String, String)]) -> Result<Import, (String, String)> {
    let mut resources = Vec::new();
    let mut warnings = Vec::new();
    for (origin, text) in inputs {
        resources::read(origin, text, &mut resources, &mut warnings)
            .map_err(|e| (origin.clone(), e))?;
    }
    let (config, more) = translate::translate(&resources);
    warnings.extend(more);
    let config = config.map(|c| validated(without_suffix_labels(c, &mut warnings), &mut warnings));
    // Grouped by resource, in input order; the same line once.
    warnings.sort_by_key(|(at, _)| *at);
    let mut out: Vec<Warning> = Vec::new();
    for (_, w) in warnings {
        if !out.contains(&w) {
            out.push(w);
        }
    }
    // Reshaped standard TCP metrics are `metrics[]` entries without `drop`.
    let reshapes = |c: &Value| {
        c.get("metrics")
            .and_then(Value::as_array)
            .is_some_and(|m| m.iter().any(|o| o.get("drop").is_none()))
    };
    let config =
        config.filter(|c| c.get("definitions").is_some() || c.get("logs").is_some() || reshapes(c));
    Ok(Import {
        config,
        warnings: out,
    })
}

/// Envoy's tag extraction cannot tell a label from one that ends with its name, so the filter
/// rejects both. Istio 1.1–1.4 exported `permissive_response_code` next to `response_code`:
/// validating alone would drop `response_code` too. The longer label is left out instead, from
/// every definition, keeping the label it ends with.
fn without_suffix_labels(mut config: Value, warnings: &mut Vec<(usize, Warning)>) -> Value {
    use meshstats_filter::labels::STANDARD_LABELS;
    use meshstats_filter::metrics::BUILD_LABELS;
    let Some(defs) = config.get_mut("definitions").and_then(Value::as_array_mut) else {
        return config;
    };
    let mut names: Vec<String> = STANDARD_LABELS
        .iter()
        .chain(&BUILD_LABELS)
        .map(|s| s.to_string())
        .collect();
    for d in defs.iter() {
        for k in d
            .get("dimensions")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            names.push(k.0.clone());
        }
    }
    for (i, d) in defs.iter_mut().enumerate() {
        let Some(dims) = d.get_mut("dimensions").and_then(Value::as_object_mut) else {
            continue;
        };
        let keys: Vec<String> = dims.keys().cloned().collect();
        for key in keys {
            let Some(shorter) = names
                .iter()
                .find(|o| o.len() < key.len() && key.ends_with(o.as_str()))
            else {
                continue;
            };
            warnings.push((
                usize::MAX,
                Warning::new(
                    "meshstats",
                    format!("definitions[{i}].dimensions.{key}"),
                    format!("label {key:?} ends with the label `{shorter}`, which Envoy's tag extraction cannot tell apart; left out, keeping `{shorter}`"),
                ),
            ));
            dims.remove(&key);
        }
    }
    config
}

/// Compiles the configuration as the filter (and `meshstats validate`) will, and removes each
/// part the filter would leave out, reporting it in the filter's words. Every expression was
/// already compiled on its own; what remains are names (labels, metrics) and buckets.
fn validated(mut config: Value, warnings: &mut Vec<(usize, Warning)>) -> Value {
    for _ in 0..32 {
        let text = config.to_string();
        let problems = match meshstats_filter::compile(&text) {
            Ok(c) => c.problems,
            Err(e) => vec![e],
        };
        let Some(problem) = problems.into_iter().next() else {
            return config;
        };
        warnings.push((
            usize::MAX,
            Warning::new(
                "meshstats",
                problem.path.clone(),
                format!("{}; left out", problem.reason),
            ),
        ));
        if !remove(&mut config, &problem.path) {
            return Value::Object(Default::default());
        }
    }
    config
}

/// Removes what a problem at `path` belongs to: a dimension or variable, else the whole
/// definition, override or log (and a definition's overrides with it).
fn remove(config: &mut Value, path: &str) -> bool {
    let mut parts = path.splitn(2, '.');
    let head = parts.next().unwrap_or_default();
    let rest = parts.next().unwrap_or_default();
    let Some((list, index)) = head.strip_suffix(']').and_then(|h| h.split_once('[')) else {
        return false;
    };
    let Ok(index) = index.parse::<usize>() else {
        return false;
    };
    let Some(items) = config.get_mut(list).and_then(Value::as_array_mut) else {
        return false;
    };
    if index >= items.len() {
        return false;
    }
    for container in ["dimensions.", "variables."] {
        if let Some(key) = rest.strip_prefix(container) {
            let field = container.trim_end_matches('.');
            if let Some(map) = items
                .get_mut(index)
                .and_then(|i| i.get_mut(field))
                .and_then(Value::as_object_mut)
            {
                return map.remove(key).is_some();
            }
        }
    }
    let removed = items.remove(index);
    if list == "definitions" {
        let name = removed.get("name").cloned();
        if let Some(overrides) = config.get_mut("metrics").and_then(Value::as_array_mut) {
            overrides.retain(|o| o.get("name") != name.as_ref());
        }
    }
    true
}
