//! gRPC message counts (Istio's `istio_request_messages_total` /
//! `istio_response_messages_total`), read from the filter state Envoy's `grpc_stats` filter
//! writes (`emit_filter_state: true`, placed before this filter).
//!
//! Only gRPC streams (request `content-type` names gRPC) do any of this, and only when a
//! message metric is configured. Nothing happens per data chunk: the counts are Envoy's, read
//! with one property call per report. Reports happen on the root's tick (every
//! `tcp_reporting_duration`, as for TCP, with the stream made the effective context) while
//! the stream is open, and once at its end (`on_log`), each adding the deltas since the
//! previous report, so a long stream's counters move while it is open and end at the exact
//! totals. docs/grpc.md has the rules.
//!
//! Compiled as a child of `plugin` (`#[path]` there), like `tcp.rs`.

use super::{Root, Stream};
use crate::attributes::{Direction, Needs};
use crate::host::Host;
use crate::metrics::GrpcDelta;

/// The filter state `grpc_stats` writes; read as a property under `filter_state`.
pub const FILTER_STATE: [&str; 2] = ["filter_state", "envoy.filters.http.grpc_stats"];

/// What one gRPC stream already reported.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GrpcStream {
    reported_request: u64,
    reported_response: u64,
    /// The stream ended and made its last report.
    done: bool,
}

impl Stream {
    /// A gRPC stream whose last message report is still to come.
    pub fn grpc_open(&self) -> bool {
        self.grpc.as_ref().is_some_and(|g| !g.done)
    }
}

impl Root {
    /// After the request headers: a gRPC stream counts messages when a message metric is
    /// configured. No host call (the headers were already read).
    pub(super) fn note_grpc(&self, stream: &mut Stream) {
        if self.grpc_needs.is_some() && stream.seen.grpc == Some(true) && stream.grpc.is_none() {
            stream.grpc = Some(GrpcStream::default());
        }
    }

    /// What stream end reads: the HTTP metrics' needs, plus the message metrics' for a gRPC
    /// stream (its last report shares stream end's labels).
    pub(super) fn log_needs(&self, stream: &Stream) -> Needs {
        match (self.grpc_needs, stream.grpc.is_some()) {
            (Some(g), true) => union(self.needs, g),
            _ => self.needs,
        }
    }

    /// A periodic report while the stream is open (the caller made it the effective
    /// context). Client side, it waits for the response headers, which carry the peer's
    /// metadata: the labels must be the ones the last report will have. One host call when
    /// no message moved.
    pub fn report_grpc(&mut self, host: &impl Host, stream: &mut Stream) {
        if !stream.grpc_open() {
            return;
        }
        let direction = self.direction(host, stream);
        if direction == Direction::Outbound && stream.seen.status.is_none() {
            return;
        }
        let Some(delta) = grpc_delta(host, stream) else {
            return;
        };
        if self.grpc_needs.is_none() {
            return;
        }
        self.report(host, stream, super::Measured::Grpc(delta));
        mark_reported(stream, &delta, false);
    }

    /// The last report, from `on_log` once the stream's labels and slots are filled: reuses
    /// them, so it costs one property read (plus the counters' increments).
    pub(super) fn finish_grpc(&mut self, host: &impl Host, stream: &mut Stream) {
        if !stream.grpc_open() {
            return;
        }
        let delta = grpc_delta(host, stream).unwrap_or_default();
        if delta != GrpcDelta::default() {
            let report = crate::metrics::Report::GrpcStream(&delta);
            self.metrics
                .record_report(host, &self.dims, &self.slots, report);
        }
        mark_reported(stream, &delta, true);
    }
}

/// The messages since the last report; `None` when nothing moved or the filter state is
/// absent (no `grpc_stats` filter, or no message yet) or unreadable.
fn grpc_delta(host: &impl Host, stream: &Stream) -> Option<GrpcDelta> {
    let g = stream.grpc.as_ref()?;
    let (request, response) = decode_counts(&host.property(&FILTER_STATE)?)?;
    // Envoy's counts only grow; `saturating_sub` keeps a surprise from reporting nonsense.
    let delta = GrpcDelta {
        request: request.saturating_sub(g.reported_request),
        response: response.saturating_sub(g.reported_response),
    };
    (delta != GrpcDelta::default()).then_some(delta)
}

fn mark_reported(stream: &mut Stream, delta: &GrpcDelta, end: bool) {
    if let Some(g) = stream.grpc.as_mut() {
        g.reported_request = g.reported_request.saturating_add(delta.request);
        g.reported_response = g.reported_response.saturating_add(delta.response);
        g.done = end;
    }
}

fn union(a: Needs, b: Needs) -> Needs {
    let ([a_source, a_destination], [b_source, b_destination]) = (a.principals, b.principals);
    Needs {
        principals: [a_source || b_source, a_destination || b_destination],
        security_policy: a.security_policy || b.security_policy,
        response_flags: a.response_flags || b.response_flags,
        service: a.service || b.service,
        grpc_status: a.grpc_status || b.grpc_status,
        duration: a.duration || b.duration,
        request_bytes: a.request_bytes || b.request_bytes,
        response_bytes: a.response_bytes || b.response_bytes,
    }
}

/// `(request messages, response messages)` from the filter state's value, in any of the
/// forms Envoy has given it: the object's string form `"3,5"` (what Istio's plugin parsed),
/// or its proto form `envoy.extensions.filters.http.grpc_stats.v3.FilterObject`
/// (`request_message_count = 1`, `response_message_count = 2`), bare or inside an `Any`.
/// Anything else is `None`: no report rather than a wrong one.
pub fn decode_counts(bytes: &[u8]) -> Option<(u64, u64)> {
    if bytes.is_empty() {
        return None;
    }
    if bytes.iter().all(|b| b.is_ascii_digit() || *b == b',') {
        let text = std::str::from_utf8(bytes).ok()?;
        let (req, resp) = text.split_once(',')?;
        return Some((req.parse().ok()?, resp.parse().ok()?));
    }
    decode_filter_object(bytes, 2)
}

/// Protobuf wire format, fields 1 and 2 as varints (`FilterObject`); a length-delimited
/// field 2 is an `Any`'s `value`, decoded once more (`depth` bounds the nesting).
fn decode_filter_object(mut bytes: &[u8], depth: u8) -> Option<(u64, u64)> {
    let (mut req, mut resp, mut any) = (0u64, 0u64, false);
    while !bytes.is_empty() {
        let (tag, rest) = varint(bytes)?;
        bytes = rest;
        match (tag >> 3, tag & 7) {
            (1, 0) => {
                let (v, rest) = varint(bytes)?;
                (req, bytes, any) = (v, rest, true);
            }
            (2, 0) => {
                let (v, rest) = varint(bytes)?;
                (resp, bytes, any) = (v, rest, true);
            }
            (0, _) => return None,
            (_, 0) => bytes = varint(bytes)?.1,
            (field, 2) => {
                let (len, rest) = varint(bytes)?;
                let len = usize::try_from(len).ok()?;
                let value = rest.get(..len)?;
                bytes = rest.get(len..)?;
                if field == 2 && depth > 0 {
                    return decode_filter_object(value, depth - 1);
                }
            }
            (_, 1) => bytes = bytes.get(8..)?,
            (_, 5) => bytes = bytes.get(4..)?,
            _ => return None,
        }
    }
    any.then_some((req, resp))
}

/// One protobuf varint and the bytes after it; at most 10 bytes are read.
fn varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, b) in bytes.iter().take(10).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, bytes.get(i + 1..)?));
        }
    }
    None
}

#[cfg(test)]
#[path = "grpc_tests.rs"]
mod tests;
