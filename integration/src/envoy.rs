//! A real Envoy process, run from a bootstrap in a scratch directory.

use crate::http::{http_get, Response};
use crate::paths::envoy_bin;
use crate::scrape::Scrape;
use serde_json::Value;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

/// A running Envoy. Dropping it kills the process and waits for it, always; if the thread
/// is panicking (a failed assertion) the Envoy's whole log is printed to stderr first and
/// its scratch directory (bootstrap, log) is kept, otherwise the directory is removed.
pub struct Envoy {
    name: String,
    admin: SocketAddr,
    dir: PathBuf,
    log_path: PathBuf,
    stdout_path: PathBuf,
    child: Child,
}

impl Envoy {
    /// Writes `bootstrap` to a scratch directory and runs
    /// `$ENVOY_BIN -c bootstrap.json --log-level info --concurrency 1 --disable-hot-restart`
    /// with stderr (Envoy's log) going to `envoy.log` there and stdout (access logs) to
    /// `stdout.log`, then waits (up to 30 s) for
    /// `GET http://<admin>/ready` to answer `200 LIVE`. `admin` must be the bootstrap's admin
    /// address. `Err` carries the reason and the tail of Envoy's log.
    ///
    /// No `--base-id`: it only names the shared memory hot restart uses, which
    /// `--disable-hot-restart` turns off, so Envoys started this way never collide.
    /// `$ENVOY_LOG_LEVEL` (e.g. `debug`) overrides the log level.
    pub fn start(name: &str, bootstrap: &Value, admin: SocketAddr) -> Result<Envoy, String> {
        Envoy::start_with_args(name, bootstrap, admin, &[])
    }

    /// [`Envoy::start`] with extra command-line arguments, e.g.
    /// `["--component-log-level", "wasm:debug"]`.
    pub fn start_with_args(
        name: &str,
        bootstrap: &Value,
        admin: SocketAddr,
        extra_args: &[&str],
    ) -> Result<Envoy, String> {
        check_admin(bootstrap, admin).map_err(|e| format!("envoy {name}: {e}"))?;
        let dir = scratch_dir(name, admin);
        let config_path = dir.join("bootstrap.json");
        let text =
            serde_json::to_string_pretty(bootstrap).map_err(|e| format!("envoy {name}: {e}"))?;
        std::fs::write(&config_path, text)
            .map_err(|e| format!("envoy {name}: writing {}: {e}", config_path.display()))?;
        let log_path = dir.join("envoy.log");
        let log = File::create(&log_path)
            .map_err(|e| format!("envoy {name}: {}: {e}", log_path.display()))?;
        let stdout_path = dir.join("stdout.log");
        let stdout = File::create(&stdout_path)
            .map_err(|e| format!("envoy {name}: {}: {e}", stdout_path.display()))?;
        let level = std::env::var("ENVOY_LOG_LEVEL").unwrap_or_else(|_| "info".into());
        let bin = envoy_bin();
        let mut command = Command::new(&bin);
        if crate::paths::build() == meshstats_cli::Build::Native {
            // Rendered configs name the module's file; this also serves a hand-written
            // config that names only the module (Envoy's search path).
            command.env(
                meshstats_cli::render::native::SEARCH_PATH_ENV,
                crate::paths::native_module_dir(),
            );
            // The 1.40 ABI cannot read `node`: the module takes it from the environment.
            command.envs(meshstats_cli::render::native::node_environment(bootstrap));
        }
        let child = command
            .arg("-c")
            .arg(&config_path)
            .args([
                "--log-level",
                &level,
                "--concurrency",
                "1",
                "--disable-hot-restart",
            ])
            .args(extra_args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("envoy {name}: cannot run {}: {e}", bin.display()))?;
        // From here on, Drop kills the process whatever happens.
        let mut envoy = Envoy {
            name: name.to_string(),
            admin,
            dir,
            log_path,
            stdout_path,
            child,
        };
        envoy.wait_ready()?;
        Ok(envoy)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.failure(&format!("exited during startup ({status})")));
            }
            let last = match http_get(self.admin, "/ready", &[]) {
                Ok(r) if r.status == 200 && r.body.trim() == "LIVE" => break,
                Ok(r) => format!("{} {}", r.status, r.body.trim()),
                Err(e) => e,
            };
            if start.elapsed() > READY_TIMEOUT {
                return Err(self.failure(&format!(
                    "not ready after {}s (last /ready: {last})",
                    READY_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(POLL);
        }
        if let Ok(Some(status)) = self.child.try_wait() {
            return Err(self.failure(&format!("exited right after becoming ready ({status})")));
        }
        Ok(())
    }

    fn failure(&self, what: &str) -> String {
        format!(
            "envoy {} (admin {}) {what}; log tail:\n{}",
            self.name,
            self.admin,
            tail(&self.log(), 60)
        )
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn admin(&self) -> SocketAddr {
        self.admin
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The scratch directory holding `bootstrap.json`, `envoy.log` and `stdout.log`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Everything Envoy logged (its stderr) so far.
    pub fn log(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Everything Envoy wrote to stdout so far, byte for byte: only access loggers write
    /// there (`envoy.access_loggers.stdout`), and Envoy flushes them about once a second.
    pub fn stdout(&self) -> Vec<u8> {
        std::fs::read(&self.stdout_path).unwrap_or_default()
    }

    /// `GET http://<admin><path>`, any status.
    pub fn admin_get(&self, path: &str) -> Result<Response, String> {
        http_get(self.admin, path, &[])
    }

    /// `GET /stats/prometheus`, parsed.
    pub fn prometheus(&self) -> Result<Scrape, String> {
        Scrape::parse(&self.admin_ok("/stats/prometheus")?)
    }

    /// `GET /stats`: Envoy's own stat names (before tag extraction), for debugging.
    pub fn stats_text(&self) -> Result<String, String> {
        self.admin_ok("/stats")
    }

    fn admin_ok(&self, path: &str) -> Result<String, String> {
        let r = self
            .admin_get(path)
            .map_err(|e| format!("envoy {}: {e}", self.name))?;
        if r.status != 200 {
            return Err(format!(
                "envoy {}: GET {path}: {} {}",
                self.name, r.status, r.body
            ));
        }
        Ok(r.body)
    }

    /// Scrapes every 50 ms until `check` returns `Some`, for up to `timeout`. Stats are
    /// recorded when a stream ends, which can be just after the client got its response,
    /// so tests wait for the values they expect instead of scraping once.
    pub fn wait_for<T>(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&Scrape) -> Option<T>,
    ) -> Result<T, String> {
        let start = Instant::now();
        loop {
            let scrape = self.prometheus()?;
            if let Some(t) = check(&scrape) {
                return Ok(t);
            }
            if start.elapsed() > timeout {
                return Err(format!(
                    "envoy {}: condition not met after {:?}",
                    self.name, timeout
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits (up to 10 s) until the series of `metric` with exactly `labels` equals
    /// `expected`; the error lists the series of `metric` actually present.
    pub fn wait_for_value(
        &self,
        metric: &str,
        labels: &[(&str, &str)],
        expected: f64,
    ) -> Result<Scrape, String> {
        let timeout = Duration::from_secs(10);
        let mut last = None;
        let found = self.wait_for(timeout, |s| {
            last = Some(s.clone());
            (s.counter(metric, labels) == Some(expected)).then(|| s.clone())
        });
        found.map_err(|e| {
            let present: Vec<String> = last
                .map(|s| {
                    s.series(metric)
                        .iter()
                        .map(|x| format!("  {:?} = {}", x.labels, x.value))
                        .collect()
                })
                .unwrap_or_default();
            format!(
                "{e}: wanted {metric}{labels:?} == {expected}; series present:\n{}",
                present.join("\n")
            )
        })
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            // stdout may hold thousands of access log lines: only its tail, shortened.
            let stdout = String::from_utf8_lossy(&self.stdout()).into_owned();
            let stdout: String = tail(&stdout, 20)
                .lines()
                .map(|l| shorten(l, 400) + "\n")
                .collect();
            eprintln!(
                "===== envoy {} (admin {}, files in {}) log =====\n{}\n===== stdout (last lines) =====\n{}===== end of envoy {} log =====",
                self.name,
                self.admin,
                self.dir.display(),
                self.log(),
                stdout,
                self.name
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn check_admin(bootstrap: &Value, admin: SocketAddr) -> Result<(), String> {
    let sa = &bootstrap["admin"]["address"]["socket_address"];
    let (ip, port) = (sa["address"].as_str(), sa["port_value"].as_u64());
    match (ip, port) {
        (Some(ip), Some(port))
            if ip == admin.ip().to_string() && port == u64::from(admin.port()) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "bootstrap admin.address.socket_address is {sa}, but admin {admin} was passed"
        )),
    }
}

fn scratch_dir(name: &str, admin: SocketAddr) -> PathBuf {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let dir = std::env::temp_dir().join("meshstats-it").join(format!(
        "{safe}-{}-{}",
        std::process::id(),
        admin.port()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::create_dir_all(&dir);
    dir
}

fn shorten(line: &str, max: usize) -> String {
    match line.char_indices().nth(max) {
        Some((i, _)) => format!("{}… ({} bytes)", &line[..i], line.len()),
        None => line.to_string(),
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
