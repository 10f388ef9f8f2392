//! Test traffic: requests to the ratings app, each one checked as it comes back.

use crate::http::http_get;
use crate::mesh::RATINGS_HOST;
use std::net::SocketAddr;

/// `GET`s to the ratings app as productpage sends them (`host: ratings:9080`), to an address
/// that leads there (a mesh's entry, a sidecar's listener). [`Requests::send`] panics unless
/// every request gets a complete response with the expected status.
///
/// ```no_run
/// # use meshstats_integration::Requests;
/// # let entry = "127.0.0.1:15001".parse().unwrap();
/// Requests::get(entry, "/ratings/7").send(5);
/// Requests::get(entry, "/ratings/7")
///     .headers(&[("x-backend-status", "503")])
///     .status(503)
///     .send(2);
/// ```
#[derive(Debug, Clone)]
pub struct Requests<'a> {
    entry: SocketAddr,
    path: &'a str,
    headers: Vec<(&'a str, &'a str)>,
    status: u16,
}

impl<'a> Requests<'a> {
    /// `GET path` through `entry`, expected to answer 200.
    pub fn get(entry: SocketAddr, path: &'a str) -> Requests<'a> {
        Requests {
            entry,
            path,
            headers: vec![("host", RATINGS_HOST)],
            status: 200,
        }
    }

    /// Request headers sent after `host`.
    pub fn headers(mut self, headers: &[(&'a str, &'a str)]) -> Requests<'a> {
        self.headers.extend_from_slice(headers);
        self
    }

    /// The status every response must have.
    pub fn status(mut self, status: u16) -> Requests<'a> {
        self.status = status;
        self
    }

    /// Sends `n` requests, one after the other.
    pub fn send(&self, n: usize) {
        for i in 0..n {
            let r = http_get(self.entry, self.path, &self.headers)
                .unwrap_or_else(|e| panic!("request {i}: {e}"));
            assert_eq!(r.status, self.status, "request {i}: {}", r.body);
        }
    }
}
