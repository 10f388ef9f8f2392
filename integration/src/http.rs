//! One plain-HTTP/1.1 request at a time, for test traffic and admin scrapes.

use std::net::SocketAddr;
use std::time::Duration;

/// A complete response. Header names are lower-case, in the order received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `GET http://addr/path` with extra request headers. Any status is an `Ok`; `Err` means
/// no complete response (refused, reset, timed out after 10 s, ...).
pub fn http_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Response, String> {
    http_request("GET", addr, path, headers, "")
}

/// Any method, with a body (sent with `content-length` when not empty).
pub fn http_request(
    method: &str,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Response, String> {
    let url = format!("http://{addr}{path}");
    let what = || format!("{method} {url}");
    let mut builder = ureq::http::Request::builder().method(method).uri(&url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let request = builder
        .body(body.as_bytes().to_vec())
        .map_err(|e| format!("{}: {e}", what()))?;
    let mut response = agent()
        .run(request)
        .map_err(|e| format!("{}: {e}", what()))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = response
        .body_mut()
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_to_string()
        .map_err(|e| format!("{}: reading body: {e}", what()))?;
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// A fresh agent per request: no pooled connection outlives the call, so a test sees
/// exactly the connections it asked for. Proxy variables from the environment are ignored:
/// every target is on this machine.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}
