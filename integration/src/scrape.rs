//! A parsed Prometheus text exposition (what Envoy's `/stats/prometheus` serves).
//!
//! Parsing is done by `openmetrics-parser`, which resolves label escapes (`\"`, `\\`, `\n`)
//! and accepts Envoy's `name{} value` lines for untagged stats. It insists that every
//! series of a family has the same label names; a scrape breaking that is an error naming
//! the family (for meshstats it would mean a stat whose tags were not all extracted).

use openmetrics_parser::prometheus::parse_prometheus;
use openmetrics_parser::{PrometheusType, PrometheusValue};
use std::collections::BTreeMap;

/// The `# TYPE` of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

/// A histogram's (or summary's) data for one label set.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// `_count`
    pub count: f64,
    /// `_sum`
    pub sum: f64,
    /// `(le, cumulative count)` in the order served, ending with `(+Inf, count)`.
    /// Empty for a summary.
    pub buckets: Vec<(f64, f64)>,
    /// `(quantile, value)` for a summary; empty for a histogram.
    pub quantiles: Vec<(f64, f64)>,
}

/// One series: its labels and value. For a histogram or summary, `value` is the `_count`
/// and `histogram` holds the rest.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
    pub histogram: Option<Histogram>,
}

impl Series {
    /// The value of label `name`, or `""` when the series has no such label.
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map(String::as_str).unwrap_or("")
    }

    fn matches(&self, subset: &[(&str, &str)]) -> bool {
        subset
            .iter()
            .all(|(k, v)| self.labels.get(*k).map(String::as_str) == Some(*v))
    }

    fn is_exactly(&self, labels: &[(&str, &str)]) -> bool {
        self.labels.len() == labels.len() && self.matches(labels)
    }
}

#[derive(Debug, Clone)]
struct Family {
    kind: Kind,
    series: Vec<Series>,
}

/// A parsed scrape. Metric names are the family names as served (`envoy_cluster_upstream_rq`,
/// `istio_requests_total`, `istio_request_duration_milliseconds`); for histograms and
/// summaries the `_count`, `_sum` and `_bucket` names work as well.
#[derive(Debug, Clone)]
pub struct Scrape {
    families: BTreeMap<String, Family>,
    text: String,
}

impl Scrape {
    /// Parses Prometheus text format. The error names the offending family when it can.
    pub fn parse(text: &str) -> Result<Scrape, String> {
        let parseable = without_count_histograms(text);
        let exposition =
            parse_prometheus(&parseable).map_err(|e| describe_error(text, &e.to_string()))?;
        let mut families = BTreeMap::new();
        for (name, family) in exposition.families {
            let kind = match family.family_type {
                PrometheusType::Counter => Kind::Counter,
                PrometheusType::Gauge => Kind::Gauge,
                PrometheusType::Histogram => Kind::Histogram,
                PrometheusType::Summary => Kind::Summary,
                PrometheusType::Unknown => Kind::Untyped,
            };
            let label_names = family.get_label_names().to_vec();
            let series = family
                .iter_samples()
                .map(|sample| {
                    let labels = match sample.get_labelset() {
                        Ok(set) => set.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                        // Unreachable for a sample from a parsed family; keep the names anyway.
                        Err(_) => label_names
                            .iter()
                            .map(|k| (k.clone(), String::new()))
                            .collect(),
                    };
                    let (value, histogram) = convert(&sample.value);
                    Series {
                        labels,
                        value,
                        histogram,
                    }
                })
                .collect();
            families.insert(name, Family { kind, series });
        }
        Ok(Scrape {
            families,
            text: text.to_string(),
        })
    }

    /// The text this was parsed from (all of it).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Every family name, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.families.keys().map(String::as_str).collect()
    }

    /// The family's `# TYPE` (also for its `_count`/`_sum`/`_bucket` names).
    pub fn kind(&self, metric: &str) -> Option<Kind> {
        match self.families.get(metric) {
            Some(f) => Some(f.kind),
            None => self.derived(metric).map(|(f, _)| f.kind),
        }
    }

    /// All series of `metric`. For a histogram family's `X_count` / `X_sum` the value is the
    /// count / sum; `X_bucket` gives one series per bucket with its `le` label (`+Inf` last).
    pub fn series(&self, metric: &str) -> Vec<Series> {
        if let Some(f) = self.families.get(metric) {
            return f.series.clone();
        }
        let Some((family, suffix)) = self.derived(metric) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for s in &family.series {
            let Some(h) = &s.histogram else { continue };
            let plain = |value| Series {
                labels: s.labels.clone(),
                value,
                histogram: None,
            };
            match suffix {
                "_count" => out.push(plain(h.count)),
                "_sum" => out.push(plain(h.sum)),
                _ => {
                    for (le, count) in &h.buckets {
                        let mut labels = s.labels.clone();
                        labels.insert("le".into(), format_le(*le));
                        out.push(Series {
                            labels,
                            value: *count,
                            histogram: None,
                        });
                    }
                }
            }
        }
        out
    }

    /// The value of the series of `metric` whose label set is exactly `labels` (no more, no
    /// fewer), for any kind of metric (a histogram gives its count).
    pub fn counter(&self, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.series(metric)
            .into_iter()
            .find(|s| s.is_exactly(labels))
            .map(|s| s.value)
    }

    /// The histogram of `metric` with exactly `labels`.
    pub fn histogram(&self, metric: &str, labels: &[(&str, &str)]) -> Option<Histogram> {
        self.series(metric)
            .into_iter()
            .find(|s| s.is_exactly(labels))
            .and_then(|s| s.histogram)
    }

    /// The series of `metric` having (at least) the labels in `subset`.
    pub fn matching(&self, metric: &str, subset: &[(&str, &str)]) -> Vec<Series> {
        self.series(metric)
            .into_iter()
            .filter(|s| s.matches(subset))
            .collect()
    }

    /// The sum of the values of [`Scrape::matching`]; 0 when none match.
    pub fn sum(&self, metric: &str, subset: &[(&str, &str)]) -> f64 {
        self.matching(metric, subset).iter().map(|s| s.value).sum()
    }

    fn derived(&self, metric: &str) -> Option<(&Family, &'static str)> {
        ["_count", "_sum", "_bucket"]
            .into_iter()
            .find_map(|suffix| {
                let family = self.families.get(metric.strip_suffix(suffix)?)?;
                let ok = match suffix {
                    "_bucket" => family.kind == Kind::Histogram,
                    _ => matches!(family.kind, Kind::Histogram | Kind::Summary),
                };
                ok.then_some((family, suffix))
            })
    }
}

fn convert(value: &PrometheusValue) -> (f64, Option<Histogram>) {
    match value {
        PrometheusValue::Counter(c) => (c.value.as_f64(), None),
        PrometheusValue::Gauge(n) | PrometheusValue::Unknown(n) => (n.as_f64(), None),
        PrometheusValue::Histogram(h) => {
            let count = h.count.map_or(0.0, |c| c as f64);
            let buckets = h
                .buckets
                .iter()
                .map(|b| (b.upper_bound, b.count.as_f64()))
                .collect();
            let sum = h.sum.map_or(0.0, |s| s.as_f64());
            (
                count,
                Some(Histogram {
                    count,
                    sum,
                    buckets,
                    quantiles: Vec::new(),
                }),
            )
        }
        PrometheusValue::Summary(s) => {
            let count = s.count.map_or(0.0, |c| c as f64);
            let quantiles = s
                .quantiles
                .iter()
                .map(|q| (q.quantile, q.value.as_f64()))
                .collect();
            let sum = s.sum.map_or(0.0, |v| v.as_f64());
            (
                count,
                Some(Histogram {
                    count,
                    sum,
                    buckets: Vec::new(),
                    quantiles,
                }),
            )
        }
    }
}

fn format_le(le: f64) -> String {
    if le == f64::INFINITY {
        "+Inf".to_string()
    } else {
        le.to_string()
    }
}

/// The parser's message says neither where nor which family: parse each `# TYPE` block
/// alone to find the first failing one.
fn describe_error(text: &str, error: &str) -> String {
    let mut blocks: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with("# TYPE ") || blocks.is_empty() {
            blocks.push(String::new());
        }
        if let Some(block) = blocks.last_mut() {
            block.push_str(line);
            block.push('\n');
        }
    }
    for block in &blocks {
        if parse_prometheus(block).is_err() {
            let head: Vec<&str> = block.lines().take(6).collect();
            return format!(
                "cannot parse Prometheus text: {error}; in this family:\n{}",
                head.join("\n")
            );
        }
    }
    format!("cannot parse Prometheus text: {error}")
}

/// `text` without the histograms whose name ends in `_count` (Envoy's HTTP/2 clusters have
/// `http2.cookie_count`): the parser takes their `X_count_count` sample for family `X_count`'s
/// and rejects the page. None of them is a metric the tests look at.
fn without_count_histograms(text: &str) -> std::borrow::Cow<'_, str> {
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" histogram"))
        .filter(|n| n.ends_with("_count"))
        .collect();
    if names.is_empty() {
        return std::borrow::Cow::Borrowed(text);
    }
    let of_dropped = |line: &str| {
        let line = line.strip_prefix("# TYPE ").unwrap_or(line);
        names.iter().any(|n| {
            line.strip_prefix(n).is_some_and(|rest| {
                let rest = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| rest.strip_prefix(s))
                    .unwrap_or(rest);
                rest.starts_with(['{', ' '])
            })
        })
    };
    let mut out = String::with_capacity(text.len());
    for line in text.lines().filter(|l| !of_dropped(l)) {
        out.push_str(line);
        out.push('\n');
    }
    std::borrow::Cow::Owned(out)
}
