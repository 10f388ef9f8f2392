//! Peer identity a server can trust (`peer_metadata_trust`, docs/configuration.md), in real
//! Envoys: a caller forging `x-envoy-peer-metadata` straight to a ratings-v1 server sidecar
//! (INBOUND) over plaintext and over mTLS, a caller's headers sent into a client sidecar
//! (OUTBOUND), and malformed headers. Each test checks the exact label sets and counts
//! scraped from `/stats/prometheus`, the headers the caller got back, the headers the app
//! got, the rejection counter and log line, and Envoy's Wasm VM stats.
//!
//! The mTLS caller is an Envoy without the filter (`with_filter: false`) holding
//! productpage's certificate: it forwards the test's forged headers untouched, as a
//! compromised workload with a genuine certificate could.

use meshstats_cli::Direction;
use meshstats_filter::peer::{PeerNode, METADATA_HEADER, METADATA_ID_HEADER};
use meshstats_integration::mesh::{
    bookinfo_peer_labels, service_metadata, workload_metadata, Bookinfo, Sidecar, RATINGS_HOST,
    RATINGS_SERVICE,
};
use meshstats_integration::pki::{bookinfo_pki, Pki, PRODUCTPAGE_ID, RATINGS_ID};
use meshstats_integration::{http_get, Backend, Envoy, Response};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

type Labels = BTreeMap<String, String>;

const REQUESTS: &str = "istio_requests_total";
const REJECTED: &str = "meshstats_peer_metadata_rejected_total";
const MTLS_ONLY: &str = r#"{"peer_metadata_trust": "MTLS_ONLY"}"#;
/// The first words of the two log lines (`filter/src/trust.rs`).
const UNTRUSTED_LOG: &str =
    "meshstats: x-envoy-peer-metadata from a caller without a client certificate";
const CONTRADICTION_LOG: &str = "meshstats: x-envoy-peer-metadata claims namespace";

fn claim(workload: &str, namespace: &str, account: &str) -> PeerNode {
    let mut n = PeerNode {
        name: format!("{workload}-0"),
        workload_name: workload.into(),
        namespace: namespace.into(),
        service_account: account.into(),
        cluster_id: "Kubernetes".into(),
        ..PeerNode::default()
    };
    n.set_label("app", workload);
    n.set_label("version", "v9");
    n
}

/// The issue's forgery: a caller outside the mesh claiming kube-system's admin console.
fn admin_console() -> PeerNode {
    claim("admin-console", "kube-system", "admin")
}

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("meshstats-trust-{name}-{}", std::process::id()))
}

/// A ratings-v1 server sidecar in front of `app`, with mTLS (client certificates required)
/// when `pki` is given.
fn server(app: &Backend, config: &str, pki: Option<&Pki>) -> (Envoy, SocketAddr) {
    Sidecar {
        cluster_metadata: Some(service_metadata(RATINGS_SERVICE)),
        downstream_tls: pki.map(|p| p.server.clone()),
        // Room for the 60 KB header of the malformed cases.
        max_request_headers_kb: Some(96),
        ..Sidecar::new(
            "ratings-v1",
            Direction::Inbound,
            app.addr(),
            workload_metadata("ratings", "v1"),
        )
    }
    .config(config)
    .start()
    .unwrap()
}

/// An Envoy without the filter that forwards to `upstream` over mTLS with productpage's
/// certificate.
fn mtls_caller(upstream: SocketAddr, pki: &Pki) -> (Envoy, SocketAddr) {
    Sidecar {
        with_filter: false,
        upstream_tls: Some(pki.client.clone()),
        max_request_headers_kb: Some(96),
        ..Sidecar::new(
            "mtls-caller",
            Direction::Outbound,
            upstream,
            workload_metadata("productpage", "v1"),
        )
    }
    .start()
    .unwrap()
}

/// `GET` to the ratings app through `addr` with `value` as `x-envoy-peer-metadata`; must be
/// served 200 by the app.
fn forged(addr: SocketAddr, value: &str) -> Response {
    let r = http_get(
        addr,
        "/ratings/0",
        &[
            ("host", RATINGS_HOST),
            (METADATA_HEADER, value),
            (
                METADATA_ID_HEADER,
                "sidecar~10.9.9.9~admin-console-0.kube-system",
            ),
        ],
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "hello from backend\n");
    r
}

/// Whether the caller got the server's exchange headers back; when it did, they must say
/// who the server is.
fn answered(r: &Response) -> bool {
    match (r.header(METADATA_HEADER), r.header(METADATA_ID_HEADER)) {
        (None, None) => false,
        (Some(v), Some(id)) => {
            let node = PeerNode::from_header_value(v).unwrap();
            assert_eq!(
                (node.workload_name.as_str(), node.namespace.as_str()),
                ("ratings-v1", "default")
            );
            assert!(id.contains("ratings-v1"), "{id}");
            true
        }
        other => panic!("half an exchange: {other:?}"),
    }
}

/// The app never saw an exchange header (the backend records every request's headers).
fn assert_app_saw_no_exchange(app: &Backend, n: u64) {
    assert_eq!(app.request_count(), n);
    for r in app.requests() {
        let exchange: Vec<&String> = r
            .headers
            .keys()
            .filter(|k| k.starts_with("x-envoy-peer-metadata"))
            .collect();
        assert!(exchange.is_empty(), "the app got {exchange:?}");
    }
}

/// The server's labels for a request from `source` (labels replacing the source side of
/// productpage-v1 → ratings-v1).
fn server_labels(policy: &str, source: &[(&str, &str)]) -> Labels {
    let mut labels = bookinfo_peer_labels("destination");
    for (k, v) in [
        ("request_protocol", "http"),
        ("response_flags", "-"),
        ("connection_security_policy", policy),
        ("response_code", "200"),
        ("grpc_response_status", ""),
    ]
    .iter()
    .chain(source)
    {
        labels.insert(k.to_string(), v.to_string());
    }
    labels
}

/// The source side when the caller's headers are not believed: the certificate's identity
/// (`principal`, its namespace) or nothing.
fn certificate_only(principal: Option<&str>) -> Vec<(&str, &str)> {
    vec![
        ("source_workload", "unknown"),
        (
            "source_workload_namespace",
            if principal.is_some() {
                "default"
            } else {
                "unknown"
            },
        ),
        ("source_principal", principal.unwrap_or("unknown")),
        ("source_app", "unknown"),
        ("source_version", "unknown"),
        ("source_canonical_service", "unknown"),
        ("source_canonical_revision", "latest"),
        ("source_cluster", "unknown"),
    ]
}

/// The rejection counter when nothing was rejected: never defined in the Wasm build (defined
/// at the first rejection); 0 in the native build, which must define it at config time (Envoy
/// 1.40 refuses later definitions, docs/native.md).
fn never_rejected() -> Option<f64> {
    match meshstats_integration::build() {
        meshstats_integration::Build::Wasm => None,
        meshstats_integration::Build::Native => Some(0.0),
    }
}

/// Waits until `istio_requests_total` has exactly `expected` (labels → count), then returns
/// the rejection counter (`None`: never defined).
fn assert_series(envoy: &Envoy, expected: &[(Labels, f64)]) -> Option<f64> {
    let found = envoy.wait_for(Duration::from_secs(10), |s| {
        let mut got: Vec<(Labels, f64)> = s
            .series(REQUESTS)
            .into_iter()
            .map(|x| (x.labels, x.value))
            .collect();
        got.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let mut want = expected.to_vec();
        want.sort_by(|a, b| a.partial_cmp(b).unwrap());
        (got == want).then(|| s.counter(REJECTED, &[]))
    });
    match found {
        Ok(rejected) => rejected,
        Err(e) => panic!(
            "{e}: wanted {expected:#?}\ngot {:#?}",
            envoy.prometheus().map(|s| s
                .series(REQUESTS)
                .into_iter()
                .map(|x| (x.labels, x.value))
                .collect::<Vec<_>>())
        ),
    }
}

fn log_lines(envoy: &Envoy, start: &str) -> usize {
    envoy.log().lines().filter(|l| l.contains(start)).count()
}

/// Envoy's Wasm VM stats (`/stats`, names as in Envoy 1.40): VMs created and active, and
/// the plugin's `vm_reload*` counters, which move only when a VM failed and was replaced.
/// Empty under the native build: it has no VM to fail, and a crash there ends the Envoy,
/// which every request after it shows.
fn vm_stats(envoy: &Envoy) -> BTreeMap<String, u64> {
    if meshstats_integration::build() == meshstats_integration::Build::Native {
        return BTreeMap::new();
    }
    let text = envoy.stats_text().unwrap();
    let stats: BTreeMap<String, u64> = text
        .lines()
        .filter_map(|l| l.split_once(": "))
        .filter(|(k, _)| {
            k.starts_with("wasm.envoy.wasm.runtime.")
                || k.contains(".vm_reload")
                || *k == "wasm.wasm_vm_count"
        })
        .map(|(k, v)| (k.to_string(), v.trim().parse().unwrap()))
        .collect();
    let reloads: Vec<_> = stats.keys().filter(|k| k.contains(".vm_reload")).collect();
    assert_eq!(reloads.len(), 4, "{stats:?}");
    assert!(
        stats.contains_key("wasm.envoy.wasm.runtime.v8.created"),
        "{stats:?}"
    );
    stats
}

fn assert_no_vm_failure(envoy: &Envoy, before: &BTreeMap<String, u64>) {
    let after = vm_stats(envoy);
    assert_eq!(&after, before, "a Wasm VM failed or was replaced");
    for (k, v) in &after {
        if k.contains(".vm_reload") {
            assert_eq!(*v, 0, "{k}");
        }
    }
}

#[test]
fn any_believes_a_plaintext_forgery_as_istio_does() {
    let app = Backend::start();
    let (envoy, listen) = server(&app, "{}", None);
    let vm = vm_stats(&envoy);
    for _ in 0..3 {
        let r = forged(listen, &admin_console().to_header_value());
        assert!(
            answered(&r),
            "Istio's behaviour: the caller learns who the server is"
        );
    }
    assert_app_saw_no_exchange(&app, 3);
    let believed = server_labels(
        "none",
        &[
            ("source_workload", "admin-console"),
            ("source_workload_namespace", "kube-system"),
            ("source_principal", "unknown"),
            ("source_app", "admin-console"),
            ("source_version", "v9"),
            ("source_canonical_service", "admin-console"),
            ("source_canonical_revision", "latest"),
            ("source_cluster", "Kubernetes"),
        ],
    );
    assert_eq!(assert_series(&envoy, &[(believed, 3.0)]), never_rejected());
    assert_eq!(log_lines(&envoy, "x-envoy-peer-metadata"), 0);
    assert_no_vm_failure(&envoy, &vm);
}

#[test]
fn mtls_only_does_not_believe_or_answer_a_plaintext_caller() {
    let app = Backend::start();
    let (envoy, listen) = server(&app, MTLS_ONLY, None);
    let vm = vm_stats(&envoy);
    for _ in 0..4 {
        let r = forged(listen, &admin_console().to_header_value());
        assert!(!answered(&r), "a stranger learns nothing: {:?}", r.headers);
        assert_eq!(r.header("x-saw-peer-metadata"), Some("no"));
    }
    assert_app_saw_no_exchange(&app, 4);
    let unknown = server_labels("none", &certificate_only(None));
    assert_eq!(assert_series(&envoy, &[(unknown, 4.0)]), Some(4.0));
    assert_eq!(log_lines(&envoy, UNTRUSTED_LOG), 1, "{}", envoy.log());
    assert_no_vm_failure(&envoy, &vm);
}

/// Over mTLS, in both modes: a header that agrees with the certificate is believed and
/// answered; one that claims another namespace or service account is not, and the labels
/// come from the certificate. Malformed headers over mTLS are labelled from the
/// certificate too, and are not rejections.
fn mtls_caller_is_checked_against_its_certificate(config: &str, name: &str) {
    let pki = bookinfo_pki(&scratch(name)).unwrap();
    let app = Backend::start();
    let (envoy, listen) = server(&app, config, Some(&pki));
    let (_caller, entry) = mtls_caller(listen, &pki);
    let vm = vm_stats(&envoy);
    let consistent = [
        claim("productpage-v1", "default", "productpage"),
        // Istio's proxies send no service account: nothing to contradict.
        claim("productpage-v1", "default", ""),
        claim("productpage-v1", "default", "productpage"),
    ];
    for c in &consistent {
        assert!(answered(&forged(entry, &c.to_header_value())));
    }
    let contradicting = [
        admin_console(),
        admin_console(),
        // The namespace is right, the service account is not.
        claim("productpage-v1", "default", "admin"),
        claim("productpage-v1", "default", "admin"),
    ];
    for c in &contradicting {
        let r = forged(entry, &c.to_header_value());
        assert!(!answered(&r), "{:?}", r.headers);
    }
    let malformed = send_malformed(entry);
    assert_app_saw_no_exchange(&app, (3 + 4 + malformed) as u64);
    let mut believed = server_labels(
        "mutual_tls",
        &[
            ("source_principal", PRODUCTPAGE_ID),
            ("source_app", "productpage-v1"),
            ("source_version", "v9"),
            ("source_canonical_service", "productpage-v1"),
            ("source_canonical_revision", "latest"),
        ],
    );
    believed.insert("destination_principal".into(), RATINGS_ID.into());
    let mut cert_only = server_labels("mutual_tls", &certificate_only(Some(PRODUCTPAGE_ID)));
    cert_only.insert("destination_principal".into(), RATINGS_ID.into());
    let rejected = assert_series(
        &envoy,
        &[(believed, 3.0), (cert_only, (4 + malformed) as f64)],
    );
    assert_eq!(
        rejected,
        Some(4.0),
        "each contradiction counted, nothing else"
    );
    assert_eq!(log_lines(&envoy, CONTRADICTION_LOG), 1, "{}", envoy.log());
    assert_eq!(log_lines(&envoy, "x-envoy-peer-metadata"), 1);
    assert_no_vm_failure(&envoy, &vm);
    let _ = std::fs::remove_dir_all(scratch(name));
}

#[test]
fn any_checks_an_mtls_caller_against_its_certificate() {
    mtls_caller_is_checked_against_its_certificate("{}", "any");
}

#[test]
fn mtls_only_checks_an_mtls_caller_against_its_certificate() {
    mtls_caller_is_checked_against_its_certificate(MTLS_ONLY, "mtls-only");
}

/// A client sidecar replaces a caller's exchange headers with its own: the server (over
/// mTLS, `MTLS_ONLY`) sees productpage, the app and the caller see no exchange headers; a
/// client sidecar in front of an app without a sidecar (a gateway's position) sends only
/// its own.
#[test]
fn the_client_side_replaces_a_callers_headers() {
    let pki = bookinfo_pki(&scratch("outbound")).unwrap();
    let app = Backend::start();
    let mesh = Bookinfo::start_mtls(app.addr(), &pki, MTLS_ONLY).unwrap();
    let vm = vm_stats(&mesh.server);
    for _ in 0..3 {
        let r = forged(mesh.entry, &admin_console().to_header_value());
        assert!(!answered(&r), "{:?}", r.headers);
    }
    assert_app_saw_no_exchange(&app, 3);
    let mut server = bookinfo_peer_labels("destination");
    for (k, v) in [
        ("source_principal", PRODUCTPAGE_ID),
        ("destination_principal", RATINGS_ID),
        ("request_protocol", "http"),
        ("response_flags", "-"),
        ("connection_security_policy", "mutual_tls"),
        ("response_code", "200"),
        ("grpc_response_status", ""),
    ] {
        server.insert(k.into(), v.into());
    }
    assert_eq!(
        assert_series(&mesh.server, &[(server, 3.0)]),
        never_rejected()
    );
    assert_no_vm_failure(&mesh.server, &vm);

    // A gateway's position: what reaches the app is the client sidecar's own headers.
    let (gateway, entry) = Sidecar::new(
        "productpage-v1",
        Direction::Outbound,
        app.addr(),
        workload_metadata("productpage", "v1"),
    )
    .start()
    .unwrap();
    let r = forged(entry, &admin_console().to_header_value());
    assert!(r.header(METADATA_HEADER).is_none());
    let sent = app.last_request().unwrap().headers;
    let node = PeerNode::from_header_value(&sent[METADATA_HEADER]).unwrap();
    assert_eq!(
        (node.workload_name.as_str(), node.namespace.as_str()),
        ("productpage-v1", "default")
    );
    assert!(
        sent[METADATA_ID_HEADER].contains("productpage-v1"),
        "{}",
        sent[METADATA_ID_HEADER]
    );
    drop(gateway);
    let _ = std::fs::remove_dir_all(scratch("outbound"));
}

/// A protobuf `Struct` of `(key, Value bytes)` entries, written out by hand so the test does
/// not share the filter's encoder.
fn struct_bytes(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in entries {
        let mut entry = vec![0x0a, key.len() as u8];
        entry.extend_from_slice(key.as_bytes());
        entry.push(0x12);
        push_len(&mut entry, value.len());
        entry.extend_from_slice(value);
        out.push(0x0a);
        push_len(&mut out, entry.len());
        out.extend(entry);
    }
    out
}

fn push_len(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `(case, header value, decodes)`: each malformed header, and whether it decodes at all
/// (then, in `ANY` and without a certificate to contradict, it is believed and answered).
fn malformed_cases() -> Vec<(&'static str, String, bool)> {
    let valid = admin_console().to_header_value();
    let string = |s: &[u8]| {
        let mut v = vec![0x1a];
        push_len(&mut v, s.len());
        v.extend_from_slice(s);
        v
    };
    // Every known key with a type it never has: ignored, so the peer is a node of nothing.
    let wrong_types = struct_bytes(&[
        ("NAME", [vec![0x11], 7.0f64.to_le_bytes().to_vec()].concat()),
        ("NAMESPACE", vec![0x20, 0x01]),
        (
            "WORKLOAD_NAME",
            vec![0x32, 0x05, 0x0a, 0x03, 0x1a, 0x01, b'x'],
        ),
        ("LABELS", string(b"app=admin-console")),
        ("SERVICE_ACCOUNT", vec![0x2a, 0x00]),
        ("CLUSTER_ID", vec![0x08, 0x00]),
    ]);
    let mut deep = string(b"x");
    for _ in 0..100 {
        deep = [vec![0x2a], {
            let s = struct_bytes(&[("a", deep.clone())]);
            let mut l = Vec::new();
            push_len(&mut l, s.len());
            l.extend(s);
            l
        }]
        .concat();
    }
    vec![
        ("bad base64", "!!not*base64!!".to_string(), false),
        (
            "truncated protobuf",
            valid[..valid.len() / 2].to_string(),
            false,
        ),
        ("truncated length", "CikK".to_string(), false),
        ("60 KB of zeros", "A".repeat(60 * 1024), false),
        ("wrong field types", base64(&wrong_types), true),
        (
            "nested 100 deep",
            base64(&struct_bytes(&[("LABELS", deep)])),
            false,
        ),
        (
            "invalid UTF-8",
            base64(&struct_bytes(&[("NAME", string(&[0xff, 0xfe]))])),
            false,
        ),
        ("unknown wire type", base64(&[0x0f, 0x01]), false),
    ]
}

/// Sends every malformed case twice through `entry`: each must be served 200 and answered
/// only when it decodes (a node of nothing claims nothing a certificate could contradict).
/// Returns the number of requests.
fn send_malformed(entry: SocketAddr) -> usize {
    let cases = malformed_cases();
    for (case, value, decodes) in &cases {
        for i in 0..2 {
            let r = forged(entry, value);
            assert_eq!(answered(&r), *decodes, "{case} #{i}");
            assert_eq!(r.header("x-saw-peer-metadata"), Some("no"), "{case}");
        }
    }
    2 * cases.len()
}

#[test]
fn malformed_headers_are_served_and_never_fail_the_vm() {
    let app = Backend::start();
    let (envoy, listen) = server(&app, "{}", None);
    let vm = vm_stats(&envoy);
    let n = send_malformed(listen);
    assert_app_saw_no_exchange(&app, n as u64);
    let unknown = server_labels("none", &certificate_only(None));
    assert_eq!(
        assert_series(&envoy, &[(unknown, n as f64)]),
        never_rejected()
    );
    assert_no_vm_failure(&envoy, &vm);
    // Still a working exchange afterwards.
    let good = claim("productpage-v1", "default", "");
    assert!(answered(&forged(listen, &good.to_header_value())));
}
