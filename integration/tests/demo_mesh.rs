//! `make run`'s mesh, briefly (20 s of traffic at 10 requests/s through the gateway), checked
//! end to end through Prometheus with the demo's own code (`meshstats_integration::demo`):
//!
//! - the graph built from Kiali's queries over `istio_requests_total` and
//!   `istio_tcp_sent_bytes_total` is exactly the topology the demo started: every edge with
//!   its protocol, every node with its namespace, app and version, nothing else (no
//!   `unknown` caller, no service-only node). The TCP edge (ratings-v1 → mongodb-v1, mTLS)
//!   is joined by TCP metadata exchange; without it the graph would show
//!   `unknown → mongodb-v1` and `ratings-v1 → mongodb (service)`;
//! - each caller's edge into ratings-v1 has exactly the errors its every-20th-request-503
//!   pattern makes, from Prometheus's raw counters, on both reporters;
//! - the SVG Graphviz drew holds every node and edge (its `<title>`s).
//!
//! Needs `/usr/bin/prometheus` and Graphviz `dot` (`make setup` installs both).

use meshstats_integration::demo::backends::RATINGS_ERROR_EVERY;
use meshstats_integration::demo::graph::{svg_titles, Node};
use meshstats_integration::demo::table::scalar;
use meshstats_integration::demo::topology::{node, EDGES, RATINGS, WORKLOADS};
use meshstats_integration::demo::Demo;
use meshstats_integration::scratch_dir;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

type Edge = (Node, Node, String);

#[test]
fn demo_mesh_graph_is_the_topology_and_ratings_errors_are_exact() {
    let t0 = Instant::now();
    let mut demo = Demo::start().unwrap_or_else(|e| panic!("{e}"));
    let up = t0.elapsed();
    let sent = demo.traffic(Duration::from_secs(20), 10);
    assert_eq!(sent.failed, 0, "{sent:?}");
    assert_eq!(sent.requests, 200);
    let svg_path = scratch_dir("demo-mesh").join("graph.svg");
    let report = demo
        .report(&svg_path, false)
        .unwrap_or_else(|e| panic!("{e}"));

    // The graph's edges and nodes are the topology's, exactly.
    let expected: BTreeSet<Edge> = EDGES
        .iter()
        .map(|e| {
            (
                node(&e.source),
                node(&e.destination),
                e.protocol.to_string(),
            )
        })
        .collect();
    let got: BTreeSet<Edge> = report.graph.edges.keys().cloned().collect();
    assert_eq!(got, expected, "the graph's edges");
    let nodes: BTreeSet<Node> = WORKLOADS.iter().map(node).collect();
    assert_eq!(report.graph.nodes(), nodes, "the graph's nodes");
    for ((s, d, p), t) in &report.graph.edges {
        assert!(t.rate > 0.0, "{s:?} -> {d:?} ({p}): {t:?}");
    }

    // ratings-v1's answers, per caller: every 20th of each caller's requests was a 503, each
    // counted once by ratings' sidecar and once by the caller's, raw counters.
    let prom = &demo.prometheus;
    let answered = demo.mesh.ratings_callers.snapshot();
    let callers: Vec<&str> = answered.keys().map(String::as_str).collect();
    assert_eq!(callers, ["reviews-v2", "reviews-v3"], "ratings' callers");
    let mut total_errors = 0;
    for (caller, want) in &answered {
        assert_eq!(want.errors, want.total / RATINGS_ERROR_EVERY, "{caller}");
        assert!(want.errors >= 2, "{caller}: {want:?}");
        total_errors += want.errors;
        let edge = format!(
            r#"source_workload="{caller}",destination_workload="{}",destination_workload_namespace="{}""#,
            RATINGS.name, RATINGS.namespace
        );
        let count = |reporter: &str, code: &str| {
            let q = format!(
                r#"sum(istio_requests_total{{reporter="{reporter}",{edge}{code}}}) or vector(0)"#
            );
            scalar(prom, &q).unwrap_or_else(|e| panic!("{e}"))
        };
        for reporter in ["destination", "source"] {
            let start = Instant::now();
            while count(reporter, "") != want.total as f64
                && start.elapsed() < Duration::from_secs(10)
            {
                std::thread::sleep(Duration::from_millis(250));
            }
            assert_eq!(
                count(reporter, ""),
                want.total as f64,
                "{reporter}: {caller} → ratings"
            );
            assert_eq!(
                count(reporter, r#",response_code="503""#),
                want.errors as f64,
                "{reporter}: 503s of {caller} → ratings ({want:?})"
            );
            assert_eq!(
                count(reporter, r#",response_code="200""#),
                (want.total - want.errors) as f64,
                "{reporter}: 200s of {caller} → ratings"
            );
        }
    }

    // The picture: Graphviz's SVG names every node and edge in a <title>.
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    let titles: BTreeSet<String> = svg_titles(&svg).into_iter().collect();
    for n in &nodes {
        assert!(
            titles.contains(&n.id()),
            "no node {} in the SVG: {titles:?}",
            n.id()
        );
    }
    let edge_titles: BTreeSet<String> = EDGES
        .iter()
        .map(|e| format!("{}->{}", node(&e.source).id(), node(&e.destination).id()))
        .collect();
    let drawn: BTreeSet<String> = titles
        .iter()
        .filter(|t| t.contains("->"))
        .cloned()
        .collect();
    assert_eq!(drawn, edge_titles, "the SVG's edges");

    eprintln!(
        "demo mesh: {} Envoys up in {:.1} s; {} requests, ratings-v1 {} with {total_errors} × 503; {:.1} s",
        demo.mesh.proxies.len(),
        up.as_secs_f64(),
        sent.requests,
        demo.mesh.ratings.requests(),
        t0.elapsed().as_secs_f64()
    );
}
