//! TCP metrics (Istio's `istio_tcp_*`), when the same module runs as a network filter
//! (`envoy.filters.network.wasm`) in front of a `tcp_proxy`.
//!
//! Per data chunk the filter only adds to the connection's byte counts: a host call costs
//! microseconds in Envoy's V8, a chunk may be a few bytes. Reports happen on the root's tick
//! (every `tcp_reporting_duration`, for each open connection, with the connection made the
//! effective context) and once at the end (`proxy_on_log`, which Envoy calls when the
//! connection closes). A report computes the labels as for a request and adds the deltas
//! since the previous report; `opened` counts in a connection's first report, `closed` in its
//! last, so both count each connection once. docs/tcp.md has the rules.
//!
//! Compiled as a child of `plugin` (`#[path]` there): it extends `Root`/`Stream`, whose
//! fields stay private to that module.

use super::{Root, Stream};
use crate::config::PluginConfig;
use crate::host::Host;
use crate::metrics::TcpDelta;

/// How long cached cluster metadata may be stale, in milliseconds.
pub const CACHE_PERIOD_MS: u64 = 30_000;
/// The shortest tick: a smaller `tcp_reporting_duration` would keep the VM busy for nothing.
pub const MIN_TICK_MS: u64 = 100;

/// What one TCP connection saw: totals so far and what was already reported.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TcpStream {
    /// Bytes from the downstream (Istio's `received`).
    received: u64,
    /// Bytes from the upstream (Istio's `sent`).
    sent: u64,
    reported_received: u64,
    reported_sent: u64,
    opened: bool,
    closed: bool,
    /// The metadata exchange, from the first data on (`tcp_exchange.rs`).
    pub(super) exchange: Option<super::tcp_exchange::Exchange>,
}

/// The root's timer: one tick period serves the cache expiry, TCP and gRPC reports and the
/// counter flush.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ticks {
    period_ms: u64,
    /// 0: no periodic TCP reports, only at close.
    tcp_ms: u64,
    since_cache_ms: u64,
    since_tcp_ms: u64,
}

impl Ticks {
    pub fn new(config: &PluginConfig) -> Ticks {
        let tcp_ms = config.tcp_reporting_ms();
        let period_ms = if tcp_ms == 0 {
            CACHE_PERIOD_MS
        } else {
            tcp_ms.clamp(MIN_TICK_MS, CACHE_PERIOD_MS)
        };
        Ticks {
            period_ms,
            tcp_ms,
            since_cache_ms: 0,
            since_tcp_ms: 0,
        }
    }
}

impl Stream {
    /// A TCP connection whose last report is still to come.
    pub fn tcp_open(&self) -> bool {
        self.tcp.as_ref().is_some_and(|t| !t.closed)
    }

    pub fn is_tcp(&self) -> bool {
        self.tcp.is_some()
    }
}

impl Root {
    /// The tick period to arm, in milliseconds.
    pub fn tick_period_ms(&self) -> u32 {
        u32::try_from(self.ticks.period_ms).unwrap_or(u32::MAX)
    }

    /// One tick: expires cached cluster metadata when due; true when open TCP connections
    /// and gRPC streams are due a report (the caller makes each the effective context and
    /// calls [`Root::report_tcp`] or [`Root::report_grpc`]).
    pub fn tick(&mut self) -> bool {
        let t = &mut self.ticks;
        t.since_cache_ms = t.since_cache_ms.saturating_add(t.period_ms);
        if t.since_cache_ms >= CACHE_PERIOD_MS {
            t.since_cache_ms = 0;
            self.on_tick();
        }
        let t = &mut self.ticks;
        if t.tcp_ms == 0 {
            return false;
        }
        t.since_tcp_ms = t.since_tcp_ms.saturating_add(t.period_ms);
        if t.since_tcp_ms < t.tcp_ms {
            return false;
        }
        t.since_tcp_ms = 0;
        true
    }

    /// A new downstream connection: the stream is TCP from now on. No host call.
    pub fn on_new_connection(&mut self, stream: &mut Stream) {
        stream.tcp = Some(TcpStream::default());
    }

    /// Bytes from the downstream. No host call: counted, reported later.
    pub fn on_downstream_data(&mut self, stream: &mut Stream, size: usize) {
        if let Some(t) = stream.tcp.as_mut() {
            t.received = t.received.saturating_add(size as u64);
        }
    }

    /// Bytes from the upstream. No host call.
    pub fn on_upstream_data(&mut self, stream: &mut Stream, size: usize) {
        if let Some(t) = stream.tcp.as_mut() {
            t.sent = t.sent.saturating_add(size as u64);
        }
    }

    /// Reports what the connection did since its last report; `end` makes it the last one.
    /// A periodic report with nothing new, or while the peer's exchange frame may still come,
    /// makes no host call.
    pub fn report_tcp(&mut self, host: &impl Host, stream: &mut Stream, end: bool) {
        let Some(t) = stream.tcp.as_ref() else { return };
        if t.closed || (!end && self.awaiting_peer_frame(host, stream)) {
            return;
        }
        let delta = TcpDelta {
            opened: !t.opened,
            closed: end,
            sent: t.sent.saturating_sub(t.reported_sent),
            received: t.received.saturating_sub(t.reported_received),
        };
        if delta == TcpDelta::default() {
            return;
        }
        self.report(host, stream, super::Measured::Tcp(delta));
        if let Some(t) = stream.tcp.as_mut() {
            t.opened = true;
            t.closed = end;
            t.reported_sent = t.sent;
            t.reported_received = t.received;
        }
    }
}

#[cfg(test)]
#[path = "tcp_tests.rs"]
mod tests;
