//! Config churn, as Istio's TestStatsParallel does it: while traffic flows, both sidecars
//! get a new listener from file-based LDS every 100 ms, alternating two filter
//! configurations and two `vm_id`s, with one broken configuration in the middle. Every
//! request must succeed and be counted exactly once on each side, also after the drained
//! listeners and their VMs are gone.

use meshstats_integration::lds::{envoy_stat, wait_lds_updates, with_filter, Lds};
use meshstats_integration::load::{self, LoadOptions, LoadResult};
use meshstats_integration::mesh::{bookinfo_peer_labels, Bookinfo, Sidecar};
use meshstats_integration::{meshstats_bin, Backend, Envoy, Requests, Scrape};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const HOST: &str = "ratings:9080";
const PUSH_EVERY: Duration = Duration::from_millis(100);
const PUSHES: u64 = 100;
/// The `vm_id` changes every 16 pushes: 6 switches in 100 pushes.
const VM_SWITCH_EVERY: u64 = 16;
const VM_IDS: [&str; 2] = ["meshstats", "meshstats-churn"];
/// Both produce the same series for this traffic (the cluster carries Istio's service
/// metadata, so the Host fallback is never used), but are different configurations: each push
/// makes Envoy build a new filter chain and configure a new root context.
const CONFIGS: [&str; 2] = [
    "{}",
    r#"{"disable_host_header_fallback": true, "max_peer_cache_size": 100, "tcp_reporting_duration": "1s"}"#,
];
/// Pushed once, in place of push `BROKEN_AT`'s configuration.
const BROKEN: &str = r#"{"metrics": [{"nmae": "requests_total"}]}"#;
const BROKEN_AT: u64 = 50;
/// Short enough that drained filter chains, and with them the VMs of the other `vm_id`, go
/// away while the churn goes on (Istio's default is 45 s), long enough that the VM taking
/// over has seen traffic by then (see `a_series_only_a_destroyed_vm_held_vanishes`).
const DRAIN_TIME_S: u64 = 5;
const CONNECTIONS: usize = 4;
/// The load stops after this long even if the pushes are not done.
const LOAD_LIMIT: Duration = Duration::from_secs(60);

type Labels = BTreeMap<String, String>;

fn labels(reporter: &str, policy: &str) -> Labels {
    let mut labels = bookinfo_peer_labels(reporter);
    for (k, v) in [
        ("request_protocol", "http"),
        ("response_flags", "-"),
        ("connection_security_policy", policy),
        ("response_code", "200"),
        ("grpc_response_status", ""),
    ] {
        labels.insert(k.to_string(), v.to_string());
    }
    labels
}

/// What `meshstats validate` prints for `config`: the filter must log the same text.
fn validate_error(dir: &Path, config: &str) -> String {
    let file = dir.join("broken.json");
    std::fs::write(&file, config).unwrap();
    let out = std::process::Command::new(meshstats_bin())
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let prefix = format!("{}: ", file.display());
    let line = stderr.trim_end().strip_prefix(&prefix).unwrap_or_else(|| {
        panic!("validate printed {stderr:?}");
    });
    assert!(!line.contains('\n'), "one problem expected: {stderr}");
    line.to_string()
}

/// `meshstats_config_errors_total` (0 when the series does not exist).
fn config_errors(envoy: &Envoy) -> f64 {
    envoy
        .prometheus()
        .unwrap()
        .sum("meshstats_config_errors_total", &[])
}

/// Checks that `istio_requests_total` is exactly one series with `want` labels and value
/// `n`, and that the three histograms have counted `n` requests in that one series too.
fn assert_counted_once(envoy: &Envoy, want: &Labels, n: u64) {
    let n = n as f64;
    let metrics = [
        "istio_requests_total",
        "istio_request_duration_milliseconds",
        "istio_request_bytes",
        "istio_response_bytes",
    ];
    let got = |s: &Scrape| -> Vec<Vec<(Labels, f64)>> {
        metrics
            .iter()
            .map(|m| {
                s.series(m)
                    .into_iter()
                    .map(|x| (x.labels, x.value))
                    .collect()
            })
            .collect()
    };
    let expected: Vec<Vec<(Labels, f64)>> =
        metrics.iter().map(|_| vec![(want.clone(), n)]).collect();
    // Histograms reach /stats/prometheus at a stats flush (100 ms here).
    let mut last = Vec::new();
    let found = envoy.wait_for(Duration::from_secs(10), |s| {
        last = got(s);
        (last == expected).then_some(())
    });
    assert!(
        found.is_ok(),
        "{}: wanted one series of each of {metrics:?} = {n} with {want:?}; got {last:#?}",
        envoy.name()
    );
}

struct Run {
    load: LoadResult,
    elapsed: Duration,
    pushes: u64,
    vm_switches: u64,
    broken_errors: [f64; 2],
}

/// Runs the load and the pushes on `mesh`, and returns what happened. The load starts
/// before the first push and goes on for a second after the last, so that the VM serving
/// last has seen traffic before the ones it replaced are destroyed.
fn churn(mesh: &Bookinfo, lds: &mut [Lds; 2]) -> Run {
    let entry = mesh.entry;
    let stop = Arc::new(AtomicBool::new(false));
    let load_stop = Arc::clone(&stop);
    // Half the connections keep-alive, half a new connection every 10 requests; rounds of
    // one second (each reconnects) until told to stop, at most LOAD_LIMIT.
    let load = std::thread::spawn(move || {
        let keep = LoadOptions::new(CONNECTIONS / 2, Duration::from_secs(1), "/ratings/7", HOST);
        let short = LoadOptions {
            requests_per_connection: 10,
            ..keep.clone()
        };
        let started = Instant::now();
        let mut total = LoadResult::default();
        while !load_stop.load(Ordering::SeqCst) && started.elapsed() < LOAD_LIMIT {
            let other = {
                let short = short.clone();
                std::thread::spawn(move || load::run(entry, &short))
            };
            total.merge(&load::run(entry, &keep));
            total.merge(&other.join().unwrap());
        }
        total
    });
    std::thread::sleep(Duration::from_millis(500));

    let envoys = [&mesh.client, &mesh.server];
    let mut broken_errors = [0.0; 2];
    let mut vm_switches = 0;
    let start = Instant::now();
    for i in 1..=PUSHES {
        let vm = VM_IDS[((i / VM_SWITCH_EVERY) % 2) as usize];
        let config = if i == BROKEN_AT {
            BROKEN
        } else {
            CONFIGS[(i % 2) as usize]
        };
        if i % VM_SWITCH_EVERY == 0 {
            vm_switches += 1;
        }
        for (lds, envoy) in lds.iter_mut().zip(envoys) {
            let next = with_filter(lds.listener(), vm, config).unwrap();
            lds.push(&next).unwrap();
            // One push at a time: Envoy applies the latest file, and two renames between
            // two reads would be one update.
            wait_lds_updates(envoy, i + 1, Duration::from_secs(5)).unwrap();
        }
        if i > BROKEN_AT && broken_errors.contains(&0.0) {
            // While the broken root's VM is alive its counter is served.
            for (k, envoy) in envoys.iter().enumerate() {
                broken_errors[k] = config_errors(envoy);
            }
        }
        if let Some(rest) = (PUSH_EVERY * (i as u32)).checked_sub(start.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    let elapsed = start.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::SeqCst);
    let load = load.join().unwrap();
    Run {
        load,
        elapsed,
        pushes: PUSHES,
        vm_switches,
        broken_errors,
    }
}

/// The two sidecars on LDS files in `dir`, run with `--drain-strategy strategy` and
/// `--drain-time-s drain_time_s`.
fn start_mesh(
    app: &Backend,
    dir: &Path,
    strategy: &str,
    drain_time_s: u64,
) -> (Bookinfo, [Lds; 2]) {
    let on_lds = |file: &str| {
        let path = dir.join(file);
        move |s: Sidecar| Sidecar {
            lds: Some(path.clone()),
            envoy_args: [
                "--drain-strategy",
                strategy,
                "--drain-time-s",
                &drain_time_s.to_string(),
            ]
            .map(String::from)
            .to_vec(),
            ..s
        }
    };
    let mesh = Bookinfo::start_with(
        app.addr(),
        on_lds("client-lds.json"),
        on_lds("server-lds.json"),
    )
    .unwrap();
    let lds = [
        Lds::open(&dir.join("client-lds.json")).unwrap(),
        Lds::open(&dir.join("server-lds.json")).unwrap(),
    ];
    (mesh, lds)
}

/// Waits until no filter chain is draining any more: every replaced one, and the VMs only
/// they used, are gone. (A push that changes only the filter chain updates the listener in
/// place and drains the old chain.)
fn wait_drained(envoy: &Envoy) {
    let timeout = Duration::from_secs(DRAIN_TIME_S + 30);
    let start = Instant::now();
    while envoy_stat(envoy, "listener_manager.total_filter_chains_draining").unwrap() > 0 {
        assert!(
            start.elapsed() < timeout,
            "{}: still draining",
            envoy.name()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn listener_churn_with_immediate_drain_counts_every_request_once_on_each_side() {
    let dir = meshstats_integration::scratch_dir("churn-immediate");
    let app = Backend::start();
    let expected_log = format!(
        "meshstats: {}; serving with the defaults of {{}}",
        validate_error(&dir, BROKEN)
    );
    let (mesh, mut lds) = start_mesh(&app, &dir, "immediate", DRAIN_TIME_S);
    let run = churn(&mesh, &mut lds);
    let n = run.load.completed;
    eprintln!(
        "churn: {n} requests ({} failed) in {:?}, {} pushes, {} vm_id switches, \
         config errors while broken: {:?}",
        run.load.failures(),
        run.elapsed,
        run.pushes,
        run.vm_switches,
        run.broken_errors
    );
    assert_eq!(run.load.failures(), 0, "{:?}", run.load.errors);
    assert!(n >= 1_000, "only {n} requests");
    assert_eq!(app.request_count(), n);
    assert_eq!(run.vm_switches, 6);

    for (envoy, want) in [
        (&mesh.client, labels("source", "unknown")),
        (&mesh.server, labels("destination", "none")),
    ] {
        // Open for the native build (docs/native.md): across these pushes Envoy 1.40 drops a
        // labelled series once no live filter config holds it, and counts restart from 0
        // (measured: 7,922 of 13,609). Traffic itself is checked above for both builds.
        if meshstats_integration::build() == meshstats_integration::Build::Wasm {
            assert_counted_once(envoy, &want, n);
        } else {
            println!(
                "{}: exact counts across listener churn not asserted under the native build: \
                 Envoy 1.40 drops labelled series with the last filter config (docs/native.md)",
                envoy.name()
            );
        }
        // Envoy took every push (a filter config is opaque to it) and replaced the listener
        // each time.
        assert_eq!(
            envoy_stat(envoy, "listener_manager.lds.update_success").unwrap(),
            PUSHES + 1,
            "{}",
            envoy.name()
        );
        assert_eq!(
            envoy_stat(envoy, "listener_manager.lds.update_rejected").unwrap(),
            0
        );
        assert_eq!(
            envoy_stat(envoy, "listener_manager.listener_modified").unwrap(),
            PUSHES
        );
        // The broken configuration was reported once per VM that configured it; the native
        // module reports it once, on the main thread (workers replay it quietly).
        let log = envoy.log();
        let reported = log.matches(&expected_log).count();
        let once_per = match meshstats_integration::build() {
            meshstats_integration::Build::Wasm => 3,
            meshstats_integration::Build::Native => 1,
        };
        assert!(
            reported == once_per && !log.contains("panicked"),
            "{}: {reported} times {expected_log:?}",
            envoy.name()
        );
    }
    let wasm = meshstats_integration::build() == meshstats_integration::Build::Wasm;
    // Three configurations of the broken root, as the log shows: two on the main thread,
    // one on the worker. The native module counts it once, on the main thread.
    let broken = if wasm { [3.0, 3.0] } else { [1.0, 1.0] };
    assert_eq!(run.broken_errors, broken, "meshstats_config_errors_total");

    // The listeners replaced last drain; the VMs of the other vm_id and the broken root go
    // with them. What they counted stays: the same stat names are held by the live VM.
    for envoy in [&mesh.client, &mesh.server] {
        wait_drained(envoy);
    }
    if wasm {
        assert_counted_once(&mesh.client, &labels("source", "unknown"), n);
        assert_counted_once(&mesh.server, &labels("destination", "none"), n);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// What docs/deploying.md says about drain settings: Envoy frees the stats a Wasm VM defined
/// when the VM is destroyed (envoyproxy/envoy#43984), so a series that only a destroyed VM
/// held vanishes from `/stats`, and the next request starts it again from 0. Here the
/// `vm_id` switches while no request comes: once the old filter chain has drained, its VM
/// and the series are gone. If Envoy ever keeps them, this test fails: update the docs.
#[test]
fn a_series_only_a_destroyed_vm_held_vanishes() {
    if !meshstats_integration::runs_under(
        meshstats_integration::Build::Wasm,
        "stats freed with a destroyed Wasm VM; the native build has no VM (a vm_id push changes nothing)",
    ) {
        return;
    }
    let dir = meshstats_integration::scratch_dir("churn-vanish");
    let app = Backend::start();
    let (mesh, mut lds) = start_mesh(&app, &dir, "immediate", 1);
    Requests::get(mesh.entry, "/ratings/7").send(5);
    let sides = [
        (&mesh.client, labels("source", "unknown")),
        (&mesh.server, labels("destination", "none")),
    ];
    for (envoy, want) in &sides {
        assert_counted_once(envoy, want, 5);
    }
    for (k, (envoy, _)) in sides.iter().enumerate() {
        let next = with_filter(lds[k].listener(), VM_IDS[1], CONFIGS[0]).unwrap();
        lds[k].push(&next).unwrap();
        wait_lds_updates(envoy, 2, Duration::from_secs(5)).unwrap();
    }
    for (envoy, _) in &sides {
        wait_drained(envoy);
        let gone = envoy.wait_for(Duration::from_secs(10), |s| {
            s.series("istio_requests_total").is_empty().then_some(())
        });
        assert!(
            gone.is_ok(),
            "{}: istio_requests_total still served",
            envoy.name()
        );
    }
    Requests::get(mesh.entry, "/ratings/7").send(1);
    for (envoy, want) in &sides {
        assert_counted_once(envoy, want, 1);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
