//! Mixer resources → one meshstats configuration (docs/migrating-from-mixer.md has the
//! mapping). Every part that cannot be carried over becomes a [`Warning`].

use super::expr::{self, carry, quote, string_literal};
use super::resources::{field, resolve, scalar, Resource, Role, CONFIG_NAMESPACE};
use super::Warning;
use meshstats_filter::expr::Type;
use meshstats_filter::metrics::HTTP_METRICS;
use serde_json::{json, Map, Value};

/// An instance sent to a handler by a rule (one per rule, action and instance).
#[derive(Debug, Clone)]
struct Binding {
    handler: usize,
    instance: usize,
    /// The rule's match, carried over; `None` is every request.
    match_: Option<String>,
}

/// The Prometheus client's default buckets, which Mixer's handler used for a distribution
/// without `buckets`.
const PROMETHEUS_DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Fields of a metric / logentry instance that the mapping reads, or that Mixer's prometheus
/// and stdio handlers never read (`monitored_resource_*`: Stackdriver's).
const METRIC_FIELDS: &[&str] = &[
    "value",
    "dimensions",
    "monitored_resource_type",
    "monitoredResourceType",
    "monitored_resource_dimensions",
    "monitoredResourceDimensions",
];
const LOGENTRY_FIELDS: &[&str] = &[
    "severity",
    "timestamp",
    "variables",
    "monitored_resource_type",
    "monitoredResourceType",
    "monitored_resource_dimensions",
    "monitoredResourceDimensions",
];

pub struct Translator<'r> {
    resources: &'r [Resource],
    warnings: Vec<(usize, Warning)>,
    bindings: Vec<Binding>,
    /// (handler, instance, rule) sent by rules that never hold in an HTTP filter (TCP).
    tcp_only: Vec<(usize, usize, String)>,
    definitions: Vec<Value>,
    overrides: Vec<Value>,
    logs: Vec<Value>,
    /// Instances that some output used, or whose absence a handler line already explains.
    accounted: Vec<usize>,
}

impl<'r> Translator<'r> {
    pub fn new(resources: &'r [Resource]) -> Translator<'r> {
        Translator {
            resources,
            warnings: Vec::new(),
            bindings: Vec::new(),
            tcp_only: Vec::new(),
            definitions: Vec::new(),
            overrides: Vec::new(),
            logs: Vec::new(),
            accounted: Vec::new(),
        }
    }

    fn warn(&mut self, at: usize, field: impl Into<String>, reason: impl Into<String>) {
        let id = self
            .resources
            .get(at)
            .map_or_else(|| "meshstats".to_string(), Resource::id);
        self.warnings.push((at, Warning::new(id, field, reason)));
    }

    /// The configuration (`None` when nothing was imported) and the report.
    pub fn run(mut self) -> (Option<Value>, Vec<(usize, Warning)>) {
        for i in 0..self.resources.len() {
            if let Some(Role::Rule { spec }) = self.resources.get(i).map(|r| &r.role) {
                self.rule(i, spec);
            }
        }
        for i in 0..self.resources.len() {
            match self.resources.get(i).map(|r| &r.role) {
                Some(Role::Handler { adapter, params }) if adapter == "prometheus" => {
                    self.prometheus(i, params)
                }
                Some(Role::Handler { adapter, params }) if adapter == "stdio" => {
                    self.stdio(i, params)
                }
                _ => {}
            }
        }
        for i in 0..self.resources.len() {
            if matches!(
                self.resources.get(i).map(|r| &r.role),
                Some(Role::Instance { .. })
            ) && !self.accounted.contains(&i)
            {
                let tcp: Vec<String> = self
                    .tcp_only
                    .iter()
                    .filter(|t| t.1 == i)
                    .map(|t| t.2.clone())
                    .collect();
                let reason = if tcp.is_empty() {
                    "not sent to a prometheus or stdio handler by any imported rule; not imported"
                        .to_string()
                } else {
                    format!("only rule {} sends it, for TCP connections only: TCP telemetry is not in this build; not imported (import again once it is)", tcp.join(", "))
                };
                self.warn(i, "", reason);
            }
        }
        self.standard_metrics();
        let mut config = Map::new();
        if !self.definitions.is_empty() {
            config.insert("definitions".into(), Value::Array(self.definitions));
        }
        if !self.overrides.is_empty() {
            config.insert("metrics".into(), Value::Array(self.overrides));
        }
        if !self.logs.is_empty() {
            config.insert("logs".into(), Value::Array(self.logs));
        }
        let imported = config.contains_key("definitions") || config.contains_key("logs");
        (imported.then_some(Value::Object(config)), self.warnings)
    }

    fn rule(&mut self, at: usize, spec: &Value) {
        let Some(rule) = self.resources.get(at) else {
            return;
        };
        let namespace = rule.namespace.clone();
        let rule_name = rule.name.clone();
        let mut tcp = false;
        let mut match_ = field(spec, &["match"])
            .and_then(scalar)
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty());
        if let Some(m) = &match_ {
            match carry(m, Some(Type::Bool)) {
                Ok(c) => {
                    for a in &c.absent {
                        self.warn(at, "match", absent_reason(a, &c.source));
                    }
                    if expr::never_holds_for_http(&c.source) {
                        let what = "never holds for the HTTP requests the filter sees (TCP telemetry is not in this build); the rule is not imported";
                        self.warn(at, "match", format!("`{m}` {what}"));
                        tcp = true;
                    }
                    match_ = Some(c.source);
                }
                Err(reason) => {
                    self.warn(
                        at,
                        "match",
                        format!("{reason}; its actions are not imported"),
                    );
                    return;
                }
            }
        }
        let actions = field(spec, &["actions"])
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if tcp {
            // Not imported; remembered so that what it sends can say why it is missing.
            for action in &actions {
                let href = field(action, &["handler"])
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let Some(handler) = resolve(self.resources, href, &namespace, true) else {
                    continue;
                };
                for reference in field(action, &["instances"])
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(instance) = resolve(
                        self.resources,
                        reference.as_str().unwrap_or_default(),
                        &namespace,
                        false,
                    ) {
                        self.tcp_only.push((handler, instance, rule_name.clone()));
                    }
                }
            }
            return;
        }
        if namespace != CONFIG_NAMESPACE {
            let scope = format!("destination.service.namespace == {}", quote(&namespace));
            self.warn(
                at,
                "metadata.namespace",
                format!("Mixer applied rules outside {CONFIG_NAMESPACE} only to services of their namespace; the match adds `{scope}`"),
            );
            match_ = Some(match match_ {
                Some(m) => format!("({m}) && {scope}"),
                None => scope,
            });
        }
        for key in [
            "requestHeaderOperations",
            "responseHeaderOperations",
            "sampling",
        ] {
            if field(spec, &[key]).is_some() {
                self.warn(
                    at,
                    key,
                    "not carried over: the filter only observes requests",
                );
            }
        }
        for (ai, action) in actions.iter().enumerate() {
            let href = field(action, &["handler"])
                .and_then(Value::as_str)
                .unwrap_or_default();
            let Some(handler) = resolve(self.resources, href, &namespace, true) else {
                self.warn(
                    at,
                    format!("actions[{ai}].handler"),
                    format!("no handler `{href}` in the input; the action is not imported"),
                );
                continue;
            };
            if !matches!(
                self.resources.get(handler).map(|r| &r.role),
                Some(Role::Handler { .. })
            ) {
                let id = self
                    .resources
                    .get(handler)
                    .map(Resource::id)
                    .unwrap_or_default();
                self.warn(at, format!("actions[{ai}]"), format!("sends to {id}, which is not imported (see its line); the action is not imported"));
                continue;
            }
            let instances = field(action, &["instances"])
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for (ii, reference) in instances.iter().enumerate() {
                let iref = reference.as_str().unwrap_or_default();
                match resolve(self.resources, iref, &namespace, false) {
                    Some(instance)
                        if matches!(
                            self.resources.get(instance).map(|r| &r.role),
                            Some(Role::Instance { .. })
                        ) =>
                    {
                        self.bindings.push(Binding {
                            handler,
                            instance,
                            match_: match_.clone(),
                        });
                    }
                    Some(_) => {} // a skipped instance: its own line says why
                    None => self.warn(
                        at,
                        format!("actions[{ai}].instances[{ii}]"),
                        format!("no instance `{iref}` in the input"),
                    ),
                }
            }
        }
    }

    /// The TCP-only rules that send `instance` to `handler`, if any.
    fn tcp_rules(&self, handler: usize, instance: usize) -> Option<String> {
        let rules: Vec<&str> = self
            .tcp_only
            .iter()
            .filter(|t| t.0 == handler && t.1 == instance)
            .map(|t| t.2.as_str())
            .collect();
        (!rules.is_empty()).then(|| rules.join(", "))
    }

    /// The match of every rule that sends `instance` to `handler`: `None` when none does,
    /// `Some(None)` when one of them has no match (every request).
    fn combined_match(&self, handler: usize, instance: usize) -> Option<Option<String>> {
        let matches: Vec<&Option<String>> = self
            .bindings
            .iter()
            .filter(|b| b.handler == handler && b.instance == instance)
            .map(|b| &b.match_)
            .collect();
        if matches.is_empty() {
            return None;
        }
        if matches.iter().any(|m| m.is_none()) {
            return Some(None);
        }
        let mut distinct: Vec<&str> = matches.iter().filter_map(|m| m.as_deref()).collect();
        distinct.dedup();
        Some(Some(match distinct.as_slice() {
            [one] => one.to_string(),
            many => many
                .iter()
                .map(|m| format!("({m})"))
                .collect::<Vec<_>>()
                .join(" || "),
        }))
    }

    fn prometheus(&mut self, at: usize, params: &Value) {
        for key in object_keys(params) {
            if ![
                "metrics",
                "metricsExpirationPolicy",
                "metrics_expiration_policy",
            ]
            .contains(&key.as_str())
            {
                self.warn(at, key, "not carried over");
            } else if key != "metrics" {
                self.warn(
                    at,
                    key,
                    "not carried over: Envoy keeps a series until it restarts",
                );
            }
        }
        let entries = field(params, &["metrics"])
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (mi, entry) in entries.iter().enumerate() {
            self.prometheus_metric(at, mi, entry);
        }
        // Instances this handler was sent but has no entry for: Mixer's handler refused them.
        let sent: Vec<usize> = self
            .bindings
            .iter()
            .filter(|b| b.handler == at)
            .map(|b| b.instance)
            .collect();
        for instance in sent {
            if self.accounted.contains(&instance) {
                continue;
            }
            let fqn = self
                .resources
                .get(instance)
                .map(Resource::fqn)
                .unwrap_or_default();
            let listed = entries.iter().any(|e| {
                field(e, &["instance_name", "instanceName"]).and_then(Value::as_str)
                    == Some(fqn.as_str())
            });
            if !listed {
                if let Some(Role::Instance { template, .. }) =
                    self.resources.get(instance).map(|r| &r.role)
                {
                    if template == "metric" {
                        self.warn(at, "metrics", format!("no entry for {fqn}, which rules send here: Mixer's handler refused it; not imported"));
                    } else {
                        self.warn(at, "", format!("rules send the {template} {fqn} here; the prometheus adapter takes metrics only; not imported"));
                    }
                    self.accounted.push(instance);
                }
            }
        }
    }

    fn prometheus_metric(&mut self, at: usize, mi: usize, entry: &Value) {
        let instance_name = field(entry, &["instance_name", "instanceName"])
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let raw_name = field(entry, &["name"])
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .unwrap_or(&instance_name);
        let name = safe_name(raw_name);
        let path = format!("metrics[{mi}] ({name})");
        let handler_ns = self
            .resources
            .get(at)
            .map(|r| r.namespace.clone())
            .unwrap_or_default();
        let Some(instance) = resolve(self.resources, &instance_name, &handler_ns, false) else {
            self.warn(
                at,
                format!("{path}.instance_name"),
                format!("no instance `{instance_name}` in the input; not imported"),
            );
            return;
        };
        let Some(Role::Instance { template, params }) =
            self.resources.get(instance).map(|r| r.role.clone())
        else {
            self.accounted.push(instance);
            return; // skipped: its own line says why
        };
        self.accounted.push(instance);
        if template != "metric" {
            self.warn(
                at,
                format!("{path}.instance_name"),
                format!("{instance_name} is a {template}, not a metric; not imported"),
            );
            return;
        }
        let Some(match_) = self.combined_match(at, instance) else {
            let reason = match self.tcp_rules(at, instance) {
                Some(rules) => format!("only rule {rules} sends {instance_name} here, for TCP connections only: TCP telemetry is not in this build; not imported (import again once it is)"),
                None => format!("no imported rule sends {instance_name} to this handler; not imported"),
            };
            self.warn(at, path, reason);
            return;
        };
        let kind = match field(entry, &["kind"])
            .and_then(Value::as_str)
            .unwrap_or_default()
        {
            "COUNTER" => "COUNTER",
            "GAUGE" => "GAUGE",
            "DISTRIBUTION" => "HISTOGRAM",
            other => {
                self.warn(
                    at,
                    format!("{path}.kind"),
                    format!("kind {other:?} is not COUNTER, GAUGE or DISTRIBUTION; not imported"),
                );
                return;
            }
        };
        for key in object_keys(entry) {
            if ["description"].contains(&key.as_str()) {
                self.warn(
                    at,
                    format!("{path}.{key}"),
                    "not carried over: Envoy's Prometheus output has no HELP text",
                );
            } else if ![
                "name",
                "instance_name",
                "instanceName",
                "kind",
                "label_names",
                "labelNames",
                "buckets",
                "namespace",
            ]
            .contains(&key.as_str())
            {
                self.warn(at, format!("{path}.{key}"), "not carried over");
            }
        }
        for key in object_keys(&params) {
            if !METRIC_FIELDS.contains(&key.as_str()) {
                self.warn(instance, key, "not carried over");
            }
        }
        // The value.
        let value_src = field(&params, &["value"])
            .and_then(scalar)
            .unwrap_or_default();
        let value = match carry(&value_src, None) {
            Ok(c) => {
                for a in &c.absent {
                    self.warn(instance, "value", absent_reason(a, &c.source));
                }
                c.source
            }
            Err(reason) => {
                self.warn(
                    instance,
                    "value",
                    format!("{reason}; the metric {name} is not imported"),
                );
                return;
            }
        };
        let seconds = expr::result_type(&value) == Some(Type::Duration);
        let value = if seconds {
            let ms = format!("int({value}) / 1000000");
            let buckets = if kind == "HISTOGRAM" {
                ", and the bucket bounds ×1000"
            } else {
                ""
            };
            self.warn(
                at,
                format!("{path}.value"),
                format!("`{value}` is a duration, which Mixer exported in seconds; Envoy records integers, so the value is in milliseconds (`{ms}`){buckets}: divide by 1000 in queries that expect seconds"),
            );
            ms
        } else {
            value
        };
        match expr::compile(&value, Some(Type::Int)) {
            Ok(p) if p.result_type() == Type::Double => {
                self.warn(
                    instance,
                    "value",
                    "a double: Envoy records integers, so the value is truncated",
                );
            }
            Ok(_) => {}
            Err(e) => {
                self.warn(
                    instance,
                    "value",
                    format!("{e} in `{value}`: not a number; the metric {name} is not imported"),
                );
                return;
            }
        }
        // The labels: label_names, each from the instance's dimension of that name.
        let labels: Vec<String> = field(entry, &["label_names", "labelNames"])
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let dims = field(&params, &["dimensions"])
            .cloned()
            .unwrap_or(Value::Object(Map::new()));
        let mut dimensions = Map::new();
        for label in &labels {
            let Some(src) = dims.get(label).and_then(scalar) else {
                self.warn(
                    at,
                    format!("{path}.label_names"),
                    format!(
                        "`{label}` is not a dimension of {instance_name}; the label is left out"
                    ),
                );
                continue;
            };
            match carry(&src, Some(Type::String)) {
                Ok(c) => {
                    for a in &c.absent {
                        self.warn(
                            instance,
                            format!("dimensions.{label}"),
                            absent_reason(a, &c.source),
                        );
                    }
                    dimensions.insert(safe_name(label), Value::String(c.source));
                }
                Err(reason) => self.warn(
                    instance,
                    format!("dimensions.{label}"),
                    format!("{reason}; the label is left out"),
                ),
            }
        }
        for dim in object_keys(&dims) {
            if !labels.contains(&dim) {
                self.warn(at, format!("{path}.label_names"), format!("dimension `{dim}` of {instance_name} is not in label_names; left out, as Mixer's handler exported only label_names"));
            }
        }
        let mut def = Map::new();
        def.insert("name".into(), Value::String(name.clone()));
        def.insert("type".into(), Value::String(kind.into()));
        def.insert("value".into(), Value::String(value));
        if let Some(ns) = field(entry, &["namespace"])
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty() && *n != "istio")
        {
            def.insert(
                "metric_name".into(),
                Value::String(format!("{}_{name}", safe_name(ns))),
            );
        }
        def.insert("dimensions".into(), Value::Object(dimensions));
        if kind == "HISTOGRAM" {
            match buckets(
                field(entry, &["buckets"]),
                if seconds { 1000.0 } else { 1.0 },
            ) {
                Ok(b) => {
                    def.insert("buckets".into(), b);
                }
                Err(reason) => self.warn(
                    at,
                    format!("{path}.buckets"),
                    format!("{reason}; Envoy's default buckets apply"),
                ),
            }
        } else if field(entry, &["buckets"]).is_some() {
            self.warn(
                at,
                format!("{path}.buckets"),
                "buckets apply to DISTRIBUTION only; ignored, as Mixer did",
            );
        }
        if self.definitions.iter().any(|d| {
            d.get("name") == def.get("name") && d.get("metric_name") == def.get("metric_name")
        }) {
            self.warn(
                at,
                path,
                format!("a metric named {name} is already imported; this one is not"),
            );
            return;
        }
        if let Some(m) = match_ {
            self.overrides.push(json!({"name": name, "match": m}));
        }
        self.definitions.push(Value::Object(def));
    }

    fn stdio(&mut self, at: usize, params: &Value) {
        let mut levels: Vec<(String, Level)> = DEFAULT_SEVERITY_LEVELS
            .iter()
            .map(|(k, l)| (k.to_string(), *l))
            .collect();
        for key in object_keys(params) {
            let value = params.get(&key).cloned().unwrap_or(Value::Null);
            match key.as_str() {
                "severity_levels" | "severityLevels" => {
                    for (k, v) in value.as_object().cloned().unwrap_or_default() {
                        match Level::parse(&v) {
                            Some(l) => {
                                levels.retain(|(x, _)| *x != k);
                                levels.push((k, l));
                            }
                            None => self.warn(
                                at,
                                format!("{key}.{k}"),
                                format!(
                                    "{v} is not a level (INFO, WARNING, ERROR or 0, 1, 2); ignored"
                                ),
                            ),
                        }
                    }
                }
                "outputAsJson" | "output_as_json" => {
                    if value == Value::Bool(false) {
                        self.warn(
                            at,
                            key,
                            "Mixer's console format is not available: entries are JSON",
                        );
                    }
                }
                "logStream" | "log_stream" => {
                    if value.as_str() != Some("STDOUT") && value.as_i64() != Some(0) {
                        self.warn(at, key, format!("{value} is not carried over: entries go to the sidecar's stdout (or its Envoy log)"));
                    }
                }
                "outputLevel" | "output_level" => {
                    if Level::parse(&value) != Some(Level::Info) {
                        self.warn(
                            at,
                            key,
                            "not carried over: every entry is written whatever its level",
                        );
                    }
                }
                _ => self.warn(at, key, "not carried over"),
            }
        }
        let sent: Vec<usize> = self
            .bindings
            .iter()
            .filter(|b| b.handler == at)
            .map(|b| b.instance)
            .collect();
        let mut seen = Vec::new();
        for instance in sent {
            if seen.contains(&instance) {
                continue;
            }
            seen.push(instance);
            self.accounted.push(instance);
            let Some(Role::Instance { template, params }) =
                self.resources.get(instance).map(|r| r.role.clone())
            else {
                continue;
            };
            let fqn = self
                .resources
                .get(instance)
                .map(Resource::fqn)
                .unwrap_or_default();
            if template != "logentry" {
                self.warn(at, "", format!("rules send the {template} {fqn} here: stdio's metric lines are not carried over (the metric is imported where a prometheus handler has it)"));
                continue;
            }
            let match_ = self.combined_match(at, instance).flatten();
            self.log(instance, &params, match_, &levels);
        }
    }

    fn log(
        &mut self,
        instance: usize,
        params: &Value,
        match_: Option<String>,
        levels: &[(String, Level)],
    ) {
        let Some(res) = self.resources.get(instance) else {
            return;
        };
        let (short, fqn) = (res.name.clone(), res.fqn());
        for key in object_keys(params) {
            if !LOGENTRY_FIELDS.contains(&key.as_str()) {
                self.warn(instance, key, "not carried over");
            }
        }
        let mut log = Map::new();
        let taken = self
            .logs
            .iter()
            .any(|l| l.get("name").and_then(Value::as_str) == Some(short.as_str()));
        log.insert(
            "name".into(),
            Value::String(if taken { fqn.clone() } else { short }),
        );
        log.insert("instance".into(), Value::String(fqn));
        if let Some(m) = match_ {
            log.insert("match".into(), Value::String(m));
        }
        if let Some(sev) = field(params, &["severity"])
            .and_then(scalar)
            .filter(|s| !s.trim().is_empty())
        {
            match severity(&sev, levels) {
                Ok(s) => {
                    log.insert("severity".into(), Value::String(s));
                }
                Err(reason) => {
                    self.warn(instance, "severity", format!("{reason}; the level is info"))
                }
            }
        }
        if let Some(ts) = field(params, &["timestamp"])
            .and_then(scalar)
            .filter(|s| !s.trim().is_empty())
        {
            match carry(&ts, Some(Type::Timestamp)) {
                Ok(c) => {
                    for a in &c.absent {
                        self.warn(instance, "timestamp", absent_reason(a, &c.source));
                    }
                    log.insert("timestamp".into(), Value::String(c.source));
                }
                Err(reason) => self.warn(
                    instance,
                    "timestamp",
                    format!("{reason}; the time is the request's start"),
                ),
            }
        }
        let mut variables = Map::new();
        let vars = field(params, &["variables"])
            .cloned()
            .unwrap_or(Value::Object(Map::new()));
        for name in object_keys(&vars) {
            let Some(src) = vars.get(&name).and_then(scalar) else {
                continue;
            };
            if ["level", "time", "instance"].contains(&name.as_str()) {
                self.warn(
                    instance,
                    format!("variables.{name}"),
                    "`level`, `time` and `instance` are fields of every line; left out",
                );
                continue;
            }
            match carry(&src, None) {
                Ok(c) => {
                    for a in &c.absent {
                        self.warn(
                            instance,
                            format!("variables.{name}"),
                            absent_reason(a, &c.source),
                        );
                    }
                    variables.insert(name, Value::String(c.source));
                }
                Err(reason) => self.warn(
                    instance,
                    format!("variables.{name}"),
                    format!("{reason}; the variable is left out"),
                ),
            }
        }
        log.insert("variables".into(), Value::Object(variables));
        self.logs.push(Value::Object(log));
    }

    /// Imported metrics named like standard ones replace them (the filter's rule for
    /// definitions). When the input replaces any, it is a whole telemetry configuration, as
    /// Istio's default Mixer config was: the standard metrics it does not define are dropped,
    /// so that exactly Mixer's metrics are emitted.
    fn standard_metrics(&mut self) {
        let defined: Vec<String> = self
            .definitions
            .iter()
            .filter(|d| d.get("metric_name").is_none())
            .filter_map(|d| d.get("name").and_then(Value::as_str).map(str::to_string))
            .collect();
        let replaced: Vec<&str> = HTTP_METRICS
            .iter()
            .map(|m| m.name)
            .filter(|n| defined.iter().any(|d| d == n))
            .collect();
        if replaced.is_empty() {
            return;
        }
        let dropped: Vec<&str> = HTTP_METRICS
            .iter()
            .map(|m| m.name)
            .filter(|n| !replaced.contains(n))
            .collect();
        // Reported on the handler that defined the first replacement.
        let handler = self
            .resources
            .iter()
            .position(|r| matches!(&r.role, Role::Handler { adapter, params } if adapter == "prometheus"
                && field(params, &["metrics"]).and_then(Value::as_array).is_some_and(|ms| ms.iter().any(|m| m.get("name").and_then(Value::as_str) == replaced.first().copied()))))
            .unwrap_or(usize::MAX);
        let mut reason = format!(
            "defines {} in place of meshstats' standard metrics of those names",
            replaced.join(", ")
        );
        if !dropped.is_empty() {
            reason.push_str(&format!("; the standard {}, not defined here, dropped (`\"drop\": true` in metrics[]) so that only Mixer's metrics are emitted", dropped.join(", ")));
            for name in &dropped {
                self.overrides.push(json!({"name": name, "drop": true}));
            }
        }
        self.warn(handler, "metrics", reason);
    }
}

fn absent_reason(attr: &str, now: &str) -> String {
    format!("attribute `{attr}` is not available in the filter (docs/attributes.md); treated as absent, as Mixer did when nothing supplied it: `{now}`")
}

fn object_keys(v: &Value) -> Vec<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// Mixer's prometheus adapter's `safeName`: `/`, `.` and spaces become `_`, `-` is removed.
pub fn safe_name(name: &str) -> String {
    name.trim_start_matches('/')
        .chars()
        .filter(|c| *c != '-')
        .map(|c| if matches!(c, '/' | '.' | ' ') { '_' } else { c })
        .collect()
}

/// Mixer's bucket definition in our shapes. Mixer's handler made `num_finite_buckets + 1`
/// bounds for linear and exponential buckets (the Prometheus client's count), ours make
/// `num_finite_buckets`: the count is raised by one so the bounds are the same. `scale`
/// multiplies the bounds (1000 for seconds → milliseconds).
fn buckets(def: Option<&Value>, scale: f64) -> Result<Value, String> {
    let num = |v: &Value, names: &[&str]| field(v, names).and_then(Value::as_f64);
    let s = |x: f64| (x * scale * 1e9).round() / 1e9;
    let Some(def) = def else {
        let bounds: Vec<f64> = PROMETHEUS_DEFAULT_BUCKETS.iter().map(|b| s(*b)).collect();
        return Ok(json!({"explicit_buckets": {"bounds": bounds}}));
    };
    if let Some(e) = field(def, &["explicit_buckets", "explicitBuckets"]) {
        let bounds: Vec<f64> = field(e, &["bounds"])
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_f64).map(s).collect())
            .unwrap_or_default();
        return Ok(json!({"explicit_buckets": {"bounds": bounds}}));
    }
    let count = |v: &Value| {
        num(v, &["num_finite_buckets", "numFiniteBuckets"])
            .map(|n| n as u64 + 1)
            .unwrap_or(1)
    };
    if let Some(l) = field(def, &["linear_buckets", "linearBuckets"]) {
        let (width, offset) = (
            num(l, &["width"]).unwrap_or(0.0),
            num(l, &["offset"]).unwrap_or(0.0),
        );
        return Ok(
            json!({"linear_buckets": {"num_finite_buckets": count(l), "width": s(width), "offset": s(offset)}}),
        );
    }
    if let Some(x) = field(def, &["exponential_buckets", "exponentialBuckets"]) {
        let (growth, base) = (
            num(x, &["growth_factor", "growthFactor"]).unwrap_or(0.0),
            num(x, &["scale"]).unwrap_or(0.0),
        );
        return Ok(
            json!({"exponential_buckets": {"num_finite_buckets": count(x), "growth_factor": growth, "scale": s(base)}}),
        );
    }
    Err(format!(
        "{def} is not explicit_buckets, linear_buckets or exponential_buckets"
    ))
}

/// The stdio handler's levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warning,
    Error,
}

impl Level {
    fn parse(v: &Value) -> Option<Level> {
        match (v.as_i64(), v.as_str()) {
            (Some(0), _) | (_, Some("INFO")) => Some(Level::Info),
            (Some(1), _) | (_, Some("WARNING")) => Some(Level::Warning),
            (Some(2), _) | (_, Some("ERROR")) => Some(Level::Error),
            _ => None,
        }
    }

    fn literal(self) -> &'static str {
        match self {
            Level::Info => "\"info\"",
            Level::Warning => "\"warning\"",
            Level::Error => "\"error\"",
        }
    }

    /// How the filter maps a severity value (docs/access-logs.md).
    fn ours(severity: &str) -> Level {
        let s = severity.to_ascii_lowercase();
        match s.as_str() {
            "warn" | "warning" => Level::Warning,
            "error" | "err" | "fatal" => Level::Error,
            _ => Level::Info,
        }
    }
}

/// The stdio handler's default `severity_levels`, which a handler's own entries extend.
const DEFAULT_SEVERITY_LEVELS: &[(&str, Level)] = &[
    ("INFORMATIONAL", Level::Info),
    ("informational", Level::Info),
    ("INFO", Level::Info),
    ("info", Level::Info),
    ("WARNING", Level::Warning),
    ("warning", Level::Warning),
    ("WARN", Level::Warning),
    ("warn", Level::Warning),
    ("ERROR", Level::Error),
    ("error", Level::Error),
    ("ERR", Level::Error),
    ("err", Level::Error),
    ("FATAL", Level::Error),
    ("fatal", Level::Error),
];

/// The logentry's severity, so that the filter's mapping gives the level Mixer's handler gave:
/// Mixer looked the value up in `severity_levels` exactly (anything else was info), the filter
/// maps level names in any case. A literal is kept when both agree, else replaced by the level;
/// an expression is wrapped in the handler's table.
fn severity(source: &str, levels: &[(String, Level)]) -> Result<String, String> {
    let mixer = |v: &str| {
        levels
            .iter()
            .find(|(k, _)| k == v)
            .map_or(Level::Info, |(_, l)| *l)
    };
    if let Some(v) = string_literal(source) {
        return Ok(if mixer(&v) == Level::ours(&v) {
            source.trim().to_string()
        } else {
            mixer(&v).literal().to_string()
        });
    }
    let c = carry(source, Some(Type::String))?;
    let list = |level: Level| {
        let keys: Vec<String> = levels
            .iter()
            .filter(|(_, l)| *l == level)
            .map(|(k, _)| quote(k))
            .collect();
        format!("[{}]", keys.join(", "))
    };
    let s = c.source;
    Ok(format!(
        "conditional(({s}) in {}, \"warning\", conditional(({s}) in {}, \"error\", \"info\"))",
        list(Level::Warning),
        list(Level::Error)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_as_mixer_mapped_them() {
        let levels: Vec<(String, Level)> = DEFAULT_SEVERITY_LEVELS
            .iter()
            .map(|(k, l)| (k.to_string(), *l))
            .collect();
        assert_eq!(severity("\"warning\"", &levels).unwrap(), "\"warning\"");
        assert_eq!(severity("\"Info\"", &levels).unwrap(), "\"Info\"");
        // Mixer: not in the table, so info; the filter would say warn.
        assert_eq!(severity("\"Warning\"", &levels).unwrap(), "\"info\"");
        let mut custom = levels.clone();
        custom.push(("Critical".into(), Level::Error));
        assert_eq!(severity("'Critical'", &custom).unwrap(), "\"error\"");
        let wrapped = severity("request.headers[\"x-level\"] | \"info\"", &levels).unwrap();
        assert!(wrapped.starts_with("conditional((request.headers[\"x-level\"] | \"info\") in [\"WARNING\", \"warning\", \"WARN\", \"warn\"], \"warning\""), "{wrapped}");
        assert!(expr::compile(&wrapped, Some(Type::String)).is_ok());
    }

    #[test]
    fn buckets_match_mixers_bounds() {
        let b = buckets(Some(&json!({"exponentialBuckets": {"numFiniteBuckets": 8, "scale": 1, "growthFactor": 10}})), 1.0).unwrap();
        assert_eq!(
            b,
            json!({"exponential_buckets": {"num_finite_buckets": 9, "growth_factor": 10.0, "scale": 1.0}})
        );
        let b = buckets(
            Some(&json!({"explicit_buckets": {"bounds": [0.005, 0.01, 0.025, 2.5]}})),
            1000.0,
        )
        .unwrap();
        assert_eq!(
            b,
            json!({"explicit_buckets": {"bounds": [5.0, 10.0, 25.0, 2500.0]}})
        );
        let b = buckets(
            Some(&json!({"linear_buckets": {"num_finite_buckets": 3, "width": 0.5}})),
            1000.0,
        )
        .unwrap();
        assert_eq!(
            b,
            json!({"linear_buckets": {"num_finite_buckets": 4, "width": 500.0, "offset": 0.0}})
        );
        assert_eq!(
            buckets(None, 1.0).unwrap()["explicit_buckets"]["bounds"][0],
            json!(0.005)
        );
        assert!(buckets(Some(&json!({"log": {}})), 1.0).is_err());
    }

    #[test]
    fn safe_names() {
        assert_eq!(safe_name("/a.b c-d"), "a_b_cd");
    }
}
