//! A TCP echo server on loopback for the TCP tests: every byte a client sends comes back.
//! Plain std threads; dropping it stops accepting, ends every connection and joins them.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often idle threads look at the stop flag.
const POLL: Duration = Duration::from_millis(20);

pub struct TcpEcho {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl TcpEcho {
    /// Listens on a free loopback port.
    pub fn start() -> std::io::Result<TcpEcho> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let acceptor = std::thread::spawn(move || accept_loop(&listener, &flag));
        Ok(TcpEcho {
            addr,
            stop,
            acceptor: Some(acceptor),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for TcpEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, stop: &Arc<AtomicBool>) {
    let mut workers = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((conn, _)) => {
                let flag = Arc::clone(stop);
                workers.push(std::thread::spawn(move || echo(conn, &flag)));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(_) => std::thread::sleep(POLL),
        }
        workers.retain(|w: &JoinHandle<()>| !w.is_finished());
    }
    for w in workers {
        let _ = w.join();
    }
}

/// Echoes until the client closes (EOF) or the server stops.
fn echo(mut conn: TcpStream, stop: &AtomicBool) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(POLL));
    let mut buf = [0u8; 16 * 1024];
    while !stop.load(Ordering::SeqCst) {
        match conn.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if conn.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => return,
        }
    }
}

/// Opens `connections` connections to `entry` one after another, sends `bytes` bytes on each,
/// reads the echo back (10 s read timeout) and closes it: a bounded TCP load for tests.
pub fn round_trips(entry: SocketAddr, connections: usize, bytes: usize) -> std::io::Result<()> {
    for i in 0..connections {
        let mut conn = TcpStream::connect(entry)?;
        conn.set_read_timeout(Some(Duration::from_secs(10)))?;
        let payload = vec![b'a' + (i % 26) as u8; bytes];
        conn.write_all(&payload)?;
        let mut back = vec![0u8; bytes];
        conn.read_exact(&mut back)?;
        if back != payload {
            return Err(std::io::Error::other("the echo differs from what was sent"));
        }
    }
    Ok(())
}
