//! Istio's Grafana dashboards (service, workload, mesh; `../shared/istio-dashboards/`) run
//! unchanged against a real Prometheus scraping the two Bookinfo sidecars. Every `expr` of
//! every panel is sent to Prometheus with the template variables filled in the way Grafana
//! fills them (the variables' own queries are run too, and their regexes applied), and:
//!
//! - every query is accepted (a parse or execution error fails the test);
//! - every query returns data with finite values, except the ones [`expected_empty`] names
//!   with a reason, which must return nothing;
//! - the key panels show the right numbers: request volume, success rate (a quarter of the
//!   requests are 503s), 5xx/4xx rates, the per-source breakdown, the workload table.
//!
//! Needs `/usr/bin/prometheus` (or `$PROMETHEUS_BIN`): `make setup` installs it.

use meshstats_integration::mesh::{server_service_labels, Bookinfo, RATINGS_HOST, RATINGS_SERVICE};
use meshstats_integration::prometheus::Prometheus;
use meshstats_integration::{Backend, Requests};
use meshstats_testkit::shared_dir;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Grafana's `$__rate_interval` for a data source with the default 15 s scrape interval.
const RATE_INTERVAL: &str = "1m";

/// Requests in a fixed pattern (every fourth a 503) until stopped, at most 60 s.
struct Traffic {
    stop: Arc<AtomicBool>,
    sent: Arc<[AtomicU64; 2]>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Traffic {
    fn start(entry: SocketAddr) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let sent: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let (s, n) = (stop.clone(), sent.clone());
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let mut i = 0u64;
            while !s.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(60) {
                request(entry, i % 4 == 3).send(1);
                n[usize::from(i % 4 == 3)].fetch_add(1, Ordering::SeqCst);
                i += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Traffic {
            stop,
            sent,
            thread: Some(thread),
        }
    }

    /// Stops and returns (200s, 503s) sent.
    fn stop(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("traffic thread");
        }
        (
            self.sent[0].load(Ordering::SeqCst),
            self.sent[1].load(Ordering::SeqCst),
        )
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A request of the traffic: a 200, or (`fail`) a 503 the backend is told to answer.
fn request(entry: SocketAddr, fail: bool) -> Requests<'static> {
    let ok = Requests::get(entry, "/ratings/0");
    if fail {
        ok.headers(&[("x-backend-status", "503")]).status(503)
    } else {
        ok
    }
}

/// One dashboard with its template variables set: name → Grafana's interpolated text.
struct Variant {
    label: String,
    dashboard: &'static str,
    vars: Vec<(String, String)>,
}

/// Grafana's `prometheusSpecialRegexEscape`, for values of multi-value / "All" variables.
fn regex_escape(v: &str) -> String {
    let mut out = String::new();
    for c in v.chars() {
        if c == '\\' {
            out.push_str("\\\\\\\\");
        } else if "$^*{}[]'+?.()|".contains(c) {
            out.push_str("\\\\");
            out.push(c);
        } else {
            out.push(c);
        }
    }
    out
}

fn substitute(expr: &str, vars: &[(String, String)]) -> String {
    let mut out = expr
        .replace("$__rate_interval", RATE_INTERVAL)
        .replace("$__interval", RATE_INTERVAL);
    // Longest names first, so `$srcns` is not eaten by a shorter `$src`.
    let mut sorted: Vec<&(String, String)> = vars.iter().collect();
    sorted.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
    for (name, value) in sorted {
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    out
}

/// Resolves a dashboard's template variables as Grafana does: `query_result(q)` variables run
/// `q` and apply the variable's regex to each series' text; "All" (the default for every
/// `includeAll` variable here) selects every option. `fixed` gives the user's choices.
fn resolve_vars(
    prom: &Prometheus,
    dashboard: &Value,
    fixed: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = Vec::new();
    for v in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = v["name"].as_str().unwrap_or_default().to_string();
        let multi =
            v["multi"].as_bool().unwrap_or(false) || v["includeAll"].as_bool().unwrap_or(false);
        let options: Vec<String> = match v["type"].as_str() {
            Some("query") => {
                let q = v["query"]
                    .as_str()
                    .or_else(|| v["query"]["query"].as_str())
                    .unwrap_or_default();
                let inner = q
                    .strip_prefix("query_result(")
                    .and_then(|s| s.strip_suffix(')'))
                    .expect("query_result(...)");
                let inner = substitute(inner, &vars);
                let result = prom
                    .query(&inner)
                    .unwrap_or_else(|e| panic!("variable {name}: {inner}: {e}"));
                let re = v["regex"].as_str().unwrap_or_default().trim_matches('/');
                let re = regex::Regex::new(re).expect("variable regex");
                let mut opts: Vec<String> = result
                    .iter()
                    .filter_map(|s| re.captures(&series_text(s)).map(|c| c[1].to_string()))
                    .collect();
                opts.sort();
                opts.dedup();
                opts
            }
            Some("custom") => v["query"]
                .as_str()
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_string())
                .collect(),
            _ => continue, // the data source
        };
        let chosen: Vec<String> = match fixed.iter().find(|(k, _)| *k == name) {
            Some((_, value)) => {
                assert!(
                    options.iter().any(|o| o == value),
                    "variable {name}: {value} is not among its options {options:?}"
                );
                vec![value.to_string()]
            }
            None if v["includeAll"].as_bool() == Some(true) => {
                assert!(v["allValue"].is_null(), "variable {name} has an allValue");
                options.clone()
            }
            None => {
                let current = v["current"]["value"].as_str().map(str::to_string);
                vec![current
                    .filter(|c| options.contains(c))
                    .unwrap_or_else(|| panic!("variable {name}: no value"))]
            }
        };
        // An "All" over no options (ratings-v1 calls no service: `dstsvc`) is empty text.
        assert!(
            !chosen.is_empty() || v["includeAll"] == true,
            "variable {name}: no options (its query found nothing)"
        );
        let text = if chosen.is_empty() {
            String::new()
        } else if !multi {
            chosen[0].replace('\\', "\\\\")
        } else if chosen.len() == 1 {
            regex_escape(&chosen[0])
        } else {
            format!(
                "({})",
                chosen
                    .iter()
                    .map(|c| regex_escape(c))
                    .collect::<Vec<_>>()
                    .join("|")
            )
        };
        vars.push((name, text));
    }
    vars
}

/// A series as Grafana's `query_result` shows it to the variable regex:
/// `name{label="value", ...} value timestamp`.
fn series_text(s: &Value) -> String {
    let metric = s["metric"].as_object().cloned().unwrap_or_default();
    let name = metric
        .get("__name__")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let labels: Vec<String> = metric
        .iter()
        .filter(|(k, _)| *k != "__name__")
        .map(|(k, v)| format!("{k}=\"{}\"", v.as_str().unwrap_or_default()))
        .collect();
    format!(
        "{name}{{{}}} {} {}",
        labels.join(", "),
        s["value"][1].as_str().unwrap_or_default(),
        s["value"][0]
    )
}

/// Every `expr` of every panel (nested rows included), with the panel's title.
fn exprs(dashboard: &Value) -> Vec<(String, String)> {
    fn walk(panel: &Value, out: &mut Vec<(String, String)>) {
        for t in panel["targets"].as_array().into_iter().flatten() {
            if let Some(e) = t["expr"].as_str() {
                out.push((
                    panel["title"].as_str().unwrap_or_default().to_string(),
                    e.to_string(),
                ));
            }
        }
        for p in panel["panels"].as_array().into_iter().flatten() {
            walk(p, out);
        }
    }
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().into_iter().flatten() {
        walk(p, &mut out);
    }
    for row in dashboard["rows"].as_array().into_iter().flatten() {
        walk(row, &mut out);
    }
    out
}

/// Why a query of `variant` must return nothing in this mesh, or `None`: it must return data.
/// The mesh: plaintext HTTP/1.1 only (no mTLS, no TCP, no gRPC), productpage-v1 → ratings-v1.
fn expected_empty(variant: &str, expr: &str) -> Option<&'static str> {
    if expr.contains("connection_security_policy=\"mutual_tls\"") {
        return Some(
            "mTLS panel: the sidecars talk plaintext (connection_security_policy none/unknown)",
        );
    }
    if expr.contains("principal=~\"spiffe.*\"") {
        return Some(
            "mTLS panel (by SPIFFE principal): no certificates, so the principals are \"unknown\"",
        );
    }
    if expr.contains("reporter=\"destination\"")
        && expr.contains(&format!("destination_service=\"{RATINGS_SERVICE}\""))
        && service_of("destination") != RATINGS_SERVICE
    {
        return Some(
            "server panel under the native build: the server sidecar names the service by the \
             Host header (docs/native.md), so a service picked by its Istio name has no server data",
        );
    }
    if expr.contains("istio_tcp_") {
        return Some("TCP panel: only HTTP traffic (istio_tcp_* are the TCP filter's; see tests/istio_tcp.rs)");
    }
    if variant == "workload ratings-v1" && expr.contains("source_workload=~\"ratings-v1\"") {
        return Some("outbound panel: ratings-v1 calls nothing");
    }
    if variant == "workload productpage-v1"
        && expr.contains("destination_workload=~\"productpage-v1\"")
    {
        return Some("inbound panel: nothing calls productpage-v1");
    }
    None
}

fn values(result: &[Value]) -> Vec<f64> {
    result
        .iter()
        .map(|s| {
            s["value"][1]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN)
        })
        .collect()
}

fn one_value(prom: &Prometheus, q: &str) -> f64 {
    let v = values(&prom.query(q).unwrap_or_else(|e| panic!("{q}: {e}")));
    assert_eq!(v.len(), 1, "{q}: {v:?}");
    v[0]
}

/// The `destination_service` a reporter names ratings by: the server sidecar of the native
/// build has only the Host header (`mesh::server_service_labels`, docs/native.md).
fn service_of(reporter: &str) -> String {
    match reporter {
        "source" => RATINGS_SERVICE.to_string(),
        _ => server_service_labels(RATINGS_HOST)[0].1.clone(),
    }
}

#[test]
fn istio_grafana_dashboards_work_unchanged() {
    let t0 = Instant::now();
    let app = Backend::start();
    // Counters reach Envoy at the filter's tick: a 1 s tick keeps them moving between this
    // test's 1 s scrapes (irate() takes the last two samples; real scrapes are 15 s apart).
    let tick = r#"{"tcp_reporting_duration": "1s"}"#;
    let mesh = Bookinfo::start(app.addr(), tick, tick).unwrap();
    // One of each before Prometheus starts, so both series exist from its first scrape and
    // rate() sees every later request.
    request(mesh.entry, false).send(1);
    request(mesh.entry, true).send(1);
    mesh.server
        .wait_for(Duration::from_secs(10), |s| {
            (s.series("istio_requests_total").len() == 2).then_some(())
        })
        .unwrap();
    mesh.client
        .wait_for(Duration::from_secs(10), |s| {
            (s.series("istio_requests_total").len() == 2).then_some(())
        })
        .unwrap();

    let prom = Prometheus::start(&[
        ("productpage-v1", mesh.client.admin()),
        ("ratings-v1", mesh.server.admin()),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    prom.wait_up(2, 2).unwrap_or_else(|e| panic!("{e}"));
    let traffic = Traffic::start(mesh.entry);
    // Enough scrapes with traffic for irate() (last two samples) and rate() over 1m.
    std::thread::sleep(Duration::from_secs(4));

    let dir = shared_dir("istio-dashboards");
    let load = |f: &str| -> Value {
        let p: PathBuf = dir.join(f);
        serde_json::from_str(
            &std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
        )
        .unwrap()
    };
    let service = load("istio-service-dashboard.json");
    let workload = load("istio-workload-dashboard.json");
    let mesh_dash = load("istio-mesh-dashboard.gen.json");
    let dashboards: [(&str, &Value); 3] = [
        ("service", &service),
        ("workload", &workload),
        ("mesh", &mesh_dash),
    ];

    let variants = vec![
        Variant {
            label: "service ratings, qrep=destination".into(),
            dashboard: "service",
            vars: resolve_vars(
                &prom,
                &service,
                &[
                    ("service", service_of("destination").as_str()),
                    ("qrep", "destination"),
                ],
            ),
        },
        Variant {
            label: "service ratings, qrep=source".into(),
            dashboard: "service",
            vars: resolve_vars(
                &prom,
                &service,
                &[
                    ("service", service_of("source").as_str()),
                    ("qrep", "source"),
                ],
            ),
        },
        Variant {
            label: "workload ratings-v1".into(),
            dashboard: "workload",
            vars: resolve_vars(
                &prom,
                &workload,
                &[
                    ("namespace", "default"),
                    ("workload", "ratings-v1"),
                    ("qrep", "destination"),
                ],
            ),
        },
        Variant {
            label: "workload productpage-v1".into(),
            dashboard: "workload",
            vars: resolve_vars(
                &prom,
                &workload,
                &[
                    ("namespace", "default"),
                    ("workload", "productpage-v1"),
                    ("qrep", "destination"),
                ],
            ),
        },
        Variant {
            label: "mesh".into(),
            dashboard: "mesh",
            vars: Vec::new(),
        },
    ];
    // "All" resolved to exactly this mesh's values.
    let var = |i: usize, n: &str| {
        variants[i]
            .vars
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(var(0, "srcwl"), "productpage-v1");
    assert_eq!(var(0, "srcns"), "default");
    assert_eq!(var(0, "dstwl"), "ratings-v1");
    assert_eq!(var(0, "dstcluster"), "Kubernetes");
    assert_eq!(
        var(3, "dstsvc"),
        "ratings\\\\.default\\\\.svc\\\\.cluster\\\\.local"
    );

    let mut failures: Vec<String> = Vec::new();
    let (mut total, mut non_empty, mut empty) = (0, 0, 0);
    let mut reasons: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    // Distinct (dashboard, expr) that returned data in at least one variant.
    let mut with_data: std::collections::BTreeSet<(&str, String)> =
        std::collections::BTreeSet::new();
    // (variant, panel title, legend-less expr) → values, for the key-panel checks below.
    let mut results: Vec<(String, String, String, Vec<Value>)> = Vec::new();
    for variant in &variants {
        let dashboard = dashboards
            .iter()
            .find(|(n, _)| *n == variant.dashboard)
            .unwrap()
            .1;
        for (title, expr) in exprs(dashboard) {
            total += 1;
            let q = substitute(&expr, &variant.vars);
            if q.contains('$') {
                failures.push(format!("[{}] {title}: variable left in {q}", variant.label));
                continue;
            }
            let result = match prom.query(&q) {
                Ok(r) => r,
                Err(e) => {
                    failures.push(format!(
                        "[{}] {title}: REJECTED {e}\n    {q}",
                        variant.label
                    ));
                    continue;
                }
            };
            match expected_empty(&variant.label, &q) {
                Some(why) => {
                    empty += 1;
                    *reasons.entry(why).or_insert(0) += 1;
                    if !result.is_empty() {
                        failures.push(format!(
                            "[{}] {title}: expected empty ({why}), got {result:?}\n    {q}",
                            variant.label
                        ));
                    }
                }
                None => {
                    non_empty += 1;
                    with_data.insert((variant.dashboard, expr.clone()));
                    let v = values(&result);
                    if v.is_empty() || v.iter().any(|x| !x.is_finite()) {
                        failures.push(format!(
                            "[{}] {title}: expected finite data, got {v:?}\n    {q}",
                            variant.label
                        ));
                    }
                }
            }
            results.push((variant.label.clone(), title, q, result));
        }
    }
    let expected_total: usize = variants
        .iter()
        .map(|v| {
            exprs(
                dashboards
                    .iter()
                    .find(|(n, _)| *n == v.dashboard)
                    .unwrap()
                    .1,
            )
            .len()
        })
        .sum();
    assert_eq!(total, expected_total);
    assert!(
        failures.is_empty(),
        "{} of {total} dashboard queries failed:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // Key panels, while the traffic (3 × 200, 1 × 503, repeated) still flows.
    let find = |variant: &str, title: &str| -> Vec<&Vec<Value>> {
        results
            .iter()
            .filter(|(v, t, _, _)| v == variant && t == title)
            .map(|(_, _, _, r)| r)
            .collect()
    };
    let single = |variant: &str, title: &str| -> f64 {
        let r = find(variant, title);
        assert_eq!(r.len(), 1, "{variant} / {title}");
        let v = values(r[0]);
        assert_eq!(v.len(), 1, "{variant} / {title}: {:?}", r[0]);
        v[0]
    };
    for variant in [
        "service ratings, qrep=destination",
        "service ratings, qrep=source",
    ] {
        // Server panels of a service picked by its Istio name are empty under the native
        // build (`expected_empty`): checked there, not here.
        let server_has_data =
            variant.ends_with("qrep=destination") || service_of("destination") == RATINGS_SERVICE;
        let keep = |title: &&str| server_has_data || !title.starts_with("Server");
        for title in ["Client Request Volume", "Server Request Volume"]
            .into_iter()
            .filter(keep)
        {
            let rps = single(variant, title);
            assert!(
                rps > 5.0 && rps < 100.0,
                "{variant} / {title}: {rps} req/s (~40 sent)"
            );
        }
        for title in [
            "Client Success Rate (non-5xx responses)",
            "Server Success Rate (non-5xx responses)",
        ]
        .into_iter()
        .filter(keep)
        {
            let rate = single(variant, title);
            assert!(
                (rate - 0.75).abs() < 0.12,
                "{variant} / {title}: {rate}, sent 3 of 4 non-5xx"
            );
        }
        // By source and response code: productpage-v1.default, 200 and 503, no other source.
        let by_code = find(variant, "Incoming Requests By Source And Response Code");
        let plain: Vec<&Value> = by_code.iter().flat_map(|r| r.iter()).collect();
        let mut codes: Vec<String> = plain
            .iter()
            .map(|s| {
                assert_eq!(s["metric"]["source_workload"], "productpage-v1", "{s}");
                assert_eq!(s["metric"]["source_workload_namespace"], "default", "{s}");
                s["metric"]["response_code"].as_str().unwrap().to_string()
            })
            .collect();
        codes.sort();
        assert_eq!(codes, ["200", "503"], "{variant}");
    }
    let mesh_rate = single("mesh", "Success Rate");
    assert!(
        (mesh_rate - 0.75).abs() < 0.1,
        "mesh success rate {mesh_rate}"
    );
    assert_eq!(single("mesh", "4xxs"), 0.0);
    assert!(single("mesh", "5xxs") > 0.0);
    let table = find("mesh", "HTTP/gRPC Workloads");
    assert_eq!(table.len(), 5);
    for r in &table {
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(
            r[0]["metric"]["destination_workload_var"], "ratings-v1.default",
            "{r:?}"
        );
    }
    let versions = find("mesh", "Istio Component Versions");
    assert_eq!(versions[0][0]["metric"]["component"], "proxy");

    // Exact totals once the traffic stops: what the dashboards' data is made of.
    let (ok, failed) = traffic.stop();
    let (ok, failed) = ((ok + 1) as f64, (failed + 1) as f64);
    for reporter in ["source", "destination"] {
        let service = service_of(reporter);
        let q = |code: &str| {
            format!(
                "sum(istio_requests_total{{reporter=\"{reporter}\",destination_service=\"{service}\",response_code=\"{code}\"}})"
            )
        };
        let start = Instant::now();
        loop {
            let (got_ok, got_failed) = (one_value(&prom, &q("200")), one_value(&prom, &q("503")));
            if (got_ok, got_failed) == (ok, failed) {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{reporter}: Prometheus has {got_ok}/{got_failed}, sent {ok}/{failed}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    let count = one_value(
        &prom,
        &format!("sum(istio_request_duration_milliseconds_count{{reporter=\"destination\",destination_service=\"{}\"}})", service_of("destination")),
    );
    assert!(
        count <= ok + failed && count > 0.0,
        "duration histogram count {count}"
    );

    let distinct: usize = dashboards.iter().map(|(_, d)| exprs(d).len()).sum();
    eprintln!(
        "dashboards: {total} queries ({distinct} distinct exprs, {} of them with data) over {} variants, {non_empty} returned data as asserted, {empty} empty as expected; {ok} × 200 + {failed} × 503 sent; {:.1} s",
        with_data.len(),
        variants.len(),
        t0.elapsed().as_secs_f64()
    );
    for (why, n) in &reasons {
        eprintln!("  expected empty: {n:3} × {why}");
    }
}
