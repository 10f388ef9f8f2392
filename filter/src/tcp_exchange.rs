//! Istio's TCP metadata exchange on one connection (`tcp_metadata_exchange`, docs/tcp.md):
//! each side writes its frame (`peer::frame`) at the start of the byte stream it sends and
//! takes the peer's frame off the start of the byte stream it receives. The client side sends
//! downstream→upstream and reads upstream→downstream; the server side the other way round.
//!
//! Neither proxy-wasm nor Envoy 1.40's dynamic modules can read the negotiated ALPN, so what
//! Istio learns from `istio-peer-exchange` being negotiated is decided here from what the
//! connection shows: the server side reads frames only on mTLS connections and answers only a
//! caller whose frame it believed (so a caller that does not speak the exchange never sees a
//! frame); the client side sends only to an upstream with a SPIFFE certificate (a mesh peer,
//! reached through a cluster rendered with the ALPN). A direction whose first bytes are not the
//! magic carries no frame, and is passed on untouched.
//!
//! Bounded: a frame body past `MAX_FRAME_BODY` is refused and skipped as it streams by, never
//! buffered; while the first bytes are undecided the callback pauses (Envoy keeps them) and the
//! data is read only when enough has arrived to decide more, so at most four reads, one edit
//! and the certificate reads per direction. Frame bytes are not counted in
//! `istio_tcp_*_bytes_total`: Istio's filter removes them before its stats filter sees them.
//!
//! Compiled as a child of `plugin` (`#[path]` there): it extends `Root`/`Stream`.

use super::{Root, Stream};
use crate::attributes::{Direction, DownstreamCert};
use crate::host::{decode, Data, Host, LogLevel};
use crate::identity::spiffe_namespace;
use crate::peer::frame::{self, Scan, FRAME_HEADER_LEN, MAX_FRAME_BODY};
use std::rc::Rc;

/// What the data callback tells the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataAction {
    Continue,
    /// Keep the data and call again when more arrives (an undecided frame prefix).
    Pause,
}

/// The exchange's state on one connection; `None` on the `TcpStream` until its first data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    incoming: Incoming,
    outgoing: Outgoing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Incoming {
    /// The first bytes in: nothing can be decided before `need` bytes arrived.
    Undecided {
        need: usize,
    },
    /// A refused frame's bytes still to arrive, dropped as they do.
    Skipping {
        left: u64,
    },
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outgoing {
    /// Ours goes before the first bytes out (server side: if the caller's frame was believed
    /// by then).
    Pending,
    Done,
}

impl Exchange {
    fn off() -> Exchange {
        Exchange {
            incoming: Incoming::Done,
            outgoing: Outgoing::Done,
        }
    }
}

/// The side of the connection that receives the peer's frame, for a proxy in `direction`.
fn incoming_side(direction: Direction) -> Data {
    match direction {
        Direction::Inbound => Data::Downstream,
        Direction::Outbound => Data::Upstream,
    }
}

impl Root {
    /// Data from `which` (`size`: all the callback holds). Runs the exchange, then counts the
    /// bytes that are the app's. With the exchange off: counted only, no host call.
    pub fn on_data(
        &mut self,
        host: &impl Host,
        stream: &mut Stream,
        which: Data,
        size: usize,
        end: bool,
    ) -> DataAction {
        let (action, app_bytes) = if self.config.tcp_metadata_exchange && host.edits_data() {
            self.exchange(host, stream, which, size, end)
        } else {
            (DataAction::Continue, size)
        };
        if action == DataAction::Continue {
            match which {
                Data::Downstream => self.on_downstream_data(stream, app_bytes),
                Data::Upstream => self.on_upstream_data(stream, app_bytes),
            }
        }
        action
    }

    /// The peer's frame may still come: the connection had no data yet, or its first bytes in
    /// are undecided. A periodic report then waits, as Istio's does (`maybeWaiting`), since its
    /// labels would be the fallback's and make a series nobody reads; the last report never
    /// waits.
    pub(super) fn awaiting_peer_frame(&self, host: &impl Host, stream: &Stream) -> bool {
        if !(self.config.tcp_metadata_exchange && host.edits_data()) {
            return false;
        }
        match stream.tcp.as_ref().map(|t| &t.exchange) {
            Some(None) => true,
            Some(Some(x)) => matches!(x.incoming, Incoming::Undecided { .. }),
            None => false,
        }
    }

    fn exchange(
        &mut self,
        host: &impl Host,
        stream: &mut Stream,
        which: Data,
        size: usize,
        end: bool,
    ) -> (DataAction, usize) {
        let direction = self.direction(host, stream);
        let Some(t) = stream.tcp.as_mut() else {
            return (DataAction::Continue, size);
        };
        let taken = t.exchange.take();
        let mut x = taken.unwrap_or_else(|| start(host, direction));
        let result = if which == incoming_side(direction) {
            self.read_peer(host, stream, &mut x, which, size, end)
        } else {
            // Ours goes first, or never: later it would land inside the app's bytes.
            if x.outgoing == Outgoing::Pending {
                x.outgoing = Outgoing::Done;
                let answer = direction == Direction::Outbound || stream.exchange_received;
                if answer && !host.replace_data_start(which, 0, &self.local_frame) {
                    host.log(
                        LogLevel::Debug,
                        "meshstats: the TCP exchange frame could not be written",
                    );
                }
            }
            (DataAction::Continue, size)
        };
        if let Some(t) = stream.tcp.as_mut() {
            t.exchange = Some(x);
        }
        result
    }

    fn read_peer(
        &mut self,
        host: &impl Host,
        stream: &mut Stream,
        x: &mut Exchange,
        which: Data,
        size: usize,
        end: bool,
    ) -> (DataAction, usize) {
        match x.incoming {
            Incoming::Done => (DataAction::Continue, size),
            Incoming::Skipping { left } => {
                let drop = usize::try_from(left).unwrap_or(usize::MAX).min(size);
                if drop > 0 {
                    host.replace_data_start(which, drop, &[]);
                }
                let left = left.saturating_sub(drop as u64);
                x.incoming = if left == 0 {
                    Incoming::Done
                } else {
                    Incoming::Skipping { left }
                };
                (DataAction::Continue, size.saturating_sub(drop))
            }
            Incoming::Undecided { need } => {
                if size < need && !end {
                    return (DataAction::Pause, 0);
                }
                let Some(prefix) = host.data(which, size.min(FRAME_HEADER_LEN + MAX_FRAME_BODY))
                else {
                    x.incoming = Incoming::Done;
                    return (DataAction::Continue, size);
                };
                match frame::scan(&prefix) {
                    Scan::NotFrame => {
                        x.incoming = Incoming::Done;
                        (DataAction::Continue, size)
                    }
                    Scan::NeedMore { need } if !end => {
                        x.incoming = Incoming::Undecided { need };
                        (DataAction::Pause, 0)
                    }
                    // The peer closed inside a frame: its bytes are the exchange's, not the app's.
                    Scan::NeedMore { .. } => {
                        x.incoming = Incoming::Done;
                        host.replace_data_start(which, size, &[]);
                        (DataAction::Continue, 0)
                    }
                    Scan::Refused { len, reason } => {
                        self.refuse_frame(host, &reason);
                        x.incoming = Incoming::Skipping { left: len };
                        self.read_peer(host, stream, x, which, size, end)
                    }
                    Scan::Frame { len, node, .. } => {
                        host.replace_data_start(which, len, &[]);
                        x.incoming = Incoming::Done;
                        self.believe_frame(host, stream, *node);
                        (DataAction::Continue, size.saturating_sub(len))
                    }
                }
            }
        }
    }

    /// The peer's frame decoded: the server side checks it as an HTTP caller's headers
    /// (`trust.rs`); the client side believes its upstream, as for HTTP responses.
    fn believe_frame(
        &mut self,
        host: &impl Host,
        stream: &mut Stream,
        node: crate::peer::PeerNode,
    ) {
        match self.direction(host, stream) {
            Direction::Inbound => {
                // Frames are read on mTLS connections only (`start`): the SAN is all to read.
                let cert = DownstreamCert {
                    mtls: Some(true),
                    principal: host
                        .property(&["connection", "uri_san_peer_certificate"])
                        .map(decode::string)
                        .unwrap_or_default(),
                };
                stream.downstream_peer = self.believe_downstream_node(host, &cert, Rc::new(node));
                stream.exchange_received = stream.downstream_peer.is_some();
            }
            Direction::Outbound => stream.upstream_peer = Some(Rc::new(node)),
        }
    }
}

/// The exchange for a new connection, decided at its first data: the server side on mTLS
/// connections only, the client side towards an upstream with a SPIFFE certificate only.
fn start(host: &impl Host, direction: Direction) -> Exchange {
    let on = match direction {
        Direction::Inbound => host
            .property(&["connection", "mtls"])
            .and_then(|b| decode::boolean(&b))
            .unwrap_or(false),
        Direction::Outbound => host
            .property(&["upstream", "uri_san_peer_certificate"])
            .map(decode::string)
            .is_some_and(|san| spiffe_namespace(&san).is_some()),
    };
    if on {
        Exchange {
            incoming: Incoming::Undecided { need: 1 },
            outgoing: Outgoing::Pending,
        }
    } else {
        Exchange::off()
    }
}

#[cfg(test)]
#[path = "tcp_exchange_tests.rs"]
mod tests;
