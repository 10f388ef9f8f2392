//! `make run`'s mesh, briefly (20 s of traffic at 10 requests/s through the gateway), checked
//! end to end through Prometheus with the demo's own code (`meshstats_integration::demo`):
//!
//! - the graph built from Kiali's queries over `istio_requests_total` and
//!   `istio_tcp_sent_bytes_total` is exactly the topology the demo started: every edge with
//!   its protocol, every node with its namespace, app and version, nothing else (no
//!   `unknown` caller, no service-only node);
//! - ratings-v1's errors are exactly what its every-20th-request-503 pattern makes them, from
//!   Prometheus's raw counters, on both reporters;
//! - the SVG Graphviz drew holds every node and edge (its `<title>`s).
//!
//! The TCP edge (ratings-v1 → mongodb-v1, mTLS) needs TCP metadata exchange for both sides
//! to know each other's workload; without it the graph shows `unknown → mongodb-v1` and
//! `ratings-v1 → mongodb (service)`, and this test fails on that edge, as it should.
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

    // The graph's edges and nodes are the topology's, exactly. The request edges are
    // asserted here; the TCP edge, which needs TCP metadata exchange, at the end, so that a
    // failure there still shows every other check passing.
    let expected: BTreeSet<(Node, Node, String)> = EDGES
        .iter()
        .map(|e| {
            (
                node(&e.source),
                node(&e.destination),
                e.protocol.to_string(),
            )
        })
        .collect();
    let got: BTreeSet<(Node, Node, String)> = report.graph.edges.keys().cloned().collect();
    let requests_only = |edges: &BTreeSet<(Node, Node, String)>| -> BTreeSet<(Node, Node, String)> {
        edges.iter().filter(|e| e.2 != "tcp").cloned().collect()
    };
    assert_eq!(
        requests_only(&got),
        requests_only(&expected),
        "request edges"
    );
    let mut tcp_failures: Vec<String> = Vec::new();
    let missing: Vec<_> = expected.difference(&got).collect();
    let extra: Vec<_> = got.difference(&expected).collect();
    if !missing.is_empty() || !extra.is_empty() {
        tcp_failures.push(format!(
            "graph differs from the topology:\n  missing {missing:?}\n  not in the topology {extra:?}"
        ));
    }
    let nodes: BTreeSet<Node> = WORKLOADS.iter().map(node).collect();
    if report.graph.nodes() != nodes {
        tcp_failures.push(format!(
            "nodes: {:?}, expected {nodes:?}",
            report.graph.nodes()
        ));
    }
    if report.graph.nodes().contains(&Node::Unknown) {
        tcp_failures.push("an `unknown` node".to_string());
    }
    for ((s, d, p), t) in &report.graph.edges {
        assert!(t.rate > 0.0, "{s:?} -> {d:?} ({p}): {t:?}");
    }

    // ratings-v1's answers: every 20th of the requests it got was a 503, each counted once by
    // its own sidecar and once by the caller's (reviews-v2 or -v3), raw counters.
    let prom = &demo.prometheus;
    let want_total = demo.mesh.ratings.requests();
    let want_errors = want_total / RATINGS_ERROR_EVERY;
    assert!(want_errors >= 5, "ratings answered {want_total}");
    let ratings = format!(
        r#"destination_workload="{}",destination_workload_namespace="{}""#,
        RATINGS.name, RATINGS.namespace
    );
    let count = |reporter: &str, code: &str| {
        scalar(
            prom,
            &format!(
                r#"sum(istio_requests_total{{reporter="{reporter}",{ratings}{code}}}) or vector(0)"#
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    for reporter in ["destination", "source"] {
        let start = Instant::now();
        loop {
            let total = count(reporter, "");
            if total == want_total as f64 || start.elapsed() > Duration::from_secs(10) {
                assert_eq!(
                    total, want_total as f64,
                    "{reporter}: requests into ratings-v1"
                );
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        assert_eq!(
            count(reporter, r#",response_code="503""#),
            want_errors as f64,
            "{reporter}: 503s of ratings-v1 ({want_total} requests)"
        );
        assert_eq!(
            count(reporter, r#",response_code="200""#),
            (want_total - want_errors) as f64,
            "{reporter}: 200s of ratings-v1"
        );
    }

    // The picture: Graphviz's SVG names every node and edge in a <title>.
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    let titles: BTreeSet<String> = svg_titles(&svg).into_iter().collect();
    for n in &nodes {
        if !titles.contains(&n.id()) {
            tcp_failures.push(format!("no node {} in the SVG", n.id()));
        }
    }
    for e in &EDGES {
        let title = format!("{}->{}", node(&e.source).id(), node(&e.destination).id());
        if !titles.contains(&title) {
            tcp_failures.push(format!("no edge {title} in the SVG"));
        }
    }
    let drawn_edges = titles.iter().filter(|t| t.contains("->")).count();
    if drawn_edges != EDGES.len() {
        tcp_failures.push(format!(
            "{drawn_edges} edges in the SVG, expected {}",
            EDGES.len()
        ));
    }
    for e in EDGES.iter().filter(|e| e.protocol != "tcp") {
        let title = format!("{}->{}", node(&e.source).id(), node(&e.destination).id());
        assert!(
            titles.contains(&title),
            "no edge {title} in the SVG: {titles:?}"
        );
    }
    assert!(
        tcp_failures.is_empty(),
        "every request edge, ratings-v1's errors and the SVG's request edges are right; the \
         TCP edge is not (it needs TCP metadata exchange, istio-peer-exchange):\n  {}\n\
         SVG titles: {titles:?}",
        tcp_failures.join("\n  ")
    );

    eprintln!(
        "demo mesh: {} Envoys up in {:.1} s; {} requests, ratings-v1 {want_total} with {want_errors} × 503; {:.1} s",
        demo.mesh.proxies.len(),
        up.as_secs_f64(),
        sent.requests,
        t0.elapsed().as_secs_f64()
    );
}
