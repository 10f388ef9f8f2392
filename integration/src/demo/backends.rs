//! The demo's applications: tiny bookinfo services behind the sidecars, each calling the
//! next through its own outbound sidecar, with deterministic errors and latencies so that
//! the numbers at the end can be checked exactly.
//!
//! - productpage: `GET /productpage` → details (gRPC) and reviews (HTTP); answers 200.
//! - reviews-v1/v2/v3: `GET /reviews/N`; v2 and v3 call ratings and are slower
//!   ([`reviews_delay`]); a ratings error still answers 200 ("ratings unavailable"), as
//!   bookinfo's reviews does.
//! - ratings-v1: `GET /ratings/N`; reads the rating from the store over TCP, and every
//!   [`RATINGS_ERROR_EVERY`]th request of each caller (its `user-agent`) answers 503.
//! - mongodb: a line-based TCP store: every line gets one line back.

use crate::backend::{read_request, RecordedRequest};
use crate::demo::grpc::DetailsClient;
use crate::http::http_get;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Every this many requests of one caller, ratings-v1 answers the n-th with 503 (n = 20, 40,
/// …). Counted per caller so that each calling edge shows the same 5 %: one count for all would
/// put every error on the same reviews version, since the gateway alternates them.
pub const RATINGS_ERROR_EVERY: u64 = 20;

/// Callers ratings-v1 keeps apart; more share one count (the demo has two).
const MAX_CALLERS: usize = 8;

/// What ratings-v1 answered, per caller (`user-agent`): the ground truth its test checks the
/// metrics against.
#[derive(Clone, Default)]
pub struct RatingsCallers(Arc<Mutex<BTreeMap<String, Answered>>>);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Answered {
    pub total: u64,
    pub errors: u64,
}

impl RatingsCallers {
    pub fn snapshot(&self) -> BTreeMap<String, Answered> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Counts one request of `caller`; true when it is to be answered with a 503.
    fn count(&self, caller: &str) -> bool {
        let Ok(mut map) = self.0.lock() else {
            return false;
        };
        let key = if map.contains_key(caller) || map.len() < MAX_CALLERS {
            caller
        } else {
            "other"
        };
        let a = map.entry(key.to_string()).or_default();
        a.total += 1;
        let error = a.total % RATINGS_ERROR_EVERY == 0;
        a.errors += u64::from(error);
        error
    }
}

/// How long reviews `version` takes for its `n`-th request, before calling ratings: v1 is
/// fast, v2 and v3 slower and spread (10 values each), the same on every run.
pub fn reviews_delay(version: &str, n: u64) -> Duration {
    let ms = match version {
        "v2" => 10 + (n % 10) * 3,
        "v3" => 30 + (n % 10) * 6,
        _ => 0,
    };
    Duration::from_millis(ms)
}

type Handler = dyn Fn(&RecordedRequest) -> (u16, String) + Send + Sync;

/// An HTTP/1.1 app server on loopback answering with `handler` (keep-alive, one thread per
/// connection). Dropping it stops accepting; open connections end when their peer (an Envoy)
/// closes them.
pub struct App {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
    acceptor: Option<JoinHandle<()>>,
}

impl App {
    pub fn start(
        name: &str,
        handler: impl Fn(&RecordedRequest) -> (u16, String) + Send + Sync + 'static,
    ) -> Result<App, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("{name}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| format!("{name}: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicU64::new(0));
        let handler: Arc<Handler> = Arc::new(handler);
        let (s, n) = (stop.clone(), requests.clone());
        let acceptor = std::thread::Builder::new()
            .name(format!("app-{name}"))
            .spawn(move || {
                for stream in listener.incoming() {
                    if s.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let (h, n) = (handler.clone(), n.clone());
                    let _ = std::thread::Builder::new()
                        .name("app-conn".into())
                        .spawn(move || {
                            let _ = serve(stream, &*h, &n);
                        });
                }
            })
            .map_err(|e| format!("{name}: {e}"))?;
        Ok(App {
            addr,
            stop,
            requests,
            acceptor: Some(acceptor),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept().
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

fn serve(stream: TcpStream, handler: &Handler, count: &AtomicU64) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    while let Some(request) = read_request(&mut reader)? {
        let (status, body) = handler(&request);
        count.fetch_add(1, Ordering::SeqCst);
        let reason = if status < 400 { "OK" } else { "Error" };
        // One write: head and body apart would meet Nagle and delayed ACKs (~40 ms).
        let mut response = format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        response.extend_from_slice(body.as_bytes());
        writer.write_all(&response)?;
        writer.flush()?;
    }
    Ok(())
}

/// productpage: details over gRPC, then reviews, both through its outbound sidecars. A
/// failing call fails the page (500), so the gateway's edge shows it.
pub fn productpage(
    details: DetailsClient,
    reviews: SocketAddr,
) -> impl Fn(&RecordedRequest) -> (u16, String) {
    let n = AtomicU64::new(0);
    move |_req| {
        let i = n.fetch_add(1, Ordering::SeqCst);
        let details = match details.get(&i.to_string()) {
            Ok(0) => "details ok".to_string(),
            Ok(status) => return (500, format!("details: grpc-status {status}\n")),
            Err(e) => return (500, format!("details: {e}\n")),
        };
        match http_get(
            reviews,
            &format!("/reviews/{i}"),
            &[("host", "reviews:9080")],
        ) {
            Ok(r) if r.status == 200 => (200, format!("{details}; {}", r.body)),
            Ok(r) => (500, format!("reviews: {}\n", r.status)),
            Err(e) => (500, format!("reviews: {e}\n")),
        }
    }
}

/// reviews `version`: waits [`reviews_delay`]; v2/v3 then ask ratings (`ratings`: their
/// outbound sidecar).
pub fn reviews(
    version: &'static str,
    ratings: Option<SocketAddr>,
) -> impl Fn(&RecordedRequest) -> (u16, String) {
    let n = AtomicU64::new(0);
    let agent = format!("reviews-{version}");
    move |_req| {
        let i = n.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(reviews_delay(version, i));
        let stars = match ratings {
            None => "no stars".to_string(),
            Some(addr) => {
                let headers = [("host", "ratings:9080"), ("user-agent", &agent)];
                match http_get(addr, &format!("/ratings/{i}"), &headers) {
                    Ok(r) if r.status == 200 => r.body.trim().to_string(),
                    _ => "ratings unavailable".to_string(),
                }
            }
        };
        (200, format!("reviews-{version}: {stars}\n"))
    }
}

/// ratings-v1: the rating from the store (`store`: ratings' outbound TCP sidecar), and a 503
/// for every [`RATINGS_ERROR_EVERY`]th request of each caller, counted in `callers`.
pub fn ratings(
    store: SocketAddr,
    callers: RatingsCallers,
) -> impl Fn(&RecordedRequest) -> (u16, String) {
    move |req| {
        let caller = req.headers.get("user-agent").map_or("", String::as_str);
        let error = callers.count(caller);
        let rating = store_get(store, &req.path).unwrap_or_else(|e| format!("store: {e}"));
        if error {
            (503, "ratings overloaded\n".to_string())
        } else {
            (200, format!("{rating}\n"))
        }
    }
}

/// One question to the store on a connection of its own, as a client without a pool would.
fn store_get(store: SocketAddr, key: &str) -> Result<String, String> {
    let e = |e: std::io::Error| e.to_string();
    let mut conn = TcpStream::connect_timeout(&store, Duration::from_secs(5)).map_err(e)?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(e)?;
    conn.write_all(format!("GET {key}\n").as_bytes())
        .map_err(e)?;
    let mut line = String::new();
    BufReader::new(conn.try_clone().map_err(e)?)
        .read_line(&mut line)
        .map_err(e)?;
    let _ = conn.shutdown(Shutdown::Both);
    Ok(line.trim().to_string())
}

/// The TCP store (mongodb's role): `GET key` lines, each answered `rating 5 for key`.
pub struct TcpStore {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl TcpStore {
    pub fn start() -> Result<TcpStore, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let acceptor = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                std::thread::spawn(move || {
                    let Ok(mut writer) = stream.try_clone() else {
                        return;
                    };
                    for line in BufReader::new(stream).lines() {
                        let Ok(line) = line else { return };
                        let key = line.strip_prefix("GET ").unwrap_or(&line);
                        if writer
                            .write_all(format!("rating 5 for {key}\n").as_bytes())
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        Ok(TcpStore {
            addr,
            stop,
            acceptor: Some(acceptor),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for TcpStore {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}
