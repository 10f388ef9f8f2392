//! The per-edge numbers, each one PromQL query against the demo's Prometheus, as Istio's
//! dashboards and Kiali's edge panel compute them: rates over the run's window from the
//! source reporter (the side Kiali's graph takes edges from), error % as 4xx/5xx (gRPC:
//! statuses 1–16) over all, latency quantiles by `histogram_quantile` over
//! `istio_request_duration_milliseconds_bucket`, and for TCP bytes/s and connections.

use crate::demo::graph::Node;
use crate::prometheus::Prometheus;

/// One row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub source: String,
    pub destination: String,
    pub protocol: String,
    /// Requests/s, or for TCP bytes/s (sent + received).
    pub rate: f64,
    /// Error %, or for TCP connections opened over the run.
    pub errors_or_connections: f64,
    /// p50/p90/p99 in ms (requests only).
    pub latency: Option<[f64; 3]>,
}

fn selector(source: &Node, destination: &Node) -> String {
    let side = |prefix: &str, n: &Node| match n {
        Node::Workload {
            namespace, name, ..
        } => format!(r#",{prefix}_workload="{name}",{prefix}_workload_namespace="{namespace}""#),
        Node::Service { namespace, name } => {
            format!(r#",{prefix}_service_name="{name}",{prefix}_service_namespace="{namespace}""#)
        }
        Node::Unknown => format!(r#",{prefix}_workload="unknown""#),
    };
    // The unknown caller is only ever seen by the destination's sidecar.
    let reporter = if *source == Node::Unknown {
        "destination"
    } else {
        "source"
    };
    format!(
        "reporter=\"{reporter}\"{}{}",
        side("source", source),
        side("destination", destination)
    )
}

/// The queries of one row, in column order.
pub fn queries(source: &Node, destination: &Node, protocol: &str, window_secs: u64) -> Vec<String> {
    let sel = selector(source, destination);
    let w = window_secs;
    if protocol == "tcp" {
        return vec![
            format!("sum(rate(istio_tcp_sent_bytes_total{{{sel}}}[{w}s])) + sum(rate(istio_tcp_received_bytes_total{{{sel}}}[{w}s]))"),
            format!("sum(increase(istio_tcp_connections_opened_total{{{sel}}}[{w}s]))"),
        ];
    }
    let sel = format!("{sel},request_protocol=\"{protocol}\"");
    let failed = if protocol == "grpc" {
        r#"grpc_response_status=~"[1-9]|1[0-6]""#
    } else {
        r#"response_code=~"[45]..""#
    };
    let mut out = vec![
        format!("sum(rate(istio_requests_total{{{sel}}}[{w}s]))"),
        format!("100 * (sum(rate(istio_requests_total{{{sel},{failed}}}[{w}s])) or vector(0)) / sum(rate(istio_requests_total{{{sel}}}[{w}s]))"),
    ];
    for q in ["0.50", "0.90", "0.99"] {
        out.push(format!(
            "histogram_quantile({q}, sum(rate(istio_request_duration_milliseconds_bucket{{{sel}}}[{w}s])) by (le))"
        ));
    }
    out
}

/// The single number a query returns (NaN when it returns nothing).
pub fn scalar(prom: &Prometheus, q: &str) -> Result<f64, String> {
    let result = prom.query(q).map_err(|e| format!("{q}: {e}"))?;
    Ok(result
        .first()
        .and_then(|s| s["value"][1].as_str())
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN))
}

fn label(n: &Node) -> String {
    match n {
        Node::Workload {
            namespace, name, ..
        } => format!("{name}.{namespace}"),
        Node::Service { namespace, name } => format!("{name}.{namespace} (service)"),
        Node::Unknown => "unknown".to_string(),
    }
}

/// The row of one edge; `verbose` prints the queries.
pub fn row(
    prom: &Prometheus,
    source: &Node,
    destination: &Node,
    protocol: &str,
    window_secs: u64,
    verbose: bool,
) -> Result<Row, String> {
    let qs = queries(source, destination, protocol, window_secs);
    let mut v = Vec::new();
    for q in &qs {
        if verbose {
            println!("  promql: {q}");
        }
        v.push(scalar(prom, q)?);
    }
    Ok(Row {
        source: label(source),
        destination: label(destination),
        protocol: protocol.to_string(),
        rate: v[0],
        errors_or_connections: v[1],
        latency: (v.len() == 5).then(|| [v[2], v[3], v[4]]),
    })
}

/// The table as text, one line per row.
pub fn render(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<34} {:<30} {:<5} {:>11} {:>8} {:>8} {:>8} {:>8}\n",
        "source", "destination", "proto", "rate", "error %", "p50 ms", "p90 ms", "p99 ms"
    );
    for r in rows {
        match r.latency {
            Some([p50, p90, p99]) => out.push_str(&format!(
                "{:<34} {:<30} {:<5} {:>7.2} rps {:>8.2} {:>8.1} {:>8.1} {:>8.1}\n",
                r.source, r.destination, r.protocol, r.rate, r.errors_or_connections, p50, p90, p99
            )),
            None => out.push_str(&format!(
                "{:<34} {:<30} {:<5} {:>7.0} B/s {:>8} {}\n",
                r.source,
                r.destination,
                r.protocol,
                r.rate,
                "-",
                format_args!("{:.0} connections", r.errors_or_connections)
            )),
        }
    }
    out
}
