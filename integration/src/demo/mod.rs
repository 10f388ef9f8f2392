//! The `make run` demo, shared by `meshstats-demo` and `tests/demo_mesh.rs`: bookinfo on
//! loopback ([`topology`]), scraped by a real Prometheus, traffic through the ingress
//! gateway, then the graph Kiali would draw ([`graph`], as SVG by Graphviz) and the per-edge
//! numbers Istio's dashboards would show ([`table`]), every one a PromQL query.

pub mod backends;
pub mod graph;
pub mod grpc;
pub mod table;
pub mod topology;

use crate::http::http_get;
use crate::prometheus::Prometheus;
use graph::Graph;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use topology::{Mesh, NAMESPACE};

/// What the traffic did: requests sent through the gateway, and those not answered 200.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    pub requests: u64,
    pub failed: u64,
}

/// The mesh and the Prometheus scraping every Envoy of it.
pub struct Demo {
    pub mesh: Mesh,
    pub prometheus: Prometheus,
    traffic_secs: u64,
}

/// The end of a run: the graph, the table rows and where the picture is.
pub struct Report {
    pub graph: Graph,
    pub rows: Vec<table::Row>,
    pub svg: PathBuf,
    pub window_secs: u64,
}

impl Demo {
    /// Starts the mesh, sends one request (so every series exists from Prometheus's first
    /// scrape and `rate()` sees all later traffic), then Prometheus, and waits until it has
    /// scraped every Envoy twice.
    pub fn start() -> Result<Demo, String> {
        let mesh = Mesh::start()?;
        let warm = http_get(
            mesh.entry,
            "/productpage",
            &[("host", "bookinfo.example.com")],
        )?;
        if warm.status != 200 {
            return Err(format!(
                "first request: {} {}",
                warm.status,
                warm.body.trim()
            ));
        }
        let prometheus = Prometheus::start(&mesh.targets())?;
        prometheus.wait_up(mesh.proxies.len(), 2)?;
        Ok(Demo {
            mesh,
            prometheus,
            traffic_secs: 0,
        })
    }

    /// `GET /productpage` through the gateway, `rate` a second for `duration` (sequential, so
    /// at most that rate), with a progress line on stderr (one updating line on a terminal,
    /// a line every 5 s otherwise).
    pub fn traffic(&mut self, duration: Duration, rate: u32) -> Sent {
        let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
        let total = (duration.as_secs_f64() * f64::from(rate.max(1))).ceil() as u64;
        let tty = std::io::stderr().is_terminal();
        let start = Instant::now();
        let mut sent = Sent::default();
        let mut last_line = Instant::now();
        while sent.requests < total && start.elapsed() < duration + Duration::from_secs(30) {
            let due = start + interval.mul_f64(sent.requests as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let ok = matches!(
                http_get(self.mesh.entry, "/productpage", &[("host", "bookinfo.example.com")]),
                Ok(r) if r.status == 200
            );
            sent.requests += 1;
            sent.failed += u64::from(!ok);
            let line = format!(
                "traffic: {}/{total} requests through the gateway, {} failed, ratings answered {}, {:.0} s",
                sent.requests,
                sent.failed,
                self.mesh.ratings.requests(),
                start.elapsed().as_secs_f64()
            );
            if tty {
                eprint!("\r{line}\x1b[K");
                let _ = std::io::stderr().flush();
            } else if last_line.elapsed() >= Duration::from_secs(5) || sent.requests == total {
                eprintln!("{line}");
                last_line = Instant::now();
            }
        }
        if tty {
            eprintln!();
        }
        self.traffic_secs = start.elapsed().as_secs().max(1);
        sent
    }

    /// Waits for Prometheus to scrape what the traffic left (counters at once, histograms at
    /// the next stats flush), then builds the graph, draws it into `svg` and queries every
    /// edge's row. `verbose` prints every query.
    pub fn report(&self, svg: &Path, verbose: bool) -> Result<Report, String> {
        // Two scrape intervals: every Envoy's last counters are in.
        std::thread::sleep(Duration::from_millis(2500));
        let window_secs = self.traffic_secs + 3;
        if verbose {
            println!("graph (Kiali's queries, namespace {NAMESPACE}):");
        }
        let graph = graph::build(&self.prometheus, NAMESPACE, window_secs, verbose)?;
        graph::render_svg(&graph::to_dot(&graph), svg)?;
        if verbose {
            println!("table:");
        }
        let mut rows = Vec::new();
        for (s, d, protocol) in graph.edges.keys() {
            rows.push(table::row(
                &self.prometheus,
                s,
                d,
                protocol,
                window_secs,
                verbose,
            )?);
        }
        Ok(Report {
            graph,
            rows,
            svg: svg.to_path_buf(),
            window_secs,
        })
    }

    /// The last `n` JSON access-log lines the `job` sidecar wrote on its stdout.
    pub fn log_lines(&self, job: &str, n: usize) -> Vec<String> {
        let Some(p) = self.mesh.proxy(job) else {
            return Vec::new();
        };
        let text = String::from_utf8_lossy(&p.envoy.stdout()).into_owned();
        let lines: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(str::to_string)
            .collect();
        lines[lines.len().saturating_sub(n)..].to_vec()
    }
}
