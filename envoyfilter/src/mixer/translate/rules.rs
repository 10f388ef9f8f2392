//! Mixer's rules: which instances reach which handlers, and under what match.

use super::report::{absent_reason, Report};
use crate::mixer::expr::{self, carry, quote};
use crate::mixer::resources::{field, resolve, scalar, Resource, Role, CONFIG_NAMESPACE};
use meshstats_filter::expr::Type;
use serde_json::Value;

/// An instance sent to a handler by a rule (one per rule, action and instance).
#[derive(Debug, Clone)]
struct Binding {
    handler: usize,
    instance: usize,
    /// The rule's match, carried over; `None` is every request.
    match_: Option<String>,
}

/// What the imported rules send where.
#[derive(Debug, Default)]
pub struct Routes {
    bindings: Vec<Binding>,
    /// (handler, instance, rule) sent by rules that never hold in an HTTP filter (TCP).
    tcp_only: Vec<(usize, usize, String)>,
}

impl Routes {
    /// Every rule of the input, in order.
    pub fn read(report: &mut Report) -> Routes {
        let mut routes = Routes::default();
        let resources = report.resources;
        for i in 0..resources.len() {
            if let Some(Role::Rule { spec }) = resources.get(i).map(|r| &r.role) {
                routes.rule(report, i, spec);
            }
        }
        routes
    }

    fn rule(&mut self, report: &mut Report, at: usize, spec: &Value) {
        let resources = report.resources;
        let Some(rule) = resources.get(at) else {
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
                        report.warn(at, "match", absent_reason(a, &c.source));
                    }
                    if expr::never_holds_for_http(&c.source) {
                        let what = "never holds for an HTTP request, and imported metrics and logs are recorded per HTTP request only (docs/tcp.md); the rule is not imported";
                        report.warn(at, "match", format!("`{m}` {what}"));
                        tcp = true;
                    }
                    match_ = Some(c.source);
                }
                Err(reason) => {
                    report.warn(
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
                let Some(handler) = resolve(resources, href, &namespace, true) else {
                    continue;
                };
                for reference in field(action, &["instances"])
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(instance) = resolve(
                        resources,
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
            report.warn(
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
                report.warn(
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
            let Some(handler) = resolve(resources, href, &namespace, true) else {
                report.warn(
                    at,
                    format!("actions[{ai}].handler"),
                    format!("no handler `{href}` in the input; the action is not imported"),
                );
                continue;
            };
            if !matches!(
                resources.get(handler).map(|r| &r.role),
                Some(Role::Handler { .. })
            ) {
                let id = resources.get(handler).map(Resource::id).unwrap_or_default();
                report.warn(at, format!("actions[{ai}]"), format!("sends to {id}, which is not imported (see its line); the action is not imported"));
                continue;
            }
            let instances = field(action, &["instances"])
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for (ii, reference) in instances.iter().enumerate() {
                let iref = reference.as_str().unwrap_or_default();
                match resolve(resources, iref, &namespace, false) {
                    Some(instance)
                        if matches!(
                            resources.get(instance).map(|r| &r.role),
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
                    None => report.warn(
                        at,
                        format!("actions[{ai}].instances[{ii}]"),
                        format!("no instance `{iref}` in the input"),
                    ),
                }
            }
        }
    }

    /// The TCP-only rules that send `instance` to `handler`, if any.
    pub fn tcp_rules(&self, handler: usize, instance: usize) -> Option<String> {
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
    pub fn combined_match(&self, handler: usize, instance: usize) -> Option<Option<String>> {
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

    /// The instances rules send to `handler`, once per rule action.
    pub fn sent_to(&self, handler: usize) -> Vec<usize> {
        self.bindings
            .iter()
            .filter(|b| b.handler == handler)
            .map(|b| b.instance)
            .collect()
    }

    /// The TCP-only rules that send `instance` to any handler.
    pub fn tcp_rules_sending(&self, instance: usize) -> Vec<String> {
        self.tcp_only
            .iter()
            .filter(|t| t.1 == instance)
            .map(|t| t.2.clone())
            .collect()
    }
}
