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

/// Which TCP connection reports a TCP-only rule's match selects: the shapes Istio shipped,
/// `context.protocol == "tcp"` and 1.1+'s `… && ((connection.event | "na") == "open")`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpScope {
    /// Every report of every connection.
    All,
    Open,
    Close,
}

impl TcpScope {
    /// The scope of a match, if it is one of the shapes above (spacing and parentheses
    /// aside); `None` for any other match.
    pub fn of(match_: &str) -> Option<TcpScope> {
        let flat: String = match_
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '(' && *c != ')')
            .collect();
        let rest = flat.strip_prefix("context.protocol==\"tcp\"")?;
        if rest.is_empty() {
            return Some(TcpScope::All);
        }
        let rest = rest.strip_prefix("&&connection.event")?;
        let rest = match rest.strip_prefix("|\"") {
            Some(default) => default.split_once('"')?.1,
            None => rest,
        };
        match rest {
            "==\"open\"" => Some(TcpScope::Open),
            "==\"close\"" => Some(TcpScope::Close),
            _ => None,
        }
    }
}

/// An instance sent to a handler by a TCP-only rule.
#[derive(Debug, Clone)]
pub struct TcpBinding {
    handler: usize,
    instance: usize,
    pub rule: String,
    /// The rule's match as written.
    pub match_: String,
    /// `None`: a match the filter cannot apply per TCP connection.
    pub scope: Option<TcpScope>,
}

/// What the imported rules send where.
#[derive(Debug, Default)]
pub struct Routes {
    bindings: Vec<Binding>,
    /// Sent by rules that never hold in an HTTP filter (TCP).
    tcp_only: Vec<TcpBinding>,
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
        let mut tcp = None;
        let mut match_ = field(spec, &["match"])
            .and_then(scalar)
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty());
        if let Some(scope) = match_.as_deref().and_then(TcpScope::of) {
            // `connection.event` is decided by which standard TCP metric the rule feeds.
            let m = match_.clone().unwrap_or_default();
            report.warn(at, "match", format!("`{m}` holds for TCP connections only: what it sends to a prometheus handler shapes the filter's standard istio_tcp_* metrics (metrics[]), the rest is not imported (see their lines)"));
            tcp = Some((m, Some(scope)));
        } else if let Some(m) = &match_ {
            match carry(m, Some(Type::Bool)) {
                Ok(c) => {
                    for a in &c.absent {
                        report.warn(at, "match", absent_reason(a, &c.source));
                    }
                    if expr::never_holds_for_http(&c.source) {
                        let what = "never holds for an HTTP request, and is not a match the filter can apply per TCP connection (`context.protocol == \"tcp\"`, optionally `&& (connection.event | \"na\") == \"open\"` or `\"close\"`); the rule is not imported";
                        report.warn(at, "match", format!("`{m}` {what}"));
                        tcp = Some((m.clone(), None));
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
        if let Some((tcp_match, scope)) = tcp {
            // Not imported as a rule: what it sends is mapped to the standard TCP metrics, or
            // says why it is missing.
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
                        self.tcp_only.push(TcpBinding {
                            handler,
                            instance,
                            rule: rule_name.clone(),
                            match_: tcp_match.clone(),
                            scope,
                        });
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

    /// The TCP-only rules that send `instance` to `handler`.
    pub fn tcp_rules(&self, handler: usize, instance: usize) -> Vec<&TcpBinding> {
        self.tcp_only
            .iter()
            .filter(|t| t.handler == handler && t.instance == instance)
            .collect()
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
            .filter(|t| t.instance == instance)
            .map(|t| t.rule.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::TcpScope;

    #[test]
    fn tcp_scopes_are_the_shapes_istio_shipped() {
        let of = TcpScope::of;
        assert_eq!(of("context.protocol == \"tcp\""), Some(TcpScope::All));
        assert_eq!(of("(context.protocol==\"tcp\")"), Some(TcpScope::All));
        assert_eq!(
            of("context.protocol == \"tcp\" && ((connection.event | \"na\") == \"open\")"),
            Some(TcpScope::Open)
        );
        assert_eq!(
            of("context.protocol == \"tcp\" && connection.event == \"close\""),
            Some(TcpScope::Close)
        );
        for other in [
            "context.protocol == \"tcp\" && destination.port == 5432",
            "context.protocol == \"tcp\" && connection.event == \"continue\"",
            "context.protocol == \"tcp\" || connection.event == \"open\"",
            "context.protocol == \"http\"",
        ] {
            assert_eq!(of(other), None, "{other}");
        }
    }
}
