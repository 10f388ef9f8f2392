//! wrk (a Debian package; `scripts/setup-bench.sh` installs it as root) as the load generator:
//! one thread, epoll, so on a 2-core machine it leaves a core to the Envoy under test, where
//! the in-repo generator (`load.rs`) needs a thread per connection. `make test` never needs it.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one wrk run reports.
#[derive(Debug, Clone, PartialEq)]
pub struct WrkResult {
    /// Completed requests, whatever their status.
    pub requests: u64,
    /// The run's length as wrk measured it.
    pub secs: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Non-2xx/3xx responses.
    pub non_2xx: u64,
    /// Connect, read, write errors and timeouts.
    pub socket_errors: u64,
}

impl WrkResult {
    pub fn rate(&self) -> f64 {
        if self.secs > 0.0 {
            self.requests as f64 / self.secs
        } else {
            0.0
        }
    }
}

/// Whether `wrk` runs here.
pub fn available() -> bool {
    Command::new("wrk")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// `wrk -t1 -c<connections> -d<secs>s --latency -H 'host: <host>' <url>`, killed if it is
/// still running well after its duration (it never should: its own timeout is 2 s).
pub fn run(url: &str, host: &str, connections: usize, secs: u64) -> Result<WrkResult, String> {
    let mut child = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{secs}s"),
            "--latency",
        ])
        .args(["-H", &format!("Host: {host}"), url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run wrk: {e}"))?;
    let mut out = child.stdout.take().ok_or("wrk: no stdout")?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let limit = Duration::from_secs(secs + 20);
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("wrk still running after {limit:?}: killed"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("wrk: {e}")),
        }
    };
    let stdout = reader.join().map_err(|_| "wrk: reader thread panicked")?;
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        return Err(format!("wrk exited with {status}: {stdout}{err}"));
    }
    parse(&stdout)
}

/// Reads wrk's `--latency` report.
pub fn parse(out: &str) -> Result<WrkResult, String> {
    let mut r = WrkResult {
        requests: 0,
        secs: 0.0,
        p50_us: f64::NAN,
        p99_us: f64::NAN,
        non_2xx: 0,
        socket_errors: 0,
    };
    let mut saw_total = false;
    for line in out.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", t] => r.p50_us = time_us(t)?,
            ["99%", t] => r.p99_us = time_us(t)?,
            [n, "requests", "in", t, ..] => {
                r.requests = n
                    .parse()
                    .map_err(|_| format!("wrk: bad count in {line:?}"))?;
                r.secs = time_us(t.trim_end_matches(','))? / 1e6;
                saw_total = true;
            }
            ["Socket", "errors:", rest @ ..] => {
                // "connect 0, read 0, write 0, timeout 0"
                r.socket_errors = rest
                    .chunks(2)
                    .filter_map(|kv| kv.get(1)?.trim_end_matches(',').parse::<u64>().ok())
                    .sum();
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => {
                r.non_2xx = n.parse().map_err(|_| format!("wrk: bad line {line:?}"))?;
            }
            _ => {}
        }
    }
    if !saw_total || r.p50_us.is_nan() || r.p99_us.is_nan() {
        return Err(format!(
            "wrk: no request count or latency distribution in:\n{out}"
        ));
    }
    Ok(r)
}

/// `310.54us`, `1.20ms`, `4.00s`, `1.50m` in µs.
fn time_us(t: &str) -> Result<f64, String> {
    let split = t
        .find(|c: char| c.is_ascii_alphabetic())
        .ok_or_else(|| format!("wrk: no unit in {t:?}"))?;
    let (n, unit) = t.split_at(split);
    let n: f64 = n.parse().map_err(|_| format!("wrk: bad time {t:?}"))?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => return Err(format!("wrk: unknown unit in {t:?}")),
    };
    Ok(n * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "Running 4s test @ http://127.0.0.1:41234/bench
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   310.54us  100.22us   5.00ms   90.00%
    Req/Sec    51.60k     1.00k   53.00k    80.00%
  Latency Distribution
     50%  300.00us
     75%  320.00us
     90%  350.00us
     99%    1.20ms
  206400 requests in 4.00s, 30.00MB read
  Socket errors: connect 1, read 2, write 0, timeout 4
  Non-2xx or 3xx responses: 5
Requests/sec:  51600.00
Transfer/sec:      7.50MB
";

    #[test]
    fn reads_counts_latency_and_errors() {
        let r = parse(REPORT).unwrap();
        assert_eq!(
            r,
            WrkResult {
                requests: 206_400,
                secs: 4.0,
                p50_us: 300.0,
                p99_us: 1200.0,
                non_2xx: 5,
                socket_errors: 7,
            }
        );
        assert_eq!(r.rate(), 51_600.0);
    }

    #[test]
    fn a_report_without_the_distribution_is_an_error() {
        let cut: String = REPORT
            .lines()
            .filter(|l| !l.contains("99%"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(parse(&cut).unwrap_err().contains("latency distribution"));
        assert!(time_us("3.5ks").is_err());
        assert_eq!(time_us("1.50m").unwrap(), 90e6);
    }
}
