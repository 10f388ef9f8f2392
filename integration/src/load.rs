//! A closed-loop HTTP/1.1 load generator, and what `meshstats-bench` reads about processes.
//!
//! [`run`] opens `connections` keep-alive connections, one thread each; every thread sends
//! one request, reads the whole response (status line, headers, body by `content-length` or
//! chunked), records the latency and sends the next, until the duration is over or
//! `max_requests` have been sent; `requests_per_connection` makes it reconnect every N requests. A request
//! is only sent before the deadline, so none is left in flight: every request sent either
//! completes or fails. Each request also has a timeout (an I/O error ends the connection,
//! the thread reconnects), so a run lasts at most `duration + timeout`.
//!
//! [`cpu_time`], [`rss_bytes`] and [`peak_rss_bytes`] read `/proc/<pid>/stat` and `/proc/<pid>/status` (Linux).

use hdrhistogram::Histogram;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The largest latency the histograms hold, in µs (larger ones are recorded as this).
const MAX_LATENCY_US: u64 = 60_000_000;
/// How many I/O error messages a result keeps (the count is always exact).
const KEPT_ERRORS: usize = 5;
/// After an error, wait this long before reconnecting, so a dead target is not spun on.
const ERROR_BACKOFF: Duration = Duration::from_millis(20);

/// What to send, how hard and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// Concurrent connections, one thread each.
    pub connections: usize,
    /// No request is sent after this much time from the start.
    pub duration: Duration,
    pub path: String,
    /// The `host` header.
    pub host: String,
    /// Connect, write and read timeout of each request.
    pub timeout: Duration,
    /// Each connection carries at most this many requests, the last one with
    /// `connection: close`, then the thread opens a new one. 0: keep-alive until an error.
    pub requests_per_connection: u64,
    /// No more requests than this in total, over all connections (`None`: only the duration
    /// bounds the run).
    pub max_requests: Option<u64>,
}

impl LoadOptions {
    /// `GET path` with `host: host`, 10 s timeout.
    pub fn new(connections: usize, duration: Duration, path: &str, host: &str) -> LoadOptions {
        LoadOptions {
            connections,
            duration,
            path: path.to_string(),
            host: host.to_string(),
            timeout: Duration::from_secs(10),
            requests_per_connection: 0,
            max_requests: None,
        }
    }

    fn request(&self, close: bool) -> Vec<u8> {
        let connection = if close { "connection: close\r\n" } else { "" };
        format!(
            "GET {} HTTP/1.1\r\nhost: {}\r\n{connection}\r\n",
            self.path, self.host
        )
        .into_bytes()
    }
}

/// The outcome of one or more runs ([`LoadResult::merge`]).
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// Latency of each completed request, in µs (write of the request to the last body byte).
    pub latency_us: Histogram<u64>,
    /// Requests answered with a complete response, whatever its status.
    pub completed: u64,
    /// Completed requests whose status was not 200.
    pub non_200: u64,
    /// Requests (or connection attempts) that got no complete response: refused, reset,
    /// timed out, malformed.
    pub io_errors: u64,
    /// The first few I/O error messages.
    pub errors: Vec<String>,
    /// Wall-clock time of the run(s), from the first thread starting to the last finishing.
    pub elapsed: Duration,
}

impl Default for LoadResult {
    fn default() -> Self {
        LoadResult {
            latency_us: new_histogram(),
            completed: 0,
            non_200: 0,
            io_errors: 0,
            errors: Vec::new(),
            elapsed: Duration::ZERO,
        }
    }
}

impl LoadResult {
    /// Requests answered 200.
    pub fn ok(&self) -> u64 {
        self.completed - self.non_200
    }

    /// Everything that was not a 200: non-200 responses and I/O errors.
    pub fn failures(&self) -> u64 {
        self.non_200 + self.io_errors
    }

    /// Completed requests per second of `elapsed` (0 when nothing ran).
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.completed as f64 / secs
        } else {
            0.0
        }
    }

    /// Adds `other`: counts and elapsed times are summed, histograms merged.
    pub fn merge(&mut self, other: &LoadResult) {
        // Same bounds on both sides, and saturating recording: adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
        self.completed += other.completed;
        self.non_200 += other.non_200;
        self.io_errors += other.io_errors;
        for e in &other.errors {
            if self.errors.len() < KEPT_ERRORS {
                self.errors.push(e.clone());
            }
        }
        self.elapsed += other.elapsed;
    }
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 60 s at 3 significant digits: about 200 KiB per histogram.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// Sends load to `addr` as `options` says and returns the merged result of all connections.
pub fn run(addr: SocketAddr, options: &LoadOptions) -> LoadResult {
    let start = Instant::now();
    let deadline = start + options.duration;
    let budget = Arc::new(AtomicU64::new(options.max_requests.unwrap_or(u64::MAX)));
    let threads: Vec<_> = (0..options.connections.max(1))
        .map(|i| {
            let options = options.clone();
            let budget = Arc::clone(&budget);
            std::thread::Builder::new()
                .name(format!("load-{i}"))
                .spawn(move || connection_loop(addr, &options, deadline, &budget))
        })
        .collect();
    let mut total = LoadResult::default();
    for t in threads {
        match t
            .map_err(|e| e.to_string())
            .and_then(|t| t.join().map_err(|_| "load thread panicked".to_string()))
        {
            Ok(r) => total.merge(&r),
            Err(e) => {
                total.io_errors += 1;
                if total.errors.len() < KEPT_ERRORS {
                    total.errors.push(e);
                }
            }
        }
    }
    total.elapsed = start.elapsed();
    total
}

fn io_error(result: &mut LoadResult, e: String) {
    result.io_errors += 1;
    if result.errors.len() < KEPT_ERRORS {
        result.errors.push(e);
    }
    std::thread::sleep(ERROR_BACKOFF);
}

/// Takes one request from the shared budget; false when it is spent.
fn claim(budget: &AtomicU64) -> bool {
    budget
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
}

fn connection_loop(
    addr: SocketAddr,
    options: &LoadOptions,
    deadline: Instant,
    budget: &AtomicU64,
) -> LoadResult {
    let (keep_alive, last) = (options.request(false), options.request(true));
    let mut result = LoadResult::default();
    let mut conn: Option<Connection> = None;
    let mut on_this_connection = 0u64;
    while Instant::now() < deadline {
        let c = match &mut conn {
            Some(c) => c,
            None => match Connection::open(addr, options.timeout) {
                Ok(c) => {
                    on_this_connection = 0;
                    conn.insert(c)
                }
                Err(e) => {
                    io_error(&mut result, format!("connect {addr}: {e}"));
                    continue;
                }
            },
        };
        if !claim(budget) {
            break;
        }
        on_this_connection += 1;
        let closing = on_this_connection == options.requests_per_connection;
        let request = if closing { &last } else { &keep_alive };
        let sent = Instant::now();
        match c.exchange(request) {
            Ok(response) => {
                let us = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                result
                    .latency_us
                    .saturating_record(us.clamp(1, MAX_LATENCY_US));
                result.completed += 1;
                if response.status != 200 {
                    result.non_200 += 1;
                }
                if response.close || closing {
                    conn = None;
                }
            }
            Err(e) => {
                conn = None;
                io_error(&mut result, format!("{} {}: {e}", addr, options.path));
            }
        }
    }
    result
}

struct Connection {
    reader: BufReader<TcpStream>,
    line: String,
    body: Vec<u8>,
}

struct ResponseHead {
    status: u16,
    close: bool,
}

impl Connection {
    fn open(addr: SocketAddr, timeout: Duration) -> std::io::Result<Connection> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Connection {
            reader: BufReader::with_capacity(16 * 1024, stream),
            line: String::new(),
            body: Vec::new(),
        })
    }

    /// Writes `request`, reads one whole response.
    fn exchange(&mut self, request: &[u8]) -> std::io::Result<ResponseHead> {
        self.reader.get_mut().write_all(request)?;
        self.read_line()?;
        let status = parse_status(&self.line)?;
        let (mut length, mut chunked, mut close) = (None, false, false);
        loop {
            self.read_line()?;
            let h = self.line.trim_end_matches(['\r', '\n']);
            if h.is_empty() {
                break;
            }
            let Some((name, value)) = h.split_once(':') else {
                return Err(invalid(format!("bad header {h:?}")));
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(
                    value
                        .parse::<usize>()
                        .map_err(|_| invalid(format!("bad content-length {value:?}")))?,
                );
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            }
        }
        if chunked {
            self.read_chunked()?;
        } else if let Some(n) = length {
            self.read_body(n)?;
        } else if !matches!(status, 100..=199 | 204 | 304) {
            // A body delimited by the end of the connection.
            self.body.clear();
            self.reader.read_to_end(&mut self.body)?;
            close = true;
        }
        Ok(ResponseHead { status, close })
    }

    fn read_line(&mut self) -> std::io::Result<()> {
        self.line.clear();
        if self.reader.read_line(&mut self.line)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed by peer",
            ));
        }
        Ok(())
    }

    fn read_body(&mut self, n: usize) -> std::io::Result<()> {
        self.body.resize(n, 0);
        self.reader.read_exact(&mut self.body[..n])
    }

    fn read_chunked(&mut self) -> std::io::Result<()> {
        loop {
            self.read_line()?;
            let size = self.line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| invalid(format!("bad chunk size {size:?}")))?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    self.read_line()?;
                    if self.line.trim().is_empty() {
                        return Ok(());
                    }
                }
            }
            self.read_body(size)?;
            self.read_line()?;
        }
    }
}

fn parse_status(line: &str) -> std::io::Result<u16> {
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next().map(str::parse::<u16>)) {
        (Some(v), Some(Ok(status))) if v.starts_with("HTTP/1.") => Ok(status),
        _ => Err(invalid(format!("bad status line {line:?}"))),
    }
}

fn invalid(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

/// CPU time (user + system, all threads) process `pid` has used so far, from
/// `/proc/<pid>/stat` (in clock ticks, usually 10 ms each).
pub fn cpu_time(pid: u32) -> Result<Duration, String> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    // The command name (field 2) is in parentheses and may hold spaces: split after it.
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| format!("{path}: no ')' in {text:?}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime field 15.
    let field = |i: usize| -> Result<u64, String> {
        fields
            .get(i - 3)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{path}: no field {i} in {text:?}"))
    };
    let ticks = field(14)? + field(15)?;
    Ok(Duration::from_secs_f64(
        ticks as f64 / clock_ticks_per_second() as f64,
    ))
}

/// `getconf CLK_TCK` (the unit of `/proc/<pid>/stat` times); 100 if it cannot be run.
fn clock_ticks_per_second() -> u64 {
    static TCK: OnceLock<u64> = OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// Resident set size of process `pid` (`VmRSS` in `/proc/<pid>/status`), in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64, String> {
    status_kb(pid, "VmRSS:")
}

/// The largest resident set size process `pid` has had so far (`VmHWM`), in bytes: a peak
/// that sampling could miss.
pub fn peak_rss_bytes(pid: u32) -> Result<u64, String> {
    status_kb(pid, "VmHWM:")
}

/// Starts a new peak for [`peak_rss_bytes`] (writes `5` to `/proc/<pid>/clear_refs`, Linux
/// 4.0+), so a peak can be taken over one round rather than the process's life.
pub fn reset_peak_rss(pid: u32) -> Result<(), String> {
    let path = format!("/proc/{pid}/clear_refs");
    std::fs::write(&path, "5").map_err(|e| format!("{path}: {e}"))
}

fn status_kb(pid: u32, key: &str) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let line = text
        .lines()
        .find(|l| l.starts_with(key))
        .ok_or_else(|| format!("{path}: no {key} line"))?;
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("{path}: bad line {line:?}"))?;
    Ok(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Backend;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status("HTTP/1.1 200 OK\r\n").unwrap(), 200);
        assert_eq!(
            parse_status("HTTP/1.0 503 Service Unavailable\r\n").unwrap(),
            503
        );
        assert!(parse_status("SSH-2.0\r\n").is_err());
        assert!(parse_status("HTTP/1.1 abc\r\n").is_err());
    }

    #[test]
    fn own_process_has_cpu_time_and_rss() {
        let pid = std::process::id();
        // Burn CPU until at least one tick is counted (bounded: 5 s).
        let start = Instant::now();
        let mut x = 0u64;
        while cpu_time(pid).unwrap() == Duration::ZERO && start.elapsed() < Duration::from_secs(5) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
        }
        assert!(cpu_time(pid).unwrap() > Duration::ZERO);
        assert!(rss_bytes(pid).unwrap() > 1024 * 1024);
        assert!(cpu_time(u32::MAX).is_err());
    }

    #[test]
    fn load_against_the_backend_counts_every_request() {
        let backend = Backend::start();
        let r = run(
            backend.addr(),
            &LoadOptions::new(2, Duration::from_millis(300), "/x", "app"),
        );
        assert!(r.completed > 0, "{r:?}");
        assert_eq!(r.failures(), 0, "{:?}", r.errors);
        assert_eq!(r.latency_us.len(), r.completed);
        assert_eq!(backend.request_count(), r.completed);
        assert!(r.rate() > 0.0);
    }

    #[test]
    fn max_requests_and_requests_per_connection_are_exact() {
        let backend = Backend::start();
        let options = LoadOptions {
            requests_per_connection: 3,
            max_requests: Some(50),
            ..LoadOptions::new(2, Duration::from_secs(20), "/x", "app")
        };
        let r = run(backend.addr(), &options);
        assert_eq!((r.completed, r.failures()), (50, 0), "{:?}", r.errors);
        assert_eq!(backend.request_count(), 50);
        // Every third request of each thread closes its connection: 15 or 16 of the 50,
        // depending on how the two threads shared them.
        let closing = backend
            .requests()
            .iter()
            .filter(|r| r.headers.get("connection").map(String::as_str) == Some("close"))
            .count();
        assert!(
            (15..=16).contains(&closing),
            "{closing} requests closed their connection"
        );
    }

    #[test]
    fn a_closed_port_is_counted_as_errors_and_the_run_still_ends() {
        let addr: SocketAddr = ([127, 0, 0, 1], crate::free_port()).into();
        let r = run(
            addr,
            &LoadOptions::new(1, Duration::from_millis(100), "/", "x"),
        );
        assert_eq!(r.completed, 0);
        assert!(r.io_errors > 0);
        assert!(!r.errors.is_empty());
    }
}
