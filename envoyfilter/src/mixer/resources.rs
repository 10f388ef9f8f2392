//! Mixer configuration as read from YAML: every resource of every document (Kubernetes `List`s
//! flattened, as `kubectl get -o yaml` writes them), sorted into instances, handlers, rules and
//! what is not imported, with references resolved the way Mixer resolved them.

use super::warning::Warning;
use serde::Deserialize;
use serde_json::Value;

/// Mixer's default configuration namespace: rules there apply to every workload.
pub const CONFIG_NAMESPACE: &str = "istio-system";

/// One resource of the input.
#[derive(Debug, Clone)]
pub struct Resource {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub role: Role,
}

#[derive(Debug, Clone)]
pub enum Role {
    /// A template instance: v1alpha2 `metric`/`logentry`/…, or 1.1+ `instance`.
    Instance {
        template: String,
        params: Value,
    },
    /// An adapter handler: v1alpha2 `prometheus`/`stdio`/…, or 1.1+ `handler`.
    Handler {
        adapter: String,
        params: Value,
    },
    Rule {
        spec: Value,
    },
    /// Not imported; the reason was reported.
    Skipped,
}

impl Resource {
    /// `kind/namespace/name`, as every report line names it.
    pub fn id(&self) -> String {
        format!("{}/{}/{}", self.kind, self.namespace, self.name)
    }

    /// Mixer's fully qualified name: `name.kind.namespace`.
    pub fn fqn(&self) -> String {
        format!("{}.{}.{}", self.name, self.kind, self.namespace)
    }
}

/// Template kinds of Mixer's v1alpha2 API other than `metric` and `logentry`.
const OTHER_TEMPLATES: &[&str] = &[
    "apikey",
    "authorization",
    "checknothing",
    "edge",
    "kubernetes",
    "listentry",
    "quota",
    "reportnothing",
    "tracespan",
    "servicecontrolreport",
    "cloudwatch",
];

/// Adapter kinds of Mixer's v1alpha2 API other than `prometheus` and `stdio`.
const OTHER_ADAPTERS: &[&str] = &[
    "bypass",
    "circonus",
    "cloudwatch",
    "denier",
    "dogstatsd",
    "fluentd",
    "kubernetesenv",
    "listchecker",
    "memquota",
    "noop",
    "opa",
    "rbac",
    "redisquota",
    "servicecontrol",
    "signalfx",
    "solarwinds",
    "stackdriver",
    "statsd",
    "zipkin",
];

/// Why a kind is not imported, for the kinds a Mixer export usually holds.
fn skip_reason(kind: &str) -> String {
    match kind {
        "attributemanifest" => "Mixer's attribute vocabulary; the filter has its own, fixed one (docs/attributes.md); not imported".into(),
        "kubernetesenv" => "adapter kubernetesenv filled workload attributes from the Kubernetes API; a sidecar knows its own workload from its node metadata and its peer's from metadata exchange (docs/attributes.md); not imported".into(),
        "kubernetes" => "template kubernetes fed the kubernetesenv adapter's attribute generation, which a sidecar does itself (docs/attributes.md); not imported".into(),
        "adapter" | "template" => format!("{kind} describes an out-of-process Mixer adapter or template; not imported"),
        "httpapispec" | "httpapispecbinding" | "quotaspec" | "quotaspecbinding" => {
            format!("{kind} configured Mixer's API attributes or quotas, which the filter does not have; not imported")
        }
        k if OTHER_TEMPLATES.contains(&k) => template_reason(k),
        k if OTHER_ADAPTERS.contains(&k) => adapter_reason(k),
        k => format!("kind {k} is not imported (only metric, logentry, prometheus, stdio, rule, instance and handler are)"),
    }
}

pub fn template_reason(template: &str) -> String {
    format!("template {template} is not imported (only metric and logentry are)")
}

pub fn adapter_reason(adapter: &str) -> String {
    format!("adapter {adapter} is not imported (only prometheus and stdio are: the filter's metrics and access logs)")
}

/// A scalar of the YAML as the text of an expression (`value: 1` is the expression `1`).
pub fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The first of `names` present in the object `v` (protobuf JSON accepts `snake_case` and
/// `lowerCamelCase`, and Mixer configs use both).
pub fn field<'a>(v: &'a Value, names: &[&str]) -> Option<&'a Value> {
    names
        .iter()
        .find_map(|n| v.get(*n))
        .filter(|v| !v.is_null())
}

/// Reads the YAML documents of one input into resources. `Err` is YAML that does not parse.
pub fn read(
    origin: &str,
    text: &str,
    out: &mut Vec<Resource>,
    warnings: &mut Vec<(usize, Warning)>,
) -> Result<(), String> {
    if let Some(reason) = helm_template(text) {
        return Err(reason);
    }
    let mut docs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let value = Value::deserialize(doc).map_err(|e| format!("not valid YAML: {e}"))?;
        flatten(value, &mut docs);
    }
    for (i, doc) in docs.into_iter().enumerate() {
        let kind = doc
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let meta = doc.get("metadata");
        let name = meta
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let namespace = meta
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_string();
        let order = out.len();
        if kind.is_empty() || name.is_empty() {
            let resource = format!("{origin}: document {}", i + 1);
            warnings.push((
                order,
                Warning::new(
                    resource,
                    "",
                    "not a Kubernetes resource (no kind or metadata.name); skipped",
                ),
            ));
            out.push(Resource {
                kind,
                namespace,
                name,
                role: Role::Skipped,
            });
            continue;
        }
        let spec = doc
            .get("spec")
            .cloned()
            .unwrap_or(Value::Object(Default::default()));
        let api = doc
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("config.istio.io/v1alpha2");
        let mut resource = Resource {
            kind: kind.clone(),
            namespace,
            name,
            role: Role::Skipped,
        };
        let role = if !api.starts_with("config.istio.io/") {
            Err(format!(
                "apiVersion {api} is not Mixer configuration (config.istio.io); not imported"
            ))
        } else {
            role(&kind, spec)
        };
        match role {
            Ok(role) => resource.role = role,
            Err(reason) => warnings.push((order, Warning::new(resource.id(), "", reason))),
        }
        out.push(resource);
    }
    Ok(())
}

fn role(kind: &str, spec: Value) -> Result<Role, String> {
    let params = |spec: &Value| {
        field(spec, &["params"])
            .cloned()
            .unwrap_or(Value::Object(Default::default()))
    };
    let named = |spec: &Value, names: &[&str]| {
        field(spec, names)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    match kind {
        "metric" | "logentry" => Ok(Role::Instance {
            template: kind.into(),
            params: spec,
        }),
        "prometheus" | "stdio" => Ok(Role::Handler {
            adapter: kind.into(),
            params: spec,
        }),
        "rule" => Ok(Role::Rule { spec }),
        "instance" => match named(
            &spec,
            &["compiledTemplate", "compiled_template", "template"],
        )
        .as_str()
        {
            "" => Err("spec.compiledTemplate (or template) is missing; not imported".into()),
            t @ ("metric" | "logentry") => Ok(Role::Instance {
                template: t.into(),
                params: params(&spec),
            }),
            "kubernetes" => Err(skip_reason("kubernetes")),
            t => Err(template_reason(t)),
        },
        "handler" => {
            match named(&spec, &["compiledAdapter", "compiled_adapter", "adapter"]).as_str() {
                "" => Err("spec.compiledAdapter (or adapter) is missing; not imported".into()),
                a @ ("prometheus" | "stdio") => Ok(Role::Handler {
                    adapter: a.into(),
                    params: params(&spec),
                }),
                a if a == "kubernetesenv" => Err(skip_reason(a)),
                a => Err(adapter_reason(a)),
            }
        }
        other => Err(skip_reason(other)),
    }
}

/// Istio 1.1–1.7 shipped their Mixer configuration as Helm templates
/// (`namespace: {{ .Release.Namespace }}`, `{{- if .Values.mixer.adapters.stdio.enabled }}`).
/// Pasted unrendered, part of it is not YAML and the rest would import with names Mixer never
/// saw (`requestcount.instance.{{ .Release.Namespace }}`), so the whole input is refused,
/// naming the first such line.
fn helm_template(text: &str) -> Option<String> {
    let (n, line) = text
        .lines()
        .enumerate()
        .find(|(_, l)| !l.trim_start().starts_with('#') && l.contains("{{"))?;
    let count = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains("{{"))
        .count();
    let at = line.find("{{").unwrap_or_default();
    let directive: String = line[at..].chars().take(60).collect();
    let directive = match directive.find("}}") {
        Some(end) => &directive[..end + 2],
        None => directive.as_str(),
    };
    Some(format!(
        "a Helm template, not rendered YAML: line {} has `{directive}` ({count} such line{}); render the chart first (`helm template`, or `istioctl manifest generate`) and import its output",
        n + 1,
        if count == 1 { "" } else { "s" }
    ))
}

fn flatten(value: Value, out: &mut Vec<Value>) {
    if value.is_null() {
        return;
    }
    let is_list = value
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k == "List" || k.ends_with("List"));
    match (is_list, value.get("items").and_then(Value::as_array)) {
        (true, Some(items)) => {
            for item in items.clone() {
                flatten(item, out);
            }
        }
        _ => out.push(value),
    }
}

/// Resolves a rule's or handler's reference to an instance (`handler` false) or a handler, as
/// Mixer did (whatever its role here: the caller reports skipped ones):
/// `name.kind.namespace`, `name.kind` (the referrer's namespace), and in the 1.1+ forms `name`
/// and `name.namespace`.
pub fn resolve(
    resources: &[Resource],
    reference: &str,
    namespace: &str,
    handler: bool,
) -> Option<usize> {
    let parts: Vec<&str> = reference.trim().split('.').collect();
    let modern = if handler { "handler" } else { "instance" };
    let find = |name: &str, kind: Option<&str>, ns: &str| {
        resources
            .iter()
            .position(|r| r.name == name && r.namespace == ns && kind.is_none_or(|k| r.kind == k))
    };
    match parts.as_slice() {
        [name] => find(name, Some(modern), namespace),
        [name, second] => {
            find(name, Some(second), namespace).or_else(|| find(name, Some(modern), second))
        }
        [name, kind, ns @ ..] => find(name, Some(kind), &ns.join(".")),
        [] => None,
    }
}
