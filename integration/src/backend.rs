//! A tiny HTTP/1.1 application server on 127.0.0.1, standing in for the app behind a sidecar.
//!
//! Every request gets `200` with the configured body, unless it carries
//! `x-backend-status: NNN` (then that status) — so a test can make the app fail on purpose.
//! `x-backend-delay-ms: N` delays the response (for latency histograms);
//! `x-backend-reset: before` closes the connection instead of answering, `x-backend-reset:
//! mid-body` after the head and 7 of 1000 body bytes (upstream resets). Each response
//! carries `x-saw-peer-metadata: yes|no`, telling whether the request reaching the app still
//! had `x-envoy-peer-metadata`. The last [`Backend::HISTORY`] requests are recorded.
//! Keep-alive, `content-length` and chunked request bodies are supported. Dropping the
//! `Backend` closes the listener and every open connection, and joins all threads.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the backend answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendConfig {
    pub status: u16,
    pub body: String,
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            status: 200,
            body: "hello from backend\n".to_string(),
        }
    }
}

/// One request as the app saw it. Header names are lower-case; repeated headers are
/// joined with `,`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

struct Shared {
    config: BackendConfig,
    stop: AtomicBool,
    count: AtomicU64,
    history: Mutex<VecDeque<RecordedRequest>>,
    connections: Mutex<Vec<(TcpStream, Option<JoinHandle<()>>)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running backend; see the module docs.
pub struct Backend {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Backend {
    /// How many requests [`Backend::requests`] keeps.
    pub const HISTORY: usize = 256;

    /// Starts on a free port of 127.0.0.1 with the default config (200, a fixed body).
    pub fn start() -> Backend {
        Backend::with_config(BackendConfig::default())
    }

    pub fn with_config(config: BackendConfig) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("backend: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("backend: local_addr");
        let shared = Arc::new(Shared {
            config,
            stop: AtomicBool::new(false),
            count: AtomicU64::new(0),
            history: Mutex::new(VecDeque::new()),
            connections: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name(format!("backend-{}", addr.port()))
            .spawn(move || accept_loop(listener, s))
            .expect("backend: spawn acceptor");
        Backend {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests answered so far (not limited to the history).
    pub fn request_count(&self) -> u64 {
        self.shared.count.load(Ordering::SeqCst)
    }

    /// The most recent requests, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.history).iter().cloned().collect()
    }

    pub fn last_request(&self) -> Option<RecordedRequest> {
        lock(&self.shared.history).back().cloned()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept().
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        let connections = std::mem::take(&mut *lock(&self.shared.connections));
        for (stream, thread) in connections {
            let _ = stream.shutdown(Shutdown::Both);
            if let Some(t) = thread {
                let _ = t.join();
            }
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let Ok(handle) = stream.try_clone() else {
            continue;
        };
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("backend-conn".into())
            .spawn(move || {
                // A broken connection only ends that connection.
                let _ = serve(stream, &s);
            });
        let mut connections = lock(&shared.connections);
        // Forget finished connections so a long test does not accumulate them.
        connections.retain(|(_, t)| t.as_ref().is_some_and(|t| !t.is_finished()));
        connections.push((handle, thread.ok()));
    }
}

fn serve(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let Some(request) = read_request(&mut reader)? else {
            return Ok(());
        };
        let close = request
            .headers
            .get("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let status = request
            .headers
            .get("x-backend-status")
            .and_then(|v| v.trim().parse::<u16>().ok())
            .unwrap_or(shared.config.status);
        if let Some(ms) = request
            .headers
            .get("x-backend-delay-ms")
            .and_then(|v| v.trim().parse().ok())
        {
            std::thread::sleep(Duration::from_millis(ms));
        }
        // A misbehaving app, for the torture test: `before` closes the connection without
        // an answer, `mid-body` sends the head and part of the body, then closes.
        match request.headers.get("x-backend-reset").map(String::as_str) {
            Some("before") => {
                shared.count.fetch_add(1, Ordering::SeqCst);
                // shutdown, not drop: `Backend` holds a clone of the socket until it is dropped.
                return writer.shutdown(Shutdown::Both);
            }
            Some("mid-body") => {
                shared.count.fetch_add(1, Ordering::SeqCst);
                writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\npartial")?;
                writer.flush()?;
                return writer.shutdown(Shutdown::Both);
            }
            _ => {}
        }
        let head_request = request.method == "HEAD";
        let saw = if request.headers.contains_key("x-envoy-peer-metadata") {
            "yes"
        } else {
            "no"
        };
        {
            let mut history = lock(&shared.history);
            if history.len() == Backend::HISTORY {
                history.pop_front();
            }
            history.push_back(request);
        }
        shared.count.fetch_add(1, Ordering::SeqCst);
        // 204 and 304 must not have a body, nor a length; a HEAD response sends none.
        let bodyless = matches!(status, 204 | 304);
        let body = if bodyless {
            &[][..]
        } else {
            shared.config.body.as_bytes()
        };
        let head = format!(
            "HTTP/1.1 {status} {}\r\ncontent-type: text/plain\r\n{}x-saw-peer-metadata: {saw}\r\n{}\r\n",
            reason(status),
            if bodyless { String::new() } else { format!("content-length: {}\r\n", body.len()) },
            if close { "connection: close\r\n" } else { "" },
        );
        // One write: head and body in separate small segments would meet Nagle's algorithm
        // and the peer's delayed ACK, adding ~40 ms to every request.
        let mut response = head.into_bytes();
        if !head_request {
            response.extend_from_slice(body);
        }
        writer.write_all(&response)?;
        writer.flush()?;
        if close {
            return Ok(());
        }
    }
}

/// `Ok(None)` when the peer closed the connection between requests.
pub(crate) fn read_request(reader: &mut impl BufRead) -> std::io::Result<Option<RecordedRequest>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return Err(invalid(format!("bad request line {line:?}")));
    };
    let (method, path) = (method.to_string(), path.to_string());
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    loop {
        // Header values may hold any byte from 0x80 up (Envoy passes them through): kept
        // lossily, not an error that would leave the proxy waiting for an answer.
        let mut raw = Vec::new();
        if reader.read_until(b'\n', &mut raw)? == 0 {
            return Err(invalid("connection closed in headers".into()));
        }
        let h = String::from_utf8_lossy(&raw);
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        let Some((k, v)) = h.split_once(':') else {
            return Err(invalid(format!("bad header {h:?}")));
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
        headers
            .entry(k)
            .and_modify(|old| {
                old.push(',');
                old.push_str(&v);
            })
            .or_insert(v);
    }
    let chunked = headers
        .get("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        read_chunked(reader)?
    } else {
        let len: usize = match headers.get("content-length") {
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| invalid(format!("bad content-length {v:?}")))?,
            None => 0,
        };
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        body
    };
    Ok(Some(RecordedRequest {
        method,
        path,
        headers,
        body,
    }))
}

fn read_chunked(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size)?;
        let size = size.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| invalid(format!("bad chunk size {size:?}")))?;
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                let mut t = String::new();
                if reader.read_line(&mut t)? == 0 || t.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = String::new();
        reader.read_line(&mut crlf)?;
    }
}

fn invalid(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}
