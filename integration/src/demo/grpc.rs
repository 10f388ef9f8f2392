//! The demo's gRPC edge, productpage → details, as gRPC puts it on the wire: a POST over
//! HTTP/2 (h2c, as between an app and its sidecar), `content-type: application/grpc`, each
//! message behind a 5-byte prefix, the status in the `grpc-status` trailer. Written on `h2`
//! directly: one unary method needs no code generation, and the demo binary then does not
//! link a gRPC framework.

use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::sync::oneshot;

/// The method productpage calls.
pub const DETAILS_GET: &str = "/bookinfo.Details/Get";

/// One length-prefixed gRPC message (not compressed).
fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.extend_from_slice(&[0]);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out.freeze()
}

/// Protobuf field 1 as a string: the request (`product_id`) and the reply (`details`).
fn string_field(text: &str) -> Vec<u8> {
    let mut out = vec![0x0a, text.len().min(127) as u8];
    out.extend_from_slice(&text.as_bytes()[..text.len().min(127)]);
    out
}

/// The details service: every `Get` answers OK with a fixed book description.
pub struct DetailsServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl DetailsServer {
    pub fn start() -> Result<DetailsServer, String> {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        std_listener
            .set_nonblocking(true)
            .map_err(|e| e.to_string())?;
        let addr = std_listener.local_addr().map_err(|e| e.to_string())?;
        let (stop, stopped) = oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let thread = std::thread::Builder::new()
            .name("details-grpc".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                        return;
                    };
                    tokio::select! {
                        _ = stopped => {}
                        _ = accept_loop(listener) => {}
                    }
                })
            })
            .map_err(|e| e.to_string())?;
        Ok(DetailsServer {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for DetailsServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop(listener: tokio::net::TcpListener) {
    while let Ok((socket, _)) = listener.accept().await {
        tokio::spawn(async move {
            let Ok(mut conn) = h2::server::handshake(socket).await else {
                return;
            };
            while let Some(Ok((request, respond))) = conn.accept().await {
                tokio::spawn(answer(request, respond));
            }
        });
    }
}

async fn answer(
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
) -> Result<(), h2::Error> {
    let mut body = request.into_body();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let head = http::Response::builder()
        .status(200)
        .header("content-type", "application/grpc")
        .body(())
        .unwrap_or_default();
    let mut send = respond.send_response(head, false)?;
    let reply = string_field("paperback, 200 pages, English, ISBN-10 1234567890");
    send.send_data(frame(&reply), false)?;
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    send.send_trailers(trailers)
}

/// A gRPC client of the details service through productpage's outbound sidecar. One
/// HTTP/2 connection per call: the demo's rate is low, and a broken connection then never
/// outlives the request that saw it.
pub struct DetailsClient {
    runtime: Arc<tokio::runtime::Runtime>,
    addr: SocketAddr,
    authority: String,
}

impl DetailsClient {
    pub fn new(addr: SocketAddr, authority: &str) -> Result<DetailsClient, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        Ok(DetailsClient {
            runtime: Arc::new(runtime),
            addr,
            authority: authority.to_string(),
        })
    }

    /// `Get(product_id)`: the `grpc-status` (0 is OK), or why there was none.
    pub fn get(&self, product_id: &str) -> Result<u32, String> {
        let (addr, uri) = (self.addr, format!("http://{}{DETAILS_GET}", self.authority));
        let message = frame(&string_field(product_id));
        self.runtime.block_on(async move {
            let call = async move {
                let e = |e: h2::Error| e.to_string();
                let tcp = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(|e| e.to_string())?;
                let (client, connection) = h2::client::handshake(tcp).await.map_err(e)?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                let mut client = client.ready().await.map_err(e)?;
                let request = http::Request::builder()
                    .method("POST")
                    .uri(uri)
                    .header("content-type", "application/grpc")
                    .header("te", "trailers")
                    .body(())
                    .map_err(|e| e.to_string())?;
                let (response, mut stream) = client.send_request(request, false).map_err(e)?;
                stream.send_data(message, true).map_err(e)?;
                let response = response.await.map_err(e)?;
                let status_of = |h: &http::HeaderMap| {
                    h.get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u32>().ok())
                };
                // A trailers-only answer (an error) carries the status in the headers.
                if let Some(status) = status_of(response.headers()) {
                    return Ok(status);
                }
                let mut body = response.into_body();
                while let Some(chunk) = body.data().await {
                    let chunk = chunk.map_err(e)?;
                    let _ = body.flow_control().release_capacity(chunk.len());
                }
                let trailers = body.trailers().await.map_err(e)?;
                trailers
                    .as_ref()
                    .and_then(status_of)
                    .ok_or_else(|| "no grpc-status".to_string())
            };
            tokio::time::timeout(std::time::Duration::from_secs(10), call)
                .await
                .map_err(|_| "gRPC call timed out after 10 s".to_string())?
        })
    }
}
