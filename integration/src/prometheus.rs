//! A real Prometheus scraping Envoy admin endpoints, for checking what a dashboard's queries
//! return over meshstats' series.

use crate::http::http_get;
use crate::paths::free_port;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long [`Prometheus::wait_up`] waits for the targets.
const UP_TIMEOUT: Duration = Duration::from_secs(30);

/// A Prometheus child process scraping its targets' `/stats/prometheus` every second.
/// Dropping it kills the process; if the thread is panicking its log is printed to stderr
/// and its scratch directory kept, otherwise the directory is removed.
pub struct Prometheus {
    addr: SocketAddr,
    dir: PathBuf,
    child: Child,
}

impl Prometheus {
    /// Runs `$PROMETHEUS_BIN` (else `/usr/bin/prometheus`, which `make setup` installs)
    /// on a free port, scraping every `(job, admin address)` of `targets`.
    pub fn start(targets: &[(&str, SocketAddr)]) -> Result<Prometheus, String> {
        let bin = std::env::var_os("PROMETHEUS_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| "/usr/bin/prometheus".into());
        if !bin.exists() {
            return Err(format!(
                "{} not found: run `make setup` (installs Debian's prometheus as root)",
                bin.display()
            ));
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let dir = std::env::temp_dir().join("meshstats-it").join(format!(
            "prometheus-{}-{}",
            std::process::id(),
            addr.port()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let scratch = |e: std::io::Error| format!("prometheus scratch dir {}: {e}", dir.display());
        std::fs::create_dir_all(dir.join("data")).map_err(scratch)?;
        std::fs::write(dir.join("prometheus.yml"), config(targets)).map_err(scratch)?;
        let log = std::fs::File::create(dir.join("prometheus.log")).map_err(scratch)?;
        let child = Command::new(&bin)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        Ok(Prometheus { addr, dir, child })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `GET /api/v1/<path>`, the JSON answer (any status: errors come back as JSON too).
    pub fn api(&self, path: &str) -> Result<Value, String> {
        let r = http_get(self.addr, &format!("/api/v1/{path}"), &[])?;
        serde_json::from_str(&r.body).map_err(|e| format!("{path}: {} {e}: {}", r.status, r.body))
    }

    /// An instant query: `Ok(result vector)` or `Err(Prometheus's error)`.
    pub fn query(&self, promql: &str) -> Result<Vec<Value>, String> {
        let v = self.api(&format!("query?query={}", encode(promql)))?;
        if v["status"] != "success" {
            return Err(format!("{}: {}", v["errorType"], v["error"]));
        }
        match &v["data"]["result"] {
            Value::Array(a) => Ok(a.clone()),
            // A scalar or string result: one value.
            other => Ok(vec![serde_json::json!({"metric": {}, "value": other})]),
        }
    }

    /// Waits (up to 30 s) until `targets` targets are active, every one up, and they have
    /// stayed up for `scrapes` scrape intervals.
    pub fn wait_up(&self, targets: usize, scrapes: u32) -> Result<(), String> {
        let start = Instant::now();
        let mut seen_up: Option<Instant> = None;
        let mut last = Value::Null;
        while start.elapsed() < UP_TIMEOUT {
            if let Ok(v) = self.api("targets?state=active") {
                let active = v["data"]["activeTargets"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let up = active.iter().filter(|t| t["health"] == "up").count();
                if active.len() == targets && up == targets {
                    let since = *seen_up.get_or_insert_with(Instant::now);
                    if since.elapsed() >= Duration::from_secs(u64::from(scrapes)) {
                        return Ok(());
                    }
                }
                last = v;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(format!(
            "prometheus targets not all up after {} s: {last}",
            UP_TIMEOUT.as_secs()
        ))
    }

    /// Prometheus's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "===== prometheus log ({}) =====\n{}",
                self.dir.display(),
                self.log()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Scrapes every second, so a test waits seconds, not Prometheus's default minute.
fn config(targets: &[(&str, SocketAddr)]) -> String {
    let mut config = String::from(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n",
    );
    for (job, admin) in targets {
        config.push_str(&format!(
            "  - job_name: {job}\n    metrics_path: /stats/prometheus\n    static_configs:\n      - targets: ['{admin}']\n"
        ));
    }
    config
}

/// Percent-encodes everything but RFC 3986's unreserved characters, for a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
