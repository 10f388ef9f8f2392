//! Many attributes in one host call. Each property read crosses the Wasm boundary (1.5–4 µs
//! in V8), while Envoy's `expr_evaluate` foreign function evaluates one CEL list of all of
//! them in a single crossing. A [`Batch`] is prepared once per configuration (`expr_create`);
//! per request, [`Batch::read`] makes the one call and serves the logic's `property` reads
//! from its result, so the reading code is the same with and without a batch. A host without
//! the foreign function, or a failed call, leaves every read to `Host::property`.
//!
//! Wire format (Envoy's `serializeValue` of a CEL list): proxy-wasm pairs whose keys are the
//! elements and whose values are empty. An element that fails to evaluate fails the whole
//! call, so each path `a.b` becomes `has(a.b) ? [a.b] : []`: a nested list of zero elements
//! (absent) or one (the value, in `Host::property`'s encoding), which keeps "absent" apart
//! from zero and empty whatever the attribute's type. Only two-segment paths are batched:
//! Envoy 1.40's CEL fails a `has()` chain into metadata (`xds.upstream_host_metadata.
//! filter_metadata.istio.workload`: "Applying SELECT to non-message type") where
//! `get_property` answers, so deeper paths are read one by one.

use crate::config::MetricKind;
use crate::host::{Headers, Host, LogLevel};

/// At most this many attributes per batch: it bounds the expression Envoy compiles and the
/// bytes each request copies out of the host; attributes past it are read one by one.
pub const MAX_BATCH: usize = 24;

/// A batch the host has prepared: its handle and the paths, in the host's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    id: u32,
    paths: Vec<Vec<String>>,
}

impl Batch {
    /// Prepares `paths` (deduplicated, those CEL cannot name left out, at most
    /// [`MAX_BATCH`]); `None` when nothing is left or the host cannot batch.
    pub fn prepare(host: &impl Host, paths: &[Vec<String>]) -> Option<Batch> {
        let mut kept: Vec<Vec<String>> = Vec::new();
        for p in paths {
            if kept.len() < MAX_BATCH && batchable(p) && !kept.contains(p) {
                kept.push(p.clone());
            }
        }
        if kept.is_empty() {
            return None;
        }
        let refs: Vec<Vec<&str>> = kept
            .iter()
            .map(|p| p.iter().map(String::as_str).collect())
            .collect();
        let slices: Vec<&[&str]> = refs.iter().map(Vec::as_slice).collect();
        let id = host.prepare_properties(&slices)?;
        Some(Batch { id, paths: kept })
    }

    pub fn paths(&self) -> &[Vec<String>] {
        &self.paths
    }

    /// One host call for all the paths; the returned host answers `property` from it.
    pub fn read<'a, H: Host>(batch: Option<&'a Batch>, host: &'a H) -> Prefetched<'a, H> {
        let values = batch
            .and_then(|b| {
                let values = host.properties(b.id)?;
                // A host that answers with another shape is not believed.
                (values.len() == b.paths.len()).then_some(values)
            })
            .unwrap_or_default();
        Prefetched {
            host,
            paths: match (batch, values.is_empty()) {
                (Some(b), false) => &b.paths,
                _ => &[],
            },
            values,
        }
    }
}

/// Whether `path` goes into a batch: two segments (see the module doc), each an identifier
/// that is not a reserved word (`filter_state['wasm.x']` is read by itself).
pub fn batchable(path: &[String]) -> bool {
    const RESERVED: [&str; 21] = [
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    ];
    path.len() == 2
        && path.iter().all(|s| {
            let mut chars = s.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !RESERVED.contains(&s.as_str())
        })
}

/// The CEL list expression `expr_create` compiles for `paths` (see the module doc); `None`
/// when a path is not [`batchable`].
pub fn expression(paths: &[&[&str]]) -> Option<String> {
    let mut out = String::from("[");
    for (i, path) in paths.iter().enumerate() {
        let owned: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        if !batchable(&owned) {
            return None;
        }
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str("has(");
        out.push_str(&path.join("."));
        out.push_str(") ? [");
        out.push_str(&path.join("."));
        out.push_str("] : []");
    }
    out.push(']');
    Some(out)
}

/// Decodes `expr_evaluate`'s result: one value per path; `None` when it is not that shape.
pub fn decode(bytes: &[u8]) -> Option<Vec<Option<Vec<u8>>>> {
    keys(bytes)?
        .into_iter()
        .map(|element| {
            let mut inner = keys(element)?;
            match inner.len() {
                0 => Some(None),
                1 => Some(inner.pop().map(<[u8]>::to_vec)),
                _ => None,
            }
        })
        .collect()
}

/// The keys of serialized proxy-wasm pairs as raw bytes (integers and booleans are not
/// UTF-8): a count, all key/value lengths, then each key and value NUL-terminated.
fn keys(bytes: &[u8]) -> Option<Vec<&[u8]>> {
    let u32_at = |at: usize| -> Option<usize> {
        let arr: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(arr)).ok()
    };
    let count = u32_at(0)?;
    // Every pair takes at least 10 bytes, so a count the buffer cannot hold is refused
    // before anything is allocated for it.
    if count > bytes.len() / 10 + 1 {
        return None;
    }
    let mut data = count.checked_mul(8)?.checked_add(4)?;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let klen = u32_at(4 + i * 8)?;
        let vlen = u32_at(8 + i * 8)?;
        out.push(bytes.get(data..data.checked_add(klen)?)?);
        data = data.checked_add(klen)?.checked_add(1)?;
        data = data.checked_add(vlen)?.checked_add(1)?;
    }
    (data <= bytes.len()).then_some(out)
}

/// A host whose `property` answers from one batch call when the path is in it; every other
/// call, and every path outside the batch, goes to the host underneath.
pub struct Prefetched<'a, H: Host> {
    host: &'a H,
    paths: &'a [Vec<String>],
    values: Vec<Option<Vec<u8>>>,
}

impl<H: Host> Prefetched<'_, H> {
    fn prefetched(&self, path: &[&str]) -> Option<&Option<Vec<u8>>> {
        let i = self
            .paths
            .iter()
            .position(|p| p.len() == path.len() && p.iter().zip(path).all(|(a, b)| a == b))?;
        self.values.get(i)
    }
}

impl<H: Host> Host for Prefetched<'_, H> {
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        match self.prefetched(path) {
            Some(v) => v.clone(),
            None => self.host.property(path),
        }
    }
    fn header(&self, map: Headers, name: &str) -> Option<String> {
        self.host.header(map, name)
    }
    fn header_map(&self, map: Headers) -> Vec<(String, String)> {
        self.host.header_map(map)
    }
    fn set_header(&self, map: Headers, name: &str, value: Option<&str>) {
        self.host.set_header(map, name, value)
    }
    fn edit_headers(
        &self,
        map: Headers,
        current: &[(String, String)],
        remove: &[&str],
        add: &[(&str, &str)],
    ) {
        self.host.edit_headers(map, current, remove, add)
    }
    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<u32> {
        self.host.define_metric(kind, name)
    }
    fn increment_metric(&self, id: u32, delta: i64) {
        self.host.increment_metric(id, delta)
    }
    fn record_metric(&self, id: u32, value: u64) {
        self.host.record_metric(id, value)
    }
    fn log(&self, level: LogLevel, message: &str) {
        self.host.log(level, message)
    }
    fn set_property(&self, path: &[&str], value: &[u8]) {
        self.host.set_property(path, value)
    }
    fn labelled_metrics(&self) -> bool {
        self.host.labelled_metrics()
    }
    fn define_labelled_metric(&self, kind: MetricKind, name: &str, labels: &[&str]) -> Option<u32> {
        self.host.define_labelled_metric(kind, name, labels)
    }
    fn increment_labelled_metric(&self, id: u32, values: &[&str], delta: i64) {
        self.host.increment_labelled_metric(id, values, delta)
    }
    fn record_labelled_metric(&self, id: u32, values: &[&str], value: u64) {
        self.host.record_labelled_metric(id, values, value)
    }
    fn prepare_properties(&self, paths: &[&[&str]]) -> Option<u32> {
        self.host.prepare_properties(paths)
    }
    fn properties(&self, batch: u32) -> Option<Vec<Option<Vec<u8>>>> {
        self.host.properties(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::decode::encode_pairs;
    use crate::host::fake::FakeHost;

    fn path(s: &str) -> Vec<String> {
        s.split('.').map(str::to_string).collect()
    }

    #[test]
    fn expression_guards_every_element() {
        let e = expression(&[&["response", "code"], &["connection", "mtls"]]);
        assert_eq!(
            e.as_deref(),
            Some(
                "[has(response.code) ? [response.code] : [], \
                 has(connection.mtls) ? [connection.mtls] : []]"
            )
        );
        let metadata: &[&str] = &["xds", "upstream_host_metadata", "filter_metadata", "istio"];
        assert_eq!(expression(&[metadata]), None);
        assert_eq!(expression(&[&["filter_state", "wasm.x"]]), None);
        assert_eq!(expression(&[&["plugin_root_id"]]), None);
        assert_eq!(expression(&[&["a", "in"]]), None);
        assert_eq!(expression(&[&["a", "1b"]]), None);
    }

    /// What Envoy sends for `[[200], [], ["spiffe://a"]]`: elements are nested pairs blobs.
    #[test]
    fn decodes_present_absent_and_binary_values() {
        let code = 200i64.to_le_bytes();
        let inner_code = raw_pairs(&[&code]);
        let inner_none = raw_pairs(&[]);
        let inner_san = raw_pairs(&[b"spiffe://a"]);
        let outer = raw_pairs(&[&inner_code, &inner_none, &inner_san]);
        assert_eq!(
            decode(&outer),
            Some(vec![
                Some(code.to_vec()),
                None,
                Some(b"spiffe://a".to_vec())
            ])
        );
        assert_eq!(decode(&outer[..outer.len() - 4]), None, "truncated");
        assert_eq!(decode(&[255, 255, 255, 255]), None);
        // A string element is not a nested list.
        assert_eq!(decode(&encode_pairs(&[("abc", "")])), None);
    }

    fn raw_pairs(keys: &[&[u8]]) -> Vec<u8> {
        let mut out = (keys.len() as u32).to_le_bytes().to_vec();
        for k in keys {
            out.extend((k.len() as u32).to_le_bytes());
            out.extend(0u32.to_le_bytes());
        }
        for k in keys {
            out.extend(*k);
            out.extend([0, 0]);
        }
        out
    }

    #[test]
    fn prepare_bounds_and_dedups_and_read_falls_back() {
        let h = FakeHost::default();
        h.batch.set(true);
        let mut paths: Vec<Vec<String>> = (0..40).map(|i| path(&format!("a.b{i}"))).collect();
        paths.insert(1, path("a.b0"));
        paths.insert(2, vec!["filter_state".into(), "wasm.x".into()]);
        let b = Batch::prepare(&h, &paths).unwrap();
        assert_eq!(b.paths().len(), MAX_BATCH);
        assert_eq!(b.paths()[1], path("a.b1"));
        h.set_int(&["a", "b1"], 7);
        h.set_int(&["a", "b30"], 9);
        h.calls.borrow_mut().clear();
        let p = Batch::read(Some(&b), &h);
        assert_eq!(p.property(&["a", "b1"]), Some(7i64.to_le_bytes().to_vec()));
        assert_eq!(p.property(&["a", "b2"]), None);
        // Past the bound: read by itself.
        assert_eq!(p.property(&["a", "b30"]), Some(9i64.to_le_bytes().to_vec()));
        let calls = h.calls.borrow().clone();
        assert_eq!(calls.len(), 2, "{calls:?}");
        assert!(
            calls[0].starts_with("properties [a.b0, a.b1, "),
            "{calls:?}"
        );
        assert_eq!(calls[1], "property a.b30");
        // Batching off: nothing prepared, every read its own call.
        h.batch.set(false);
        assert_eq!(Batch::prepare(&h, &paths), None);
        h.calls.borrow_mut().clear();
        let p = Batch::read(Some(&b), &h);
        assert_eq!(p.property(&["a", "b1"]), Some(7i64.to_le_bytes().to_vec()));
        assert_eq!(*h.calls.borrow(), ["properties 0 failed", "property a.b1"]);
    }
}
