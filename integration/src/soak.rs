//! The soak: a fixed number of requests through the two Bookinfo sidecars, half over
//! keep-alive connections and half each on a new connection, then the exact accounting on
//! each side: `istio_requests_total` = `istio_request_duration_milliseconds_count` = JSON
//! access log lines on stdout = requests sent, and Envoy's `filesystem.write_failed` = 0.
//! `make soak` runs it with 1,000,000 requests (`meshstats-soak`), `make test` a short one
//! (`tests/soak.rs`).

use crate::backend::Backend;
use crate::envoy::Envoy;
use crate::lds::envoy_stat;
use crate::load::{self, LoadOptions, LoadResult};
use crate::mesh::{Bookinfo, Sidecar};
use serde_json::Value;
use std::fmt;
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

/// One small log entry per request, so that a million of them stay a few hundred MB.
pub const CONFIG: &str = r#"{"logs": [{"name": "soak", "variables": {
    "code": "response.code | 0", "id": "request.id | \"\""}}]}"#;

const HOST: &str = "ratings:9080";
/// Istio's `--file-flush-interval-msec`.
const FILE_FLUSH: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoakOptions {
    /// Requests in total; half of them keep-alive.
    pub requests: u64,
    /// Concurrent connections, half of them keep-alive, half a new connection per request.
    pub connections: usize,
    /// The load stops after this long even if not all requests were sent.
    pub budget: Duration,
}

/// What one sidecar counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideCounts {
    pub name: String,
    /// `istio_requests_total`, all series.
    pub requests_total: u64,
    /// `istio_request_duration_milliseconds_count`, all series.
    pub duration_count: u64,
    /// Lines on stdout that are JSON objects with `code` 200.
    pub log_lines: u64,
    /// Lines on stdout that are anything else.
    pub bad_lines: u64,
    pub write_failed: u64,
}

#[derive(Debug, Clone)]
pub struct SoakReport {
    pub keep_alive: LoadResult,
    pub new_connections: LoadResult,
    /// Wall-clock time of the load.
    pub elapsed: Duration,
    pub sides: Vec<SideCounts>,
}

impl SoakReport {
    /// Requests answered 200.
    pub fn sent(&self) -> u64 {
        self.keep_alive.ok() + self.new_connections.ok()
    }

    pub fn failures(&self) -> u64 {
        self.keep_alive.failures() + self.new_connections.failures()
    }

    /// Every way the accounting can be off, as sentences; empty when it is exact.
    pub fn problems(&self, requests: u64) -> Vec<String> {
        let mut p = Vec::new();
        let sent = self.sent();
        if self.failures() > 0 || sent != requests {
            p.push(format!(
                "{sent} of {requests} requests answered 200, {} failed: {:?} {:?}",
                self.failures(),
                self.keep_alive.errors,
                self.new_connections.errors
            ));
        }
        for s in &self.sides {
            let counts = [
                ("istio_requests_total", s.requests_total),
                (
                    "istio_request_duration_milliseconds_count",
                    s.duration_count,
                ),
                ("JSON log lines", s.log_lines),
            ];
            for (what, n) in counts {
                if n != sent {
                    p.push(format!("{}: {what} = {n}, requests sent = {sent}", s.name));
                }
            }
            if s.bad_lines > 0 || s.write_failed > 0 {
                p.push(format!(
                    "{}: {} other lines on stdout, filesystem.write_failed = {}",
                    s.name, s.bad_lines, s.write_failed
                ));
            }
        }
        p
    }
}

impl fmt::Display for SoakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "soak: {} requests answered 200 ({} keep-alive, {} on new connections), {} failed, \
             in {:.1} s ({:.0}/s)",
            self.sent(),
            self.keep_alive.ok(),
            self.new_connections.ok(),
            self.failures(),
            self.elapsed.as_secs_f64(),
            self.sent() as f64 / self.elapsed.as_secs_f64().max(1e-9)
        )?;
        for s in &self.sides {
            writeln!(
                f,
                "  {}: istio_requests_total {}, istio_request_duration_milliseconds_count {}, \
                 JSON log lines {} (other lines {}), filesystem.write_failed {}",
                s.name,
                s.requests_total,
                s.duration_count,
                s.log_lines,
                s.bad_lines,
                s.write_failed
            )?;
        }
        Ok(())
    }
}

/// Counts the complete lines of `envoy`'s stdout, reading the file as a stream.
fn count_lines(envoy: &Envoy) -> Result<(u64, u64), String> {
    let path = envoy.dir().join("stdout.log");
    let file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let (mut good, mut bad) = (0, 0);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 || line.last() != Some(&b'\n') {
            // A partial last line is still being written.
            return Ok((good, bad));
        }
        match serde_json::from_slice::<Value>(&line) {
            Ok(v) if v["code"] == 200 => good += 1,
            _ => bad += 1,
        }
    }
}

fn side_counts(envoy: &Envoy) -> Result<SideCounts, String> {
    let scrape = envoy.prometheus()?;
    let (log_lines, bad_lines) = count_lines(envoy)?;
    Ok(SideCounts {
        name: envoy.name().to_string(),
        requests_total: scrape.sum("istio_requests_total", &[]) as u64,
        duration_count: scrape.sum("istio_request_duration_milliseconds_count", &[]) as u64,
        log_lines,
        bad_lines,
        write_failed: envoy_stat(envoy, "filesystem.write_failed")?,
    })
}

/// Runs the soak: starts a backend and the two sidecars, sends the load, then waits (up to
/// 60 s) until both sidecars account for every request, or their counts stop moving.
pub fn run(options: &SoakOptions) -> Result<SoakReport, String> {
    let app = Backend::start();
    let sidecar = |s: Sidecar| Sidecar {
        file_flush_interval: Some(FILE_FLUSH),
        ..s.config(CONFIG)
    };
    let mesh = Bookinfo::start_with(app.addr(), sidecar, sidecar)?;

    let half = options.requests / 2;
    let keep = LoadOptions {
        max_requests: Some(options.requests - half),
        ..LoadOptions::new(
            options.connections.div_ceil(2).max(1),
            options.budget,
            "/ratings/7",
            HOST,
        )
    };
    let fresh = LoadOptions {
        connections: (options.connections / 2).max(1),
        max_requests: Some(half),
        requests_per_connection: 1,
        ..keep.clone()
    };
    let entry = mesh.entry;
    let start = Instant::now();
    let other = std::thread::spawn(move || load::run(entry, &fresh));
    let keep_alive = load::run(entry, &keep);
    let new_connections = other
        .join()
        .map_err(|_| "load thread panicked".to_string())?;
    let elapsed = start.elapsed();
    let sent = keep_alive.ok() + new_connections.ok();

    let settle = Instant::now();
    let mut sides = Vec::new();
    for envoy in [&mesh.client, &mesh.server] {
        let mut counts = side_counts(envoy)?;
        // Histograms and log lines arrive at the next stats / file flush, counters at the
        // filter's next tick (they are summed in the VM).
        while (counts.requests_total < sent
            || counts.duration_count < sent
            || counts.log_lines < sent)
            && settle.elapsed() < Duration::from_secs(60)
        {
            std::thread::sleep(FILE_FLUSH);
            counts = side_counts(envoy)?;
        }
        sides.push(counts);
    }
    // One more flush: anything counted twice would show now.
    std::thread::sleep(FILE_FLUSH * 2);
    let mut sides_after = Vec::new();
    for envoy in [&mesh.client, &mesh.server] {
        sides_after.push(side_counts(envoy)?);
    }
    if sides_after != sides {
        return Err(format!(
            "counts still moving after the load: {sides:?} then {sides_after:?}"
        ));
    }
    Ok(SoakReport {
        keep_alive,
        new_connections,
        elapsed,
        sides,
    })
}
