//! User-defined metrics and dimensions in real Envoy sidecars: Mixer's double_request_count,
//! Istio's customized-stats scenario, custom histogram buckets and a `match` that leaves out
//! kube-probe requests. Configs come from `envoyfilter/examples/`, as users would take them.

use meshstats_integration::mesh::Bookinfo;
use meshstats_integration::{example_config, Backend, Envoy, Requests, Scrape};
use std::collections::BTreeMap;
use std::time::Duration;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn wait(envoy: &Envoy, what: &str, check: impl Fn(&Scrape) -> bool) -> Scrape {
    envoy
        .wait_for(Duration::from_secs(10), |s| check(s).then(|| s.clone()))
        .unwrap_or_else(|e| {
            panic!(
                "{e}: {what}; scrape:\n{}",
                envoy
                    .prometheus()
                    .map(|s| s.text().to_string())
                    .unwrap_or_default()
            )
        })
}

#[test]
fn mixer_double_request_count() {
    let app = Backend::start();
    let config = example_config("double-request-count.json");
    let mesh = Bookinfo::start(app.addr(), &config, &config).unwrap();
    Requests::get(mesh.entry, "/ratings/7").send(5);
    for (envoy, reporter) in [(&mesh.client, "client"), (&mesh.server, "server")] {
        let want = labels(&[
            ("reporter", reporter),
            ("source", "productpage-v1"),
            ("destination", "ratings-v1"),
            ("message", "twice the fun!"),
        ]);
        let s = wait(envoy, "istio_double_request_count == 10", |s| {
            s.series("istio_double_request_count")
                .iter()
                .any(|x| x.value == 10.0)
        });
        let series = s.series("istio_double_request_count");
        assert_eq!(series.len(), 1, "{reporter}: {series:?}");
        assert_eq!(series[0].labels, want, "{reporter}");
        assert_eq!(series[0].value, 10.0, "{reporter}: each request adds 2");
        // The standard metrics are still there.
        assert_eq!(s.sum("istio_requests_total", &[]), 5.0);
    }
}

#[test]
fn customized_stats_every_feature() {
    let app = Backend::start();
    let config = example_config("customized.json");
    let mesh = Bookinfo::start(app.addr(), &config, &config).unwrap();
    Requests::get(mesh.entry, "/ratings/7")
        .headers(&[("x-user", "alice")])
        .send(3);
    Requests::get(mesh.entry, "/ratings/7")
        .headers(&[("user-agent", "kube-probe/1.28")])
        .send(2);
    Requests::get(mesh.entry, "/ratings/7").send(1);

    let s = wait(
        &mesh.server,
        "requests_total from 4 non-probe requests",
        |s| s.sum("istio_requests_total", &[]) == 4.0 && s.sum("istio_custom", &[]) == 6.0,
    );
    // Added tags from request.host and a header, a standard tag overridden, three removed;
    // kube-probe requests not counted (match), everything else as standard.
    let series = s.series("istio_requests_total");
    assert_eq!(series.len(), 2, "{series:?}");
    for (user, n) in [("alice", 3.0), ("anonymous", 1.0)] {
        let x = series
            .iter()
            .find(|x| x.label("user") == user)
            .unwrap_or_else(|| panic!("no user={user}: {series:?}"));
        assert_eq!(x.value, n);
        assert_eq!(x.label("request_host"), "ratings:9080");
        assert_eq!(x.label("destination_version"), "v1");
        assert_eq!(x.label("reporter"), "destination");
        assert_eq!(x.label("source_workload"), "productpage-v1");
        for gone in [
            "grpc_response_status",
            "source_principal",
            "destination_principal",
        ] {
            assert!(
                !x.labels.contains_key(gone),
                "{gone} should be removed: {:?}",
                x.labels
            );
        }
        assert_eq!(x.labels.len(), 25 - 3 + 2, "{:?}", x.labels);
    }
    // Dropped metric.
    assert!(s.series("istio_request_bytes").is_empty());
    // A definitions[] counter starts with no labels, as in Istio: only the one metrics[] adds.
    let custom = s.series("istio_custom");
    assert_eq!(custom.len(), 1, "{custom:?}");
    assert_eq!(
        custom[0].value, 6.0,
        "not gated by the requests_total match"
    );
    assert_eq!(custom[0].labels, labels(&[("reporter", "proxy")]));
    // Own-label counter with a conditional value: no request took 250 ms.
    assert!(s.series("istio_slow_requests").is_empty() || s.sum("istio_slow_requests", &[]) == 0.0);
    // A gauge under a name of our choosing.
    let gauge = s.series("meshstats_last_response_code");
    assert_eq!(gauge.len(), 1, "{gauge:?}");
    assert_eq!(gauge[0].labels, labels(&[("destination", "ratings-v1")]));
    assert_eq!(gauge[0].value, 200.0);
    // Nothing was left out at load time.
    assert!(s.series("meshstats_config_errors_total").is_empty());
}

#[test]
fn histograms_use_the_configured_buckets() {
    let app = Backend::start();
    let config = example_config("customized.json");
    let mesh = Bookinfo::start(app.addr(), &config, &config).unwrap();
    Requests::get(mesh.entry, "/ratings/7").send(4);
    let s = wait(&mesh.server, "histograms flushed", |s| {
        s.series("istio_request_duration_milliseconds")
            .first()
            .and_then(|x| x.histogram.as_ref())
            .is_some_and(|h| h.count == 4.0)
            && s.series("istio_response_kilobytes")
                .first()
                .and_then(|x| x.histogram.as_ref())
                .is_some_and(|h| h.count == 4.0)
    });
    let bounds = |metric: &str| -> Vec<f64> {
        let series = s.series(metric);
        let h = series[0].histogram.clone().unwrap();
        h.buckets
            .iter()
            .map(|(le, _)| *le)
            .filter(|le| le.is_finite())
            .collect()
    };
    // exponential: 0.25 · 4^i for i < 8
    assert_eq!(
        bounds("istio_request_duration_milliseconds"),
        vec![0.25, 1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0]
    );
    assert_eq!(
        bounds("istio_response_kilobytes"),
        vec![1.0, 4.0, 16.0, 64.0, 256.0]
    );
    // The standard response_bytes keeps Envoy's default buckets (0.5 … 3 600 000).
    let default = bounds("istio_response_bytes");
    assert_eq!(
        (default.len(), default[0], default[18]),
        (19, 0.5, 3_600_000.0)
    );
    // Small responses: all four in the first kilobyte bucket.
    let kb = s.series("istio_response_kilobytes")[0]
        .histogram
        .clone()
        .unwrap();
    assert_eq!(kb.buckets[0], (1.0, 4.0));
}

/// Istio's spellings of node metadata, cluster metadata and peer attributes read the real
/// values from Envoy (and from the exchanged peer).
#[test]
fn istio_spellings_read_real_attributes() {
    let app = Backend::start();
    let config = r#"{"metrics": [{"name": "requests_total", "dimensions": {
        "local_app": "xds.node.metadata['LABELS'].app",
        "local_version": "xds.node.metadata.LABELS.version",
        "svc": "xds.cluster_metadata.filter_metadata.istio.services[0].name",
        "peer_app": "filter_state.upstream_peer.labels['app'] | filter_state.downstream_peer.labels['app']",
        "method": "request.method",
        "path": "request.url_path",
        "agent": "request.useragent | 'none'",
        "mixer_source": "source.workload.name | 'unknown'",
        "code_class": "string(response.code / 100) + 'xx'"}}]}"#;
    let mesh = Bookinfo::start(app.addr(), config, config).unwrap();
    Requests::get(mesh.entry, "/ratings/7")
        .headers(&[("user-agent", "probe/1")])
        .send(2);
    // The server's inbound cluster metadata (`istio.services`) cannot be read by the native
    // build (docs/native.md): its `svc` falls back to `unknown`.
    let server_svc = match meshstats_integration::build() {
        meshstats_integration::Build::Wasm => "ratings",
        meshstats_integration::Build::Native => "unknown",
    };
    for (envoy, local, peer, svc) in [
        (&mesh.client, "productpage", "ratings", "ratings"),
        (&mesh.server, "ratings", "productpage", server_svc),
    ] {
        let s = wait(envoy, "2 requests", |s| {
            s.sum("istio_requests_total", &[]) == 2.0
        });
        let series = s.series("istio_requests_total");
        assert_eq!(series.len(), 1, "{series:?}");
        let got: Vec<&str> = [
            "local_app",
            "local_version",
            "svc",
            "peer_app",
            "method",
            "path",
            "agent",
            "mixer_source",
            "code_class",
        ]
        .iter()
        .map(|k| series[0].label(k))
        .collect();
        assert_eq!(
            got,
            [
                local,
                "v1",
                svc,
                peer,
                "GET",
                "/ratings/7",
                "probe/1",
                "productpage-v1",
                "2xx"
            ],
            "{}",
            envoy.name()
        );
    }
}

/// An expression naming no attribute: the filter logs the same text `meshstats validate`
/// prints as a warning, keeps the dimension as `unknown` (Istio: it fails to evaluate), and
/// keeps counting.
#[test]
fn unevaluable_expression_same_words_in_filter_log_and_validate() {
    let app = Backend::start();
    let config = r#"{"metrics": [{"name": "requests_total", "dimensions": {"user": "request.header['x-user'] | 'anonymous'", "host": "request.host"}}]}"#;
    let mesh = Bookinfo::start(app.addr(), "{}", config).unwrap();
    Requests::get(mesh.entry, "/ratings/7").send(3);
    let s = wait(&mesh.server, "3 requests", |s| {
        s.sum("istio_requests_total", &[]) == 3.0
    });
    let series = s.series("istio_requests_total");
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].label("host"), "ratings:9080");
    assert_eq!(series[0].label("user"), "unknown");

    let dir = std::env::temp_dir().join(format!("meshstats-broken-expr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("broken.json");
    std::fs::write(&file, config).unwrap();
    let out = std::process::Command::new(meshstats_integration::meshstats_bin())
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a warning does not reject the config"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let printed = stderr
        .trim()
        .strip_prefix(&format!("{}: warning: ", file.display()))
        .and_then(|p| p.strip_suffix("; the label is `unknown`"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        printed.starts_with(
            "invalid meshstats config at `metrics[0].dimensions.user`: column 1: unknown attribute"
        ),
        "{printed}"
    );
    let log = mesh.server.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("meshstats: invalid"))
        .collect();
    assert!(!lines.is_empty(), "nothing logged");
    for line in lines {
        assert!(
            line.ends_with(&format!("meshstats: {printed}; the label is `unknown`")),
            "{line}"
        );
    }
    let errors = s.series("meshstats_config_errors_total");
    assert!(errors.len() == 1 && errors[0].value >= 1.0, "{errors:?}");
}

/// Header values with bytes that are not UTF-8 (Envoy lets 0x80-0xFF through) must neither
/// fail the request nor the filter: they are read lossily, and the label shows U+FFFD.
#[test]
fn non_utf8_header_values_do_not_break_anything() {
    use std::io::{BufRead, BufReader, Write};
    let app = Backend::start();
    let config = r#"{"metrics": [{"name": "requests_total", "dimensions": {"evil": "request.headers['x-evil'] | 'none'"}}]}"#;
    let mesh = Bookinfo::start(app.addr(), config, config).unwrap();
    for _ in 0..3 {
        let mut conn = std::net::TcpStream::connect(mesh.entry).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut req = b"GET /ratings/7 HTTP/1.1\r\nhost: ratings:9080\r\nx-evil: latin1 ".to_vec();
        req.extend_from_slice(&[0xe4, 0xf6, b' ', 0xff]);
        req.extend_from_slice(b"\r\nconnection: close\r\n\r\n");
        conn.write_all(&req).unwrap();
        let mut status = String::new();
        BufReader::new(conn).read_line(&mut status).unwrap();
        assert_eq!(status.trim_end(), "HTTP/1.1 200 OK");
    }
    for envoy in [&mesh.client, &mesh.server] {
        let s = wait(envoy, "3 requests", |s| {
            s.sum("istio_requests_total", &[]) == 3.0
        });
        let series = s.series("istio_requests_total");
        assert_eq!(series.len(), 1, "{series:?}");
        assert_eq!(series[0].label("evil"), "latin1 \u{fffd}\u{fffd} \u{fffd}");
    }
}

/// istio/proxy's `TestStatsPayload/Customized` on the client sidecar, in Istio's CEL spellings
/// and in Mixer's: exactly Istio's expected `istio_custom` and `istio_requests_total`.
#[test]
fn istio_customized_scenario_in_both_spellings() {
    let app = Backend::start();
    for spelling in ["cel", "mixer"] {
        let config = example_config(&format!("istio-e2e/customized.{spelling}.json"));
        let mesh = Bookinfo::start(app.addr(), &config, "{}").unwrap();
        Requests::get(mesh.entry, "/ratings/7").send(10);
        let s = wait(&mesh.client, "10 requests", |s| {
            s.sum("istio_requests_total", &[]) == 10.0 && s.sum("istio_custom", &[]) == 10.0
        });
        let custom = s.series("istio_custom");
        assert_eq!(custom.len(), 1, "{spelling}: {custom:?}");
        assert_eq!(
            custom[0].labels,
            labels(&[("reporter", "proxy"), ("source_principal", "malicious")]),
            "{spelling}"
        );
        assert_eq!(custom[0].value, 10.0, "{spelling}");
        let series = s.series("istio_requests_total");
        assert_eq!(series.len(), 1, "{spelling}: {series:?}");
        let got = &series[0].labels;
        let names: Vec<&str> = got.keys().map(String::as_str).collect();
        let mut want_names = vec![
            "reporter",
            "source_workload",
            "source_workload_namespace",
            "source_principal",
            "source_app",
            "source_version",
            "source_canonical_service",
            "source_canonical_revision",
            "source_cluster",
            "destination_workload",
            "destination_workload_namespace",
            "destination_principal",
            "destination_version",
            "destination_service",
            "destination_service_name",
            "destination_service_namespace",
            "destination_canonical_service",
            "destination_canonical_revision",
            "destination_cluster",
            "request_protocol",
            "response_code",
            "connection_security_policy",
            "configurable_metric_a",
            "route_name",
        ];
        want_names.sort();
        assert_eq!(
            names, want_names,
            "{spelling}: no destination_app, response_flags, grpc_response_status"
        );
        for (k, v) in [
            ("reporter", "source"),
            ("source_workload", "_productpage-v1"),
            ("source_workload_namespace", "_default"),
            ("source_principal", "malicious"),
            ("source_app", "_productpage"),
            ("source_version", "_productpage"),
            ("destination_workload", "unknown"),
            ("destination_version", "_v1"),
            ("destination_service_namespace", "_ratings"),
            ("request_protocol", "HTTP/1.1"),
            ("response_code", "200"),
            ("configurable_metric_a", "gateway"),
        ] {
            assert_eq!(got[k], v, "{spelling}: {k} in {got:?}");
        }
        assert_eq!(series[0].value, 10.0, "{spelling}");
        assert!(
            s.series("istio_request_duration_milliseconds").is_empty(),
            "{spelling}: dropped"
        );
        // The unparsable and the unevaluable dimension, once per Wasm VM (or module config).
        let errors = s.series("meshstats_config_errors_total");
        assert!(
            errors.len() == 1 && errors[0].value >= 2.0 && errors[0].value % 2.0 == 0.0,
            "{spelling}: {errors:?}"
        );
    }
}
