//! From configuration to [`MetricTable`]: the standard metrics, `definitions[]` (user-defined
//! metrics) and `metrics[]` overrides (dimensions, `tags_to_remove`, `drop`, `match`).
//!
//! Failure semantics follow Istio's: a broken part disables only what it belongs to and is
//! reported as a problem (`ConfigError`), while everything else keeps working. A dimension
//! whose expression does not parse is removed from its metrics, one that parses but cannot
//! be evaluated ([`ErrorClass::Evaluation`]) is kept as `unknown`, as Istio's CEL gives it
//! per request; a definition whose value does not compile is skipped; a `match` that does not
//! compile turns its metrics off (a predicate that cannot be decided is false, at load time
//! as per request).
//!
//! Labels follow Istio's plugin: a standard metric starts with its standard labels, a
//! definition with none (or, named like a standard metric, with that metric's), and
//! `metrics[]` entries, in order, remove tags and then add or override dimensions. Only a
//! definition with its own Mixer-style `dimensions` starts from those.

use super::{
    Group, LabelSource, MetricTable, ReportKind, Spec, ValueSource, BUILD_LABELS, GRPC_METRICS,
    HTTP_METRICS, PREFIX, TCP_METRICS,
};
use crate::attributes::vocabulary::Vocabulary;
use crate::config::{ConfigError, MetricKind, PluginConfig};
use crate::expr::{self, ErrorClass, ExprError, Program, Type};
use crate::labels::STANDARD_LABELS;
use crate::stat_name::{self, Encoding};

/// A spec under construction, with what only compilation needs.
struct Draft {
    spec: Spec,
    /// The name `metrics[].name` refers to it by (`requests_total`, a definition's name).
    short: String,
    dropped: bool,
}

/// Compiles the metric parts of `config`, resolving attributes through `vocab`. Problems are
/// returned, never fatal.
pub fn compile(config: &PluginConfig, vocab: &mut Vocabulary) -> Output {
    let mut c = Compiler {
        vocab,
        table: MetricTable::default(),
        problems: Vec::new(),
        unevaluable: Vec::new(),
        sources: Vec::new(),
        custom: custom_names(config),
    };
    let standard = HTTP_METRICS
        .iter()
        .map(|m| (m, ReportKind::Request))
        .chain(TCP_METRICS.iter().map(|m| (m, ReportKind::TcpConnection)))
        .chain(GRPC_METRICS.iter().map(|m| (m, ReportKind::GrpcStream)));
    let mut drafts: Vec<Draft> = standard
        .map(|(m, report)| Draft {
            spec: Spec {
                name: format!("{PREFIX}{}", m.name),
                kind: m.kind,
                labels: STANDARD_LABELS
                    .iter()
                    .take(m.label_count)
                    .enumerate()
                    .map(|(i, t)| (t.to_string(), LabelSource::Standard(i)))
                    .collect(),
                value: ValueSource::Standard(m.value),
                matchers: Vec::new(),
                report,
            },
            short: m.name.to_string(),
            dropped: false,
        })
        .collect();
    for (i, def) in config.definitions.iter().enumerate() {
        if let Some(mut d) = c.definition(i, def) {
            // A definition named like a standard metric replaces it but keeps its labels, as
            // in Istio, where the tags belong to the name and the definition to the value.
            if let Some(old) = drafts.iter().position(|x| x.short == d.short) {
                let old = drafts.remove(old);
                if def.dimensions.is_empty() {
                    d.spec.labels = old.spec.labels;
                }
            }
            drafts.push(d);
        }
    }
    for (i, over) in config.metrics.iter().enumerate() {
        c.apply_override(i, over, &mut drafts);
    }
    c.table.specs = drafts
        .into_iter()
        .filter(|d| !d.dropped)
        .map(|d| d.spec)
        .collect();
    c.table.groups = groups(&c.table.specs);
    c.table.keys = tag_keys(config);
    c.table.max_series = config.max_series();
    c.table.max_value_len = config.max_value_len();
    Output {
        table: c.table,
        problems: c.problems,
        unevaluable: c.unevaluable,
    }
}

/// What [`compile`] made of a configuration.
pub struct Output {
    pub table: MetricTable,
    /// Parts left out, each disabling only what it belongs to.
    pub problems: Vec<ConfigError>,
    /// Dimensions that cannot be evaluated: kept, always `unknown`.
    pub unevaluable: Vec<ConfigError>,
}

/// Specs with the same report kind and labels share one tuple map (and one key per report).
fn groups(specs: &[Spec]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let same = |g: &&mut Group| {
            g.report == spec.report
                && g.specs
                    .first()
                    .and_then(|&f| specs.get(f))
                    .is_some_and(|f| f.labels == spec.labels)
        };
        if let Some(g) = groups.iter_mut().find(same) {
            g.specs.push(i);
            continue;
        }
        groups.push(Group {
            report: spec.report,
            specs: vec![i],
            labels: spec.labels.iter().map(|(_, s)| *s).collect(),
            reporter: spec.labels.iter().position(|(t, s)| {
                t == "reporter" && *s == LabelSource::Standard(crate::labels::idx::REPORTER)
            }),
            tuples: Default::default(),
            overflow: Vec::new(),
        });
    }
    groups
}

/// Every tag of `config` ([`all_tag_names`], once each) with its compact key, assigned in that
/// order: the CLI renders `stats_tags` from the same list the filter writes names with.
pub fn tag_keys(config: &PluginConfig) -> Vec<(String, String)> {
    let mut tags = all_tag_names(config);
    let mut seen = std::collections::BTreeSet::new();
    tags.retain(|t| seen.insert(t.clone()));
    tags.into_iter()
        .enumerate()
        .map(|(i, t)| (t, stat_name::tag_key(i)))
        .collect()
}

/// The `stats_tags` entries (tag name, regex) for `config`'s names in `encoding`, in the order
/// Envoy must apply them.
pub fn stats_tags(config: &PluginConfig, encoding: Encoding) -> Vec<(String, String)> {
    regexes(&tag_keys(config), encoding)
}

pub(super) fn regexes(keys: &[(String, String)], encoding: Encoding) -> Vec<(String, String)> {
    keys.iter()
        .map(|(tag, key)| {
            let regex = match encoding {
                Encoding::Istio => stat_name::tag_regex(tag),
                Encoding::Compact => stat_name::compact_tag_regex(key),
            };
            (tag.clone(), regex)
        })
        .collect()
}

struct Compiler<'v> {
    vocab: &'v mut Vocabulary,
    table: MetricTable,
    problems: Vec<ConfigError>,
    unevaluable: Vec<ConfigError>,
    /// Source text of each custom dimension expression, so one expression is evaluated once.
    sources: Vec<String>,
    /// Every custom dimension name of the configuration, which no other may end.
    custom: Vec<&'v str>,
}

impl Compiler<'_> {
    fn problem(&mut self, path: String, reason: String) {
        self.problems.push(ConfigError { path, reason });
    }

    fn program(&mut self, path: &str, source: &str, ty: Type) -> Option<Program> {
        self.compile_expr(path, source, ty).ok()
    }

    /// Compiles `source`, reporting a failure as a problem.
    fn compile_expr(&mut self, path: &str, source: &str, ty: Type) -> Result<Program, ExprError> {
        expr::compile(source, Some(ty), self.vocab).inspect_err(|e| {
            self.problem(path.to_string(), format!("{e} in `{source}`"));
        })
    }

    /// Where a custom dimension's value comes from, compiling each distinct text once.
    /// `None`: the tag is removed (a bad name, an expression that does not parse).
    fn dimension(&mut self, path: &str, tag: &str, source: &str) -> Option<LabelSource> {
        if let Err(reason) = check_tag(tag, &self.custom) {
            self.problem(path.to_string(), reason);
            return None;
        }
        if let Some(i) = self.sources.iter().position(|s| s == source) {
            return Some(LabelSource::Custom(i));
        }
        match self.compile_expr(path, source, Type::String) {
            Ok(program) => {
                self.table.dimensions.push(program);
                self.sources.push(source.to_string());
                Some(LabelSource::Custom(self.sources.len() - 1))
            }
            Err(e) if e.class == ErrorClass::Evaluation => {
                // Reported, but not as a part left out: the label stays, as in Istio.
                if let Some(p) = self.problems.pop() {
                    self.unevaluable.push(p);
                }
                Some(LabelSource::Unknown)
            }
            Err(_) => None,
        }
    }

    fn definition(&mut self, i: usize, def: &crate::config::MetricDefinition) -> Option<Draft> {
        let at = |f: &str| format!("definitions[{i}].{f}");
        if def.name.is_empty() {
            self.problem(at("name"), "must not be empty".into());
            return None;
        }
        let name = def
            .metric_name
            .clone()
            .unwrap_or_else(|| format!("{PREFIX}{}", def.name));
        if !is_metric_name(&name) {
            let field = if def.metric_name.is_some() {
                "metric_name"
            } else {
                "name"
            };
            self.problem(
                at(field),
                format!("{name:?} is not a valid Prometheus metric name"),
            );
            return None;
        }
        if def.value.is_empty() {
            self.problem(at("value"), "must not be empty".into());
            return None;
        }
        let value = self.program(&at("value"), &def.value, Type::Int)?;
        self.table.values.push(value);
        let value = ValueSource::Expr(self.table.values.len() - 1);
        // Without Mixer-style dimensions a definition has no labels until `metrics[]` adds them.
        let mut labels = Vec::new();
        for (tag, source) in &def.dimensions {
            let path = format!("definitions[{i}].dimensions.{tag}");
            if let Some(d) = self.dimension(&path, tag, source) {
                labels.push((tag.clone(), d));
            }
        }
        if let Some(b) = &def.buckets {
            self.check_buckets(&at("buckets"), b, def.kind);
        }
        Some(Draft {
            // Definitions are HTTP-only, as in Istio's plugin: recorded per request.
            spec: Spec {
                name,
                kind: def.kind,
                labels,
                value,
                matchers: Vec::new(),
                report: ReportKind::Request,
            },
            short: def.name.clone(),
            dropped: false,
        })
    }

    fn check_buckets(&mut self, path: &str, buckets: &crate::config::Buckets, kind: MetricKind) {
        if kind != MetricKind::Histogram {
            self.problem(path.to_string(), "buckets apply to histograms only".into());
        } else if let Err(reason) = buckets.bounds() {
            self.problem(path.to_string(), reason);
        }
    }

    fn apply_override(
        &mut self,
        i: usize,
        over: &crate::config::MetricConfig,
        drafts: &mut [Draft],
    ) {
        let at = |f: &str| format!("metrics[{i}].{f}");
        let targets: Vec<usize> = (0..drafts.len())
            .filter(|&d| {
                drafts
                    .get(d)
                    .is_some_and(|x| !x.dropped && (over.name.is_empty() || x.short == over.name))
            })
            .collect();
        if !over.name.is_empty() && targets.is_empty() {
            let known: Vec<&str> = drafts.iter().map(|d| d.short.as_str()).collect();
            self.problem(
                at("name"),
                format!(
                    "unknown metric {:?}; known metrics: {}",
                    over.name,
                    known.join(", ")
                ),
            );
            return;
        }
        let each = |drafts: &mut [Draft], f: &mut dyn FnMut(&mut Draft)| {
            for &t in &targets {
                if let Some(d) = drafts.get_mut(t) {
                    f(d);
                }
            }
        };
        if over.drop {
            each(drafts, &mut |d| d.dropped = true);
            return;
        }
        for (j, tag) in over.tags_to_remove.iter().enumerate() {
            let known = targets.iter().any(|&t| {
                drafts
                    .get(t)
                    .is_some_and(|d| d.spec.labels.iter().any(|(l, _)| l == tag))
            });
            if !known && !STANDARD_LABELS.contains(&tag.as_str()) {
                self.problem(
                    format!("metrics[{i}].tags_to_remove[{j}]"),
                    format!("{tag:?} is not a label of this metric"),
                );
                continue;
            }
            each(drafts, &mut |d| d.spec.labels.retain(|(l, _)| l != tag));
        }
        for (tag, source) in &over.dimensions {
            let path = format!("metrics[{i}].dimensions.{tag}");
            let expr = self.dimension(&path, tag, source);
            each(drafts, &mut |d| {
                let slot = d.spec.labels.iter_mut().find(|(l, _)| l == tag);
                match (expr, slot) {
                    (Some(e), Some(slot)) => slot.1 = e,
                    (Some(e), None) => d.spec.labels.push((tag.clone(), e)),
                    // As Istio: a dimension that does not compile leaves its metric.
                    (None, _) => d.spec.labels.retain(|(l, _)| l != tag),
                }
            });
        }
        if !over.match_.is_empty() {
            let predicate = self.program(&at("match"), &over.match_, Type::Bool);
            let index = predicate.map(|p| {
                self.table.predicates.push(p);
                self.table.predicates.len() - 1
            });
            // No compiled predicate: an index that resolves to nothing, which never matches.
            each(drafts, &mut |d| {
                d.spec.matchers.push(index.unwrap_or(usize::MAX))
            });
        }
        if let Some(b) = &over.buckets {
            let kinds: Vec<MetricKind> = targets
                .iter()
                .filter_map(|&t| drafts.get(t))
                .map(|d| d.spec.kind)
                .collect();
            let kind = if over.name.is_empty() || kinds.contains(&MetricKind::Histogram) {
                MetricKind::Histogram
            } else {
                MetricKind::Counter
            };
            self.check_buckets(&at("buckets"), b, kind);
        }
    }
}

/// Custom tag names in `stats_tags` order: longest first, a stable order. Order does not keep
/// tags apart: Envoy runs each regex on the whole name. Values cannot contain `=.=` (see
/// `stat_name`), so `tag=.=` occurs only where a tag was written or inside a longer tag
/// ending with it, and [`check_tag`] refuses the names for which that happens.
fn custom_order(config: &PluginConfig) -> Vec<String> {
    let custom = custom_names(config);
    let mut tags: Vec<String> = custom
        .iter()
        .filter(|t| check_tag(t, &custom).is_ok())
        .map(|t| t.to_string())
        .collect();
    tags.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    tags.dedup();
    tags
}

/// Every tag name the filter can write into a stat name, in the order Envoy must extract
/// them: the standard labels, custom dimensions (longest first), then `istio_build`'s.
pub fn all_tag_names(config: &PluginConfig) -> Vec<String> {
    STANDARD_LABELS
        .iter()
        .map(|s| s.to_string())
        .chain(
            custom_order(config)
                .into_iter()
                .filter(|t| !BUILD_LABELS.contains(&t.as_str())),
        )
        .chain(BUILD_LABELS.iter().map(|s| s.to_string()))
        .collect()
}

/// Histogram buckets a configuration asks for, per full metric name.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketSetting {
    pub metric: String,
    pub bounds: Vec<f64>,
}

/// The bucket settings to render into Envoy's bootstrap (invalid ones are left out; `compile`
/// reports them).
pub fn bucket_settings(config: &PluginConfig) -> Vec<BucketSetting> {
    let mut out: Vec<BucketSetting> = Vec::new();
    let mut histograms: Vec<(String, String)> = HTTP_METRICS
        .iter()
        .filter(|m| m.kind == MetricKind::Histogram)
        .map(|m| (m.name.to_string(), format!("{PREFIX}{}", m.name)))
        .collect();
    for d in config
        .definitions
        .iter()
        .filter(|d| d.kind == MetricKind::Histogram)
    {
        let full = d
            .metric_name
            .clone()
            .unwrap_or_else(|| format!("{PREFIX}{}", d.name));
        if let Some(b) = d.buckets.as_ref().and_then(|b| b.bounds().ok()) {
            out.push(BucketSetting {
                metric: full.clone(),
                bounds: b,
            });
        }
        histograms.push((d.name.clone(), full));
    }
    for m in &config.metrics {
        let Some(bounds) = m.buckets.as_ref().and_then(|b| b.bounds().ok()) else {
            continue;
        };
        for (short, full) in &histograms {
            if m.name.is_empty() || m.name == *short {
                out.retain(|s| s.metric != *full);
                out.push(BucketSetting {
                    metric: full.clone(),
                    bounds: bounds.clone(),
                });
            }
        }
    }
    out
}

fn check_tag(tag: &str, custom: &[&str]) -> Result<(), String> {
    let mut chars = tag.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !tag.starts_with("__");
    if !valid {
        return Err(format!("{tag:?} is not a valid Prometheus label name"));
    }
    // Envoy runs every `stats_tags` regex on the whole stat name, not on what the earlier ones
    // left, and the regex of `b` also matches the `b=.=` inside `a_b=.=`: when one tag name
    // ends another, `b`'s value is read from the wrong label. Checked both ways, against
    // every tag a stat name can hold.
    let fixed = || STANDARD_LABELS.iter().chain(&BUILD_LABELS).copied();
    let tells = "which Envoy's tag extraction cannot tell apart; choose another name";
    if let Some(std) = fixed().find(|o| tag.len() > o.len() && tag.ends_with(o)) {
        return Err(format!(
            "label {tag:?} ends with the label `{std}`, {tells}"
        ));
    }
    let longer = fixed().chain(custom.iter().copied());
    match longer
        .into_iter()
        .find(|o| o.len() > tag.len() && o.ends_with(tag))
    {
        Some(other) => Err(format!(
            "label {tag:?} is the end of the label `{other}`, {tells}"
        )),
        None => Ok(()),
    }
}

/// Every custom dimension name in `config` (standard labels aside), for [`check_tag`].
fn custom_names(config: &PluginConfig) -> Vec<&str> {
    config
        .metrics
        .iter()
        .flat_map(|m| m.dimensions.keys())
        .chain(config.definitions.iter().flat_map(|d| d.dimensions.keys()))
        .map(String::as_str)
        .filter(|t| !STANDARD_LABELS.contains(t))
        .collect()
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}
