//! The native build (`dist/libmeshstats.so`) against the Wasm build (`dist/meshstats.wasm`) in
//! real Envoys: the same two sidecars (productpage-v1 → ratings-v1 → app), the same node
//! metadata, configuration and requests, once with each build. Every `istio_*` and
//! `meshstats_*` series both sidecars serve on `/stats/prometheus` must be the same (names,
//! every label, counter values, histogram buckets and counts), and so must the JSON log
//! lines, apart from what differs between any two runs (ports, ids, times).
//!
//! The comparison is what confirms the attribute ids the native module assumes for Envoy
//! 1.40 (`native/src/host.rs`): a shifted id reads another attribute, or fails to read, and
//! the native value then differs from the Wasm one. The configuration reads each id the
//! module maps: the standard labels (mTLS, cluster name, response flags, sizes, duration),
//! five custom dimensions, and a log with one variable per attribute. The app delays some
//! answers by 20 ms and the duration histogram has a bucket (10, 1000] ms, so
//! `request.duration` in the wrong unit lands elsewhere.
//!
//! The native bootstrap is the Wasm one with the filter swapped (the contract of issue 11:
//! `DynamicModuleFilter`, `filter_name` = the root id, `filter_config` = the same JSON), no
//! `stats_tags`, bucket settings that match the labelled stats' names, the runtime flag that
//! strips the `dynamicmodulescustom` namespace, and the node in `MESHSTATS_NODE_METADATA`.

use meshstats_cli::Direction;
use meshstats_integration::mesh::{service_metadata, workload_metadata, Sidecar, RATINGS_SERVICE};
use meshstats_integration::{free_port, Backend, Envoy, Requests, Scrape, Series};
use meshstats_testkit::artifact;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The server's configuration: five custom dimensions, duration buckets that tell
/// milliseconds from other units, and a log with one variable per attribute id.
const SERVER_CONFIG: &str = r#"{
  "metrics": [
    {"name": "requests_total", "dimensions": {
      "req_method": "request.method",
      "req_url_path": "request.url_path",
      "req_agent": "request.useragent | 'none'",
      "req_details": "response.code_details",
      "req_mtls": "connection.mtls"
    }},
    {"name": "request_duration_milliseconds",
     "buckets": {"explicit_buckets": {"bounds": [1, 10, 1000, 10000]}}}
  ],
  "logs": [{"name": "attrs", "variables": {
    "path": "request.path", "url_path": "request.url_path", "host": "request.host",
    "scheme": "request.scheme", "method": "request.method", "referer": "request.referer | ''",
    "useragent": "request.useragent", "request_id": "request.id", "protocol": "request.protocol",
    "query": "request.query", "duration_ms": "int(request.duration) / 1000000",
    "request_size": "request.size", "request_total_size": "request.total_size",
    "code": "response.code", "code_details": "response.code_details",
    "flags": "response.flags", "flags_short": "response.flags_short",
    "response_size": "response.size", "response_total_size": "response.total_size",
    "source_address": "source.address", "source_port": "source.port",
    "destination_address": "destination.address", "destination_port": "destination.port",
    "connection_id": "connection.id", "mtls": "connection.mtls",
    "sni": "connection.requested_server_name | ''",
    "upstream_address": "upstream.address", "upstream_port": "upstream.port",
    "upstream_local_address": "upstream.local_address",
    "upstream_failure": "upstream.transport_failure_reason | ''",
    "cluster": "xds.cluster_name", "route": "xds.route_name",
    "direction": "xds.listener_direction", "root_id": "plugin_root_id",
    "node_id": "xds.node.id", "workload": "source.workload.name | 'none'"
  }}]
}"#;

/// The client's: the standard metrics, the same duration buckets, and Istio's access log.
const CLIENT_CONFIG: &str = r#"{
  "metrics": [{"name": "request_duration_milliseconds",
               "buckets": {"explicit_buckets": {"bounds": [1, 10, 1000, 10000]}}}],
  "logs": [{"name": "client", "preset": "istio"}]
}"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Build {
    Wasm,
    Native,
}

/// The environment is the native module's only way to learn its node (Envoy 1.40's ABI
/// cannot read `node`), and each sidecar has its own: Envoys of this file start one at a time.
static SPAWN: Mutex<()> = Mutex::new(());

/// The Wasm bootstrap with the native filter instead (see the module docs).
fn native_bootstrap(mut bootstrap: Value) -> Value {
    let hcm = "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/http_filters";
    let filters = bootstrap
        .pointer_mut(hcm)
        .and_then(Value::as_array_mut)
        .expect("http_filters");
    for f in filters.iter_mut() {
        if f["name"] != "envoy.filters.http.wasm" {
            continue;
        }
        let wasm = &f["typed_config"]["config"];
        *f = json!({
            "name": "meshstats",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
                "dynamic_module_config": {"name": "meshstats"},
                "filter_name": wasm["root_id"],
                "filter_config": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": wasm["configuration"]["value"],
                },
            },
        });
    }
    let stats = bootstrap["stats_config"]
        .as_object_mut()
        .expect("stats_config");
    stats.remove("stats_tags");
    if let Some(buckets) = stats
        .get_mut("histogram_bucket_settings")
        .and_then(Value::as_array_mut)
    {
        for b in buckets {
            let regex = b["match"]["safe_regex"]["regex"].as_str().unwrap_or("");
            let metric = regex
                .rsplit(")?")
                .next()
                .unwrap_or("")
                .trim_end_matches('$')
                .to_string();
            // Labelled stats are named `<namespace>.<metric>` followed by their tags.
            b["match"]["safe_regex"]["regex"] =
                json!(format!(r"^dynamicmodulescustom\.{metric}(\..*)?$"));
        }
    }
    bootstrap["layered_runtime"] = json!({"layers": [{"name": "static", "static_layer": {
        "envoy.reloadable_features.dynamic_modules_strip_custom_stat_prefix": true
    }}]});
    bootstrap
}

/// Starts `sidecar` under `build`; returns the Envoy and its listener.
fn start(sidecar: &Sidecar, build: Build, module_dir: &PathBuf) -> (Envoy, SocketAddr) {
    let _one_at_a_time = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut bootstrap = sidecar.bootstrap(listen, admin);
    if build == Build::Native {
        bootstrap = native_bootstrap(bootstrap);
        std::env::set_var("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", module_dir);
        std::env::set_var(
            "MESHSTATS_NODE_METADATA",
            bootstrap["node"]["metadata"].to_string(),
        );
        std::env::set_var(
            "MESHSTATS_NODE_ID",
            bootstrap["node"]["id"].as_str().unwrap_or(""),
        );
    }
    let name = format!("{}-{build:?}", sidecar.name);
    let envoy = Envoy::start_with_args(
        &name,
        &bootstrap,
        admin,
        &["--file-flush-interval-msec", "100"],
    );
    for var in [
        "ENVOY_DYNAMIC_MODULES_SEARCH_PATH",
        "MESHSTATS_NODE_METADATA",
        "MESHSTATS_NODE_ID",
    ] {
        std::env::remove_var(var);
    }
    (envoy.unwrap_or_else(|e| panic!("{name}: {e}")), listen)
}

/// What one run served: each sidecar's series by metric and its log lines.
struct Run {
    client: BTreeMap<String, Vec<Series>>,
    server: BTreeMap<String, Vec<Series>>,
    client_logs: Vec<Value>,
    server_logs: Vec<Value>,
    server_listen: SocketAddr,
    /// Exchange headers that reached the app (the server sidecar must remove them).
    app_saw_exchange: usize,
}

/// 3 answered after 20 ms, 2 with 503 from the app, 1 reset by the app (a response flag).
const REQUESTS: usize = 6;

fn run(build: Build) -> Run {
    let module_dir = std::env::temp_dir().join(format!("meshstats-native-{}", std::process::id()));
    std::fs::create_dir_all(&module_dir).expect("module dir");
    let so = artifact("MESHSTATS_NATIVE", "dist/libmeshstats.so", "make build");
    std::fs::copy(&so, module_dir.join("libmeshstats.so")).expect("copy module");
    let app = Backend::start();
    let mut server = Sidecar::new(
        "ratings-v1",
        Direction::Inbound,
        app.addr(),
        workload_metadata("ratings", "v1"),
    )
    .config(SERVER_CONFIG);
    // Both halves start from the Wasm bootstrap whatever `$MESHSTATS_BUILD` says:
    // `native_bootstrap` turns it into the native one, so the two runs differ in the filter only.
    server.build = meshstats_cli::Build::Wasm;
    server.cluster_name = Some("inbound|9080||".into());
    let (server_envoy, server_listen) = start(&server, build, &module_dir);
    let mut client = Sidecar::new(
        "productpage-v1",
        Direction::Outbound,
        server_listen,
        workload_metadata("productpage", "v1"),
    )
    .config(CLIENT_CONFIG);
    client.build = meshstats_cli::Build::Wasm;
    client.root_id = "stats_outbound".into();
    client.cluster_name = Some(format!("outbound|9080||{RATINGS_SERVICE}"));
    client.cluster_metadata = Some(service_metadata(RATINGS_SERVICE));
    let (client_envoy, entry) = start(&client, build, &module_dir);

    let ua = ("user-agent", "native-smoke/1");
    Requests::get(entry, "/ratings/1")
        .headers(&[ua, ("x-backend-delay-ms", "20")])
        .send(3);
    Requests::get(entry, "/ratings/2?x=1")
        .headers(&[ua, ("x-backend-status", "503")])
        .status(503)
        .send(2);
    Requests::get(entry, "/ratings/3")
        .headers(&[ua, ("x-backend-reset", "before")])
        .status(503)
        .send(1);

    let settled = |envoy: &Envoy| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let scrape = envoy.prometheus().expect("scrape");
            let count = |m: &str| -> f64 { scrape.series(m).iter().map(|s| s.value).sum::<f64>() };
            let want = REQUESTS as f64;
            if count("istio_requests_total") == want
                && count("istio_request_duration_milliseconds") == want
                && count("istio_response_bytes") == want
            {
                return scrape;
            }
            assert!(
                Instant::now() < deadline,
                "{}: the {REQUESTS} requests are not all on /stats/prometheus:\n{}",
                envoy.name(),
                scrape.text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let (client_scrape, server_scrape) = (settled(&client_envoy), settled(&server_envoy));
    let logs = |envoy: &Envoy| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines: Vec<Value> = String::from_utf8_lossy(&envoy.stdout())
                .lines()
                .filter(|l| l.starts_with('{'))
                .map(|l| serde_json::from_str(l).expect("a JSON log line"))
                .collect();
            if lines.len() >= REQUESTS || Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    Run {
        client: ours(&client_scrape),
        server: ours(&server_scrape),
        client_logs: logs(&client_envoy),
        server_logs: logs(&server_envoy),
        server_listen,
        app_saw_exchange: app
            .requests()
            .iter()
            .filter(|r| {
                r.headers
                    .keys()
                    .any(|k| k.starts_with("x-envoy-peer-metadata"))
            })
            .count(),
    }
}

const PEER_REJECTED: &str = "meshstats_peer_metadata_rejected_total";

/// meshstats' series, each metric's sorted by labels.
fn ours(scrape: &Scrape) -> BTreeMap<String, Vec<Series>> {
    scrape
        .names()
        .into_iter()
        .filter(|n| n.starts_with("istio_") || n.starts_with("meshstats_"))
        .map(|n| {
            let mut series = scrape.series(n);
            series.sort_by(|a, b| a.labels.cmp(&b.labels));
            (n.to_string(), series)
        })
        // The native module defines the rejection counter at config time (Envoy refuses later
        // definitions), so it shows 0 where Wasm, which defines it at the first rejection, has
        // nothing yet (docs/native.md): a zero there is "no rejection" in both builds.
        .filter(|(n, series): &(String, Vec<Series>)| {
            n != PEER_REJECTED || series.iter().any(|s| s.value != 0.0)
        })
        .collect()
}

/// Histogram sums are what Envoy approximates from each sample: durations differ between
/// any two runs, sizes by a byte now and then (`x-envoy-upstream-service-time` has two or
/// three digits). So do the buckets of the requests the app answers at once (under 1 or
/// 10 ms, as the machine's load decides); the 20 ms ones are in (10, 1000] whatever the
/// load. Everything else must be equal.
fn comparable(name: &str, mut series: Vec<Series>) -> Vec<Series> {
    for s in &mut series {
        let fast = name.contains("duration") && s.label("response_code") != "200";
        if let Some(h) = &mut s.histogram {
            h.sum = 0.0;
            if fast {
                h.buckets.clear();
            }
        }
    }
    series
}

fn assert_same_series(
    side: &str,
    wasm: &BTreeMap<String, Vec<Series>>,
    native: &BTreeMap<String, Vec<Series>>,
) {
    assert_eq!(
        wasm.keys().collect::<Vec<_>>(),
        native.keys().collect::<Vec<_>>(),
        "{side}: the same metrics"
    );
    let mut diffs = Vec::new();
    for (name, w) in wasm {
        let (w, n) = (
            comparable(name, w.clone()),
            comparable(name, native.get(name).cloned().unwrap_or_default()),
        );
        for s in w.iter().filter(|s| !n.contains(s)) {
            diffs.push(format!("{name}: only Wasm: {s:?}"));
        }
        for s in n.iter().filter(|s| !w.contains(s)) {
            diffs.push(format!("{name}: only native: {s:?}"));
        }
    }
    assert!(diffs.is_empty(), "{side}:\n{}", diffs.join("\n"));
}

/// A log line without what differs between any two runs: ids, times, and the ports of
/// addresses (the address stays), which the caller checks against the run's own ports.
fn stable(entry: &Value) -> Value {
    let mut e = entry.clone();
    if let Some(obj) = e.as_object_mut() {
        for key in [
            "time",
            "start_time",
            "request_id",
            "connection_id",
            "duration",
            "duration_ms",
            "source_port",
            "destination_port",
            "upstream_port",
            "x_forwarded_for",
            "upstream_service_time",
            // Counts `x-envoy-upstream-service-time`'s digits: checked apart, within 3 bytes.
            "response_total_size",
        ] {
            obj.remove(key);
        }
        for v in obj.values_mut() {
            if let Some(s) = v.as_str() {
                if let Some((ip, port)) = s.rsplit_once(':') {
                    if ip.starts_with("127.") && port.parse::<u16>().is_ok() {
                        *v = json!(format!("{ip}:PORT"));
                    }
                }
            }
        }
    }
    e
}

#[test]
fn native_build_serves_the_series_and_logs_of_the_wasm_build() {
    let wasm = run(Build::Wasm);
    let native = run(Build::Native);

    // Not vacuous: the Wasm build's series are the ones its own tests pin.
    let server_total: Vec<&Series> = wasm.server["istio_requests_total"].iter().collect();
    let ok = server_total
        .iter()
        .find(|s| s.label("response_code") == "200")
        .expect("a 200 series");
    assert_eq!(ok.value, 3.0);
    for (k, v) in [
        ("reporter", "destination"),
        ("source_workload", "productpage-v1"),
        ("destination_workload", "ratings-v1"),
        ("req_method", "GET"),
        ("req_url_path", "/ratings/1"),
        ("req_agent", "native-smoke/1"),
        ("req_details", "via_upstream"),
        ("req_mtls", "false"),
    ] {
        assert_eq!(ok.label(k), v, "{k}: {ok:?}");
    }
    assert!(
        server_total
            .iter()
            .any(|s| s.label("response_flags") == "UC" && s.value == 1.0),
        "the reset request carries a response flag: {server_total:?}"
    );
    let durations = &wasm.server["istio_request_duration_milliseconds"];
    let delayed = durations
        .iter()
        .find(|s| s.label("response_code") == "200")
        .and_then(|s| s.histogram.clone())
        .expect("durations of the delayed requests");
    assert_eq!(
        delayed.buckets,
        vec![
            (1.0, 0.0),
            (10.0, 0.0),
            (1000.0, 3.0),
            (10000.0, 3.0),
            (f64::INFINITY, 3.0)
        ],
        "20 ms answers are in (10, 1000] ms"
    );
    assert_eq!(wasm.client["istio_build"].len(), 1);

    assert_same_series("server (inbound)", &wasm.server, &native.server);
    assert_same_series("client (outbound)", &wasm.client, &native.client);

    for (side, w, n) in [
        ("server", &wasm.server_logs, &native.server_logs),
        ("client", &wasm.client_logs, &native.client_logs),
    ] {
        assert_eq!(
            w.len(),
            REQUESTS,
            "{side}: one Wasm log line per request: {w:?}"
        );
        assert_eq!(
            n.len(),
            REQUESTS,
            "{side}: one native log line per request: {n:?}"
        );
        for (a, b) in w.iter().zip(n) {
            assert_eq!(
                stable(a),
                stable(b),
                "{side} log (left: Wasm, right: native)"
            );
        }
    }
    for (run, build) in [(&wasm, "wasm"), (&native, "native")] {
        assert_eq!(
            run.app_saw_exchange, 0,
            "{build}: the server strips the exchange"
        );
        for e in &run.client_logs {
            let t = e["start_time"].as_str().unwrap_or("");
            assert!(
                t.starts_with("20") && t.len() >= 20,
                "{build}: request.time: {e}"
            );
        }
        for e in &run.server_logs {
            assert_eq!(
                e["destination_port"],
                json!(run.server_listen.port()),
                "{build}: destination.port is the server's listener: {e}"
            );
            assert_eq!(e["direction"], json!(1), "{build}: INBOUND: {e}");
        }
        let delayed: Vec<i64> = run
            .server_logs
            .iter()
            .filter(|e| e["code"] == 200)
            .filter_map(|e| e["duration_ms"].as_i64())
            .collect();
        assert_eq!(delayed.len(), 3, "{build}");
        assert!(
            delayed.iter().all(|d| (20..1000).contains(d)),
            "{build}: request.duration in ns, so 20 ms answers are 20..1000 ms: {delayed:?}"
        );
    }
}
