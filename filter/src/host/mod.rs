//! The filter's view of its host proxy. All logic is written against [`Host`], so it runs
//! unchanged under `cargo test` with [`fake::FakeHost`] and inside Envoy through an adapter
//! crate (`meshstats-wasm`, the proxy-wasm module), the only code that touches an ABI.

#[cfg(test)]
pub mod fake;

use crate::config::MetricKind;

/// Which header map a header call is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Headers {
    Request,
    Response,
    ResponseTrailers,
}

/// Which byte stream of a TCP connection a data call is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Data {
    /// From the downstream (the connection's client) towards the upstream.
    Downstream,
    /// From the upstream towards the downstream.
    Upstream,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// Host calls the filter makes. Every call is infallible from the caller's view: a host
/// error becomes `None`/no-op, because telemetry must never break the request it observes.
pub trait Host {
    /// An Envoy attribute (`["request", "duration"]`, `["node", "metadata", "NAME"]`, …) in
    /// its raw proxy-wasm encoding; `None` when absent or on a host error.
    fn property(&self, path: &[&str]) -> Option<Vec<u8>>;
    fn header(&self, map: Headers, name: &str) -> Option<String>;
    /// The whole map, for expressions over all headers (`size(request.headers)`).
    fn header_map(&self, map: Headers) -> Vec<(String, String)>;
    /// Sets (`Some`) or removes (`None`) a header.
    fn set_header(&self, map: Headers, name: &str, value: Option<&str>);
    /// Removes the headers named in `remove` and sets those in `add`, in `map` whose pairs
    /// are `current` (what `header_map` just returned). By default one `set_header` per
    /// header actually removed or set; a host where each call is costly (Wasm) replaces the
    /// whole map in one call instead.
    fn edit_headers(
        &self,
        map: Headers,
        current: &[(String, String)],
        remove: &[&str],
        add: &[(&str, &str)],
    ) {
        edit_headers_one_by_one(self, map, current, remove, add)
    }
    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<u32>;
    fn increment_metric(&self, id: u32, delta: i64);
    fn record_metric(&self, id: u32, value: u64);
    fn log(&self, level: LogLevel, message: &str);
    /// Stores `value` as this stream's filter state `wasm.<path>` (Envoy's `set_property`),
    /// where Envoy's access loggers can read it.
    fn set_property(&self, path: &[&str], value: &[u8]);

    // Capabilities one host has and another lacks. The defaults are "not available": the
    // logic then uses the calls above.

    /// Whether a series is named by label values on a metric defined once, with its label
    /// names, per configuration (Envoy's dynamic modules), rather than by one stat name per
    /// label tuple that the bootstrap's `stats_tags` take apart (proxy-wasm).
    fn labelled_metrics(&self) -> bool {
        false
    }
    /// Defines metric `name` with `labels`, once per configuration; `None` on a host error.
    fn define_labelled_metric(
        &self,
        _kind: MetricKind,
        _name: &str,
        _labels: &[&str],
    ) -> Option<u32> {
        None
    }
    /// Adds `delta` to the series of `id` with `values` (one per label, in definition order).
    fn increment_labelled_metric(&self, _id: u32, _values: &[&str], _delta: i64) {}
    /// Records one histogram sample in the series of `id` with `values`.
    fn record_labelled_metric(&self, _id: u32, _values: &[&str], _value: u64) {}

    /// Whether the TCP data a data callback holds can be read and edited ([`Host::data`],
    /// [`Host::replace_data_start`]): what the TCP metadata exchange needs.
    fn edits_data(&self) -> bool {
        false
    }
    /// The first `len` bytes (fewer if fewer arrived) of the data the current callback holds;
    /// `None` on a host error.
    fn data(&self, _which: Data, _len: usize) -> Option<Vec<u8>> {
        None
    }
    /// Drops the first `drain` bytes of that data and puts `prepend` before the rest; false
    /// on a host error.
    fn replace_data_start(&self, _which: Data, _drain: usize, _prepend: &[u8]) -> bool {
        false
    }

    /// Prepares reading the attributes at `paths` in one host call (Envoy's `expr_create`
    /// foreign function), once per configuration; `None` when the host cannot.
    fn prepare_properties(&self, _paths: &[&[&str]]) -> Option<u32> {
        None
    }
    /// Reads a prepared batch: one value per path, in order, each in the encoding of
    /// [`Host::property`] (`None` when absent). `None` on a host error: the caller then
    /// reads each path with `property`.
    fn properties(&self, _batch: u32) -> Option<Vec<Option<Vec<u8>>>> {
        None
    }
}

/// [`Host::edit_headers`] with one `set_header` per header removed or set.
pub fn edit_headers_one_by_one<H: Host + ?Sized>(
    host: &H,
    map: Headers,
    current: &[(String, String)],
    remove: &[&str],
    add: &[(&str, &str)],
) {
    for name in remove {
        if current.iter().any(|(k, _)| k == name) {
            host.set_header(map, name, None);
        }
    }
    for (name, value) in add {
        host.set_header(map, name, Some(value));
    }
}

/// Decoders for proxy-wasm property encodings (integers and durations are 8 bytes little
/// endian, booleans one byte, strings raw bytes).
pub mod decode {
    pub fn int(bytes: &[u8]) -> Option<i64> {
        let arr: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
        Some(i64::from_le_bytes(arr))
    }

    pub fn uint(bytes: &[u8]) -> Option<u64> {
        int(bytes).map(|v| v as u64)
    }

    pub fn boolean(bytes: &[u8]) -> Option<bool> {
        bytes.first().map(|b| *b != 0)
    }

    pub fn string(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// proxy-wasm's serialized string pairs (used for maps such as node LABELS): a count,
    /// then all key/value lengths, then the NUL-terminated keys and values.
    pub fn pairs(bytes: &[u8]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let Some(count) = u32_at(bytes, 0) else {
            return out;
        };
        let count = count as usize;
        let Some(mut data) = 4usize.checked_add(count.saturating_mul(8)) else {
            return out;
        };
        for i in 0..count {
            let (Some(klen), Some(vlen)) = (u32_at(bytes, 4 + i * 8), u32_at(bytes, 8 + i * 8))
            else {
                return Vec::new();
            };
            let (klen, vlen) = (klen as usize, vlen as usize);
            let key = bytes.get(data..data.saturating_add(klen));
            data = data.saturating_add(klen).saturating_add(1);
            let value = bytes.get(data..data.saturating_add(vlen));
            data = data.saturating_add(vlen).saturating_add(1);
            match (key, value) {
                (Some(k), Some(v)) => out.push((
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )),
                _ => return Vec::new(),
            }
        }
        out
    }

    fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
        let arr: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(u32::from_le_bytes(arr))
    }

    /// The inverse of [`pairs`], for fakes and tests.
    pub fn encode_pairs(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
        for (k, v) in pairs {
            out.extend((k.len() as u32).to_le_bytes());
            out.extend((v.len() as u32).to_le_bytes());
        }
        for (k, v) in pairs {
            out.extend(k.as_bytes());
            out.push(0);
            out.extend(v.as_bytes());
            out.push(0);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::decode::*;

    #[test]
    fn decodes_proxy_wasm_encodings() {
        assert_eq!(int(&(-5i64).to_le_bytes()), Some(-5));
        assert_eq!(int(&[1, 2]), None);
        assert_eq!(boolean(&[1]), Some(true));
        assert_eq!(boolean(&[]), None);
        assert_eq!(string(vec![b'a', 0xff]), "a\u{fffd}");
        let enc = encode_pairs(&[("app", "ratings"), ("version", ""), ("ü", "✓")]);
        assert_eq!(
            pairs(&enc),
            vec![
                ("app".into(), "ratings".into()),
                ("version".into(), "".into()),
                ("ü".into(), "✓".into())
            ]
        );
        assert!(pairs(&enc[..enc.len() - 3]).is_empty());
        assert!(pairs(&[255, 255, 255, 255]).is_empty());
    }
}
