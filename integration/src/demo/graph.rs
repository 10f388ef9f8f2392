//! The service graph as Kiali builds it from Prometheus (its `graph/telemetry/istio`
//! queries for one namespace), drawn with Graphviz `dot` as Kiali's versioned-app graph
//! looks: a node per workload, boxed by app, edges labelled and coloured by error rate.
//!
//! Kiali's six queries for namespace NS over a window W (`istio_requests_total`, then
//! `istio_tcp_sent_bytes_total`, each):
//! 1. `reporter="destination", source_workload="unknown", destination_workload_namespace="NS"`:
//!    callers without a sidecar, shown as one `unknown` node;
//! 2. `reporter="source", source_workload_namespace!="NS", source_workload!="unknown",
//!    destination_service_namespace="NS"`: callers from other namespaces (the gateway);
//! 3. `reporter="source", source_workload_namespace="NS"`: everything NS's workloads call.

use crate::prometheus::Prometheus;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Kiali's `groupBy` of the request queries, and of the TCP ones.
const HTTP_GROUP_BY: &str = "source_workload_namespace,source_workload,source_canonical_service,source_canonical_revision,destination_service_namespace,destination_service,destination_service_name,destination_workload_namespace,destination_workload,destination_canonical_service,destination_canonical_revision,request_protocol,response_code,grpc_response_status,response_flags";
const TCP_GROUP_BY: &str = "source_workload_namespace,source_workload,source_canonical_service,source_canonical_revision,destination_service_namespace,destination_service,destination_service_name,destination_workload_namespace,destination_workload,destination_canonical_service,destination_canonical_revision,response_flags";

/// Kiali's default health tolerances for requests (4xx/5xx, and gRPC statuses 1–16): from
/// this error percentage an edge is degraded (orange), and from [`FAILURE_PERCENT`] failing
/// (red); below, healthy (green).
pub const DEGRADED_PERCENT: f64 = 0.1;
pub const FAILURE_PERCENT: f64 = 20.0;

/// A graph node: a workload, a service whose workload the telemetry does not know, or the
/// `unknown` caller.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Node {
    Workload {
        namespace: String,
        name: String,
        app: String,
        version: String,
    },
    Service {
        namespace: String,
        name: String,
    },
    Unknown,
}

impl Node {
    /// The node's Graphviz name, and its `<title>` in the SVG: `name.namespace`.
    pub fn id(&self) -> String {
        match self {
            Node::Workload {
                namespace, name, ..
            } => format!("{name}.{namespace}"),
            Node::Service { namespace, name } => format!("svc:{name}.{namespace}"),
            Node::Unknown => "unknown".to_string(),
        }
    }

    /// The box a node is drawn in: its app (Kiali's app box), per namespace.
    fn group(&self) -> Option<(String, String)> {
        match self {
            Node::Workload { namespace, app, .. } => Some((namespace.clone(), app.clone())),
            _ => None,
        }
    }
}

/// Traffic of one edge over the window: requests/s and erroring requests/s, or for TCP
/// bytes/s (`sent`, Kiali's TCP measure).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Traffic {
    pub rate: f64,
    pub errors: f64,
}

impl Traffic {
    pub fn error_percent(&self) -> f64 {
        if self.rate > 0.0 {
            100.0 * self.errors / self.rate
        } else {
            0.0
        }
    }
}

/// Edges keyed by (source, destination, protocol).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Graph {
    pub edges: BTreeMap<(Node, Node, String), Traffic>,
}

impl Graph {
    pub fn nodes(&self) -> BTreeSet<Node> {
        self.edges
            .keys()
            .flat_map(|(s, d, _)| [s.clone(), d.clone()])
            .collect()
    }
}

/// Kiali's queries for `namespace` over the last `window_secs`, in the order it runs them.
pub fn kiali_queries(namespace: &str, window_secs: u64) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    for (tcp, metric, group_by) in [
        (false, "istio_requests_total", HTTP_GROUP_BY),
        (true, "istio_tcp_sent_bytes_total", TCP_GROUP_BY),
    ] {
        for selector in [
            format!(
                r#"reporter="destination",source_workload="unknown",destination_workload_namespace="{namespace}""#
            ),
            format!(
                r#"reporter="source",source_workload_namespace!="{namespace}",source_workload!="unknown",destination_service_namespace="{namespace}""#
            ),
            format!(r#"reporter="source",source_workload_namespace="{namespace}""#),
        ] {
            out.push((
                tcp,
                format!("sum(rate({metric}{{{selector}}}[{window_secs}s])) by ({group_by})"),
            ));
        }
    }
    out
}

fn ok(v: &str) -> bool {
    !v.is_empty() && v != "unknown"
}

/// Builds the graph from Kiali's queries; `verbose` prints each query.
pub fn build(
    prom: &Prometheus,
    namespace: &str,
    window_secs: u64,
    verbose: bool,
) -> Result<Graph, String> {
    let mut graph = Graph::default();
    for (tcp, q) in kiali_queries(namespace, window_secs) {
        if verbose {
            println!("  promql: {q}");
        }
        for series in prom.query(&q).map_err(|e| format!("{q}: {e}"))? {
            let m = &series["metric"];
            let l = |k: &str| m[k].as_str().unwrap_or_default().to_string();
            let value: f64 = series["value"][1]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            let source = if ok(&l("source_workload")) {
                Node::Workload {
                    namespace: l("source_workload_namespace"),
                    name: l("source_workload"),
                    app: l("source_canonical_service"),
                    version: l("source_canonical_revision"),
                }
            } else {
                Node::Unknown
            };
            // As Kiali: a destination without a known workload is its service's node; with
            // neither, the telemetry is unusable and skipped.
            let destination = if ok(&l("destination_workload")) {
                Node::Workload {
                    namespace: l("destination_workload_namespace"),
                    name: l("destination_workload"),
                    app: l("destination_canonical_service"),
                    version: l("destination_canonical_revision"),
                }
            } else if ok(&l("destination_service_name")) {
                Node::Service {
                    namespace: l("destination_service_namespace"),
                    name: l("destination_service_name"),
                }
            } else {
                continue;
            };
            let protocol = if tcp {
                "tcp".to_string()
            } else {
                l("request_protocol")
            };
            let failed = !tcp
                && match protocol.as_str() {
                    "grpc" => l("grpc_response_status") != "0",
                    _ => {
                        let code = l("response_code");
                        code.starts_with('4') || code.starts_with('5') || code == "0"
                    }
                };
            let t = graph
                .edges
                .entry((source, destination, protocol))
                .or_default();
            t.rate += value;
            if failed {
                t.errors += value;
            }
        }
    }
    Ok(graph)
}

/// Kiali's edge colour for a request error percentage; TCP edges are blue.
pub fn colour(protocol: &str, error_percent: f64) -> &'static str {
    if protocol == "tcp" {
        "#0066cc"
    } else if error_percent >= FAILURE_PERCENT {
        "#c9190b"
    } else if error_percent >= DEGRADED_PERCENT {
        "#f0ab00"
    } else {
        "#3e8635"
    }
}

/// A Graphviz string; `\\n` in it stays a line break.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\\\""))
}

/// The graph in Graphviz's language.
pub fn to_dot(graph: &Graph) -> String {
    let mut out = String::from(
        "digraph mesh {\n  rankdir=LR;\n  fontname=\"Helvetica\";\n  node [shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\", fontname=\"Helvetica\", fontsize=11];\n  edge [fontname=\"Helvetica\", fontsize=9];\n",
    );
    let nodes = graph.nodes();
    let mut groups: BTreeMap<(String, String), Vec<&Node>> = BTreeMap::new();
    for n in &nodes {
        match n.group() {
            Some(g) => groups.entry(g).or_default().push(n),
            None => {
                let label = match n {
                    Node::Service { name, namespace } => format!("{name}\\n(service, {namespace})"),
                    _ => "unknown".to_string(),
                };
                out.push_str(&format!(
                    "  {} [label={}, shape=triangle, fillcolor=\"#f5f5f5\"];\n",
                    quote(&n.id()),
                    quote(&label)
                ));
            }
        }
    }
    for ((namespace, app), members) in &groups {
        out.push_str(&format!(
            "  subgraph {} {{\n    label={};\n    style=\"rounded,dashed\";\n    color=\"#8a8d90\";\n",
            quote(&format!("cluster_{app}.{namespace}")),
            quote(&format!("{app} ({namespace})"))
        ));
        for n in members {
            if let Node::Workload { name, version, .. } = n {
                out.push_str(&format!(
                    "    {} [label={}];\n",
                    quote(&n.id()),
                    quote(&format!("{name}\\n{version}"))
                ));
            }
        }
        out.push_str("  }\n");
    }
    for ((s, d, protocol), t) in &graph.edges {
        let label = if protocol == "tcp" {
            format!("tcp\\n{:.0} B/s", t.rate)
        } else {
            format!(
                "{protocol}\\n{:.2} rps\\n{:.1}% err",
                t.rate,
                t.error_percent()
            )
        };
        out.push_str(&format!(
            "  {} -> {} [label={}, color={}, fontcolor={}, penwidth=2];\n",
            quote(&s.id()),
            quote(&d.id()),
            quote(&label),
            quote(colour(protocol, t.error_percent())),
            quote(colour(protocol, t.error_percent()))
        ));
    }
    out.push_str("}\n");
    out
}

/// Renders `dot_text` to the SVG file `svg` with Graphviz's `dot` (`$DOT_BIN`, else `dot`
/// on PATH, which `make setup` installs), the graph on its stdin.
pub fn render_svg(dot_text: &str, svg: &Path) -> Result<(), String> {
    let bin = std::env::var("DOT_BIN").unwrap_or_else(|_| "dot".to_string());
    let mut child = Command::new(&bin)
        .arg("-Tsvg")
        .arg("-o")
        .arg(svg)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot run {bin}: {e} (Graphviz: `make setup` installs Debian's graphviz as root)"
            )
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(dot_text.as_bytes())
            .map_err(|e| format!("{bin}: writing the graph: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{bin}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{bin} -Tsvg -o {}: {}: {}",
            svg.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// Every `<title>` of an SVG Graphviz wrote (graph, clusters, nodes `a`, edges `a->b`),
/// with its XML escapes resolved.
pub fn svg_titles(svg: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find("<title>") {
        let after = &rest[start + "<title>".len()..];
        let Some(end) = after.find("</title>") else {
            break;
        };
        out.push(unescape(&after[..end]));
        rest = &after[end..];
    }
    out
}

fn unescape(s: &str) -> String {
    s.replace("&#45;", "-")
        .replace("&gt;", ">")
        .replace("&lt;", "<")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(name: &str, app: &str, version: &str) -> Node {
        Node::Workload {
            namespace: "default".into(),
            name: name.into(),
            app: app.into(),
            version: version.into(),
        }
    }

    #[test]
    fn colours_follow_kialis_default_thresholds() {
        assert_eq!(colour("http", 0.0), "#3e8635");
        assert_eq!(colour("http", 0.09), "#3e8635");
        assert_eq!(colour("http", 0.1), "#f0ab00");
        assert_eq!(colour("grpc", 19.9), "#f0ab00");
        assert_eq!(colour("http", 20.0), "#c9190b");
        assert_eq!(colour("tcp", 50.0), "#0066cc");
    }

    /// What `dot` makes of the graph's names: `-` and `>` escaped in `<title>`s.
    #[test]
    fn svg_titles_are_unescaped() {
        let svg = "<g><title>cluster_reviews.default</title></g><g><title>reviews&#45;v2.default</title></g>\
                   <g><title>reviews&#45;v2.default&#45;&gt;ratings&#45;v1.default</title></g>";
        assert_eq!(
            svg_titles(svg),
            [
                "cluster_reviews.default",
                "reviews-v2.default",
                "reviews-v2.default->ratings-v1.default"
            ]
        );
    }

    #[test]
    fn dot_boxes_workloads_by_app_and_labels_edges() {
        let mut graph = Graph::default();
        graph.edges.insert(
            (
                workload("reviews-v2", "reviews", "v2"),
                workload("ratings-v1", "ratings", "v1"),
                "http".into(),
            ),
            Traffic {
                rate: 4.0,
                errors: 0.2,
            },
        );
        graph.edges.insert(
            (
                workload("reviews-v3", "reviews", "v3"),
                workload("ratings-v1", "ratings", "v1"),
                "http".into(),
            ),
            Traffic {
                rate: 4.0,
                errors: 0.0,
            },
        );
        let dot = to_dot(&graph);
        assert_eq!(dot.matches("subgraph ").count(), 2, "{dot}");
        assert!(
            dot.contains("subgraph \"cluster_reviews.default\""),
            "{dot}"
        );
        assert!(
            dot.contains("\"reviews-v2.default\" -> \"ratings-v1.default\" [label=\"http\\n4.00 rps\\n5.0% err\", color=\"#f0ab00\""),
            "{dot}"
        );
        assert!(dot.contains("color=\"#3e8635\""), "{dot}");
    }
}
