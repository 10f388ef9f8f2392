//! `meshstats-bench` end to end, as small as it goes (1 round × 1 s, 2 connections): only what
//! cannot depend on the machine's speed is asserted — both setups carried traffic without a
//! failure, `istio_requests_total` counted every request exactly, the ratios are numbers, and
//! `--json` prints what CI logs rely on.

use serde_json::Value;
use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BENCH: &str = env!("CARGO_BIN_EXE_meshstats-bench");

/// Runs the bench binary with `args`, killing it if it takes longer than `limit`.
fn bench(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(BENCH)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {BENCH}: {e}"));
    // Drain both pipes while waiting, so a chatty child never blocks on a full pipe.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = String::from_utf8_lossy(&err_reader.join().unwrap()).into_owned();
            panic!("{BENCH} {args:?} still running after {limit:?}; stderr:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

fn num(v: &Value, path: &[&str]) -> f64 {
    let mut x = v;
    for k in path {
        x = x
            .get(*k)
            .unwrap_or_else(|| panic!("no {path:?} (missing {k:?}) in {v:#}"));
    }
    x.as_f64()
        .unwrap_or_else(|| panic!("{path:?} is not a number: {x}"))
}

#[test]
fn one_short_round_each_counts_every_request_and_reports_ratios() {
    let args = [
        "--rounds",
        "1",
        "--duration-secs",
        "1",
        "--connections",
        "2",
        "--warmup-secs",
        "0.5",
        "--new-series",
        "40",
        "--json",
    ];
    let out = bench(&args, Duration::from_secs(90));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}; stderr:\n{stderr}",
        out.status
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}):\n{stdout}"));

    for key in [
        "config",
        "bare",
        "meshstats",
        "ratios",
        "counts",
        "memory_per_envoy",
    ] {
        assert!(report.get(key).is_some(), "no {key:?} in {report:#}");
    }
    assert_eq!(num(&report, &["config", "rounds"]), 1.0);
    // The new-series row: 40 never-seen hosts, 40 series of them plus the cached one.
    assert_eq!(num(&report, &["new_series", "requests_each"]), 40.0);
    assert_eq!(num(&report, &["new_series", "series"]), 41.0);
    assert_eq!(num(&report, &["new_series", "counted"]), 100.0);
    for key in [
        "cached_cpu_us_per_request",
        "new_cpu_us_per_request",
        "ratio",
    ] {
        let v = num(&report, &["new_series", key]);
        assert!(v.is_finite() && v > 0.0, "new_series.{key} = {v}");
    }
    assert_eq!(num(&report, &["config", "connections"]), 2.0);

    for setup in ["bare", "meshstats"] {
        assert!(
            num(&report, &[setup, "requests"]) > 0.0,
            "{setup}: no requests; stderr:\n{stderr}"
        );
        assert!(
            num(&report, &[setup, "warmup_requests"]) > 0.0,
            "{setup}: no warm-up requests"
        );
        assert_eq!(
            num(&report, &[setup, "failures"]),
            0.0,
            "{setup}; stderr:\n{stderr}"
        );
        assert_eq!(
            num(&report, &[setup, "warmup_failures"]),
            0.0,
            "{setup}; stderr:\n{stderr}"
        );
        assert_eq!(
            num(&report, &[setup, "requests"]),
            num(&report, &[setup, "ok"])
        );
        for key in ["requests_per_sec", "cpu_us_per_request", "envoy_cpu_secs"] {
            assert!(num(&report, &[setup, key]) > 0.0, "{setup}.{key}");
        }
        for q in ["p50", "p90", "p99", "max"] {
            assert!(num(&report, &[setup, "latency_us", q]) > 0.0, "{setup} {q}");
        }
        let (p50, p99, max) = (
            num(&report, &[setup, "latency_us", "p50"]),
            num(&report, &[setup, "latency_us", "p99"]),
            num(&report, &[setup, "latency_us", "max"]),
        );
        assert!(
            p50 <= p99 && p99 <= max,
            "{setup}: p50 {p50} p99 {p99} max {max}"
        );
        for key in ["allocated_bytes", "heap_size_bytes", "rss_bytes"] {
            assert!(
                num(&report, &[setup, "memory", key]) > 0.0,
                "{setup}.memory.{key}"
            );
        }
        assert_eq!(
            report[setup]["rounds"].as_array().map(Vec::len),
            Some(1),
            "{setup}.rounds"
        );
    }
    assert_eq!(report["memory_per_envoy"].as_array().map(Vec::len), Some(4));

    // Every request through the meshstats pair, warm-up included, counted once per sidecar.
    let expected =
        num(&report, &["meshstats", "requests"]) + num(&report, &["meshstats", "warmup_requests"]);
    assert_eq!(num(&report, &["counts", "expected"]), expected);
    assert_eq!(
        num(&report, &["counts", "client"]),
        expected,
        "stderr:\n{stderr}"
    );
    assert_eq!(
        num(&report, &["counts", "server"]),
        expected,
        "stderr:\n{stderr}"
    );
    assert_eq!(report["counts"]["ok"], Value::Bool(true));
    assert!(
        stderr.contains(&format!(
            "counts: client {expected}/{expected}, server {expected}/{expected}"
        )),
        "{stderr}"
    );

    let ratios = report["ratios"].as_object().expect("ratios is an object");
    for key in [
        "throughput",
        "latency_p50",
        "latency_p90",
        "latency_p99",
        "latency_max",
        "cpu_per_request",
        "memory_allocated",
        "memory_heap_size",
        "memory_rss",
    ] {
        let r = ratios
            .get(key)
            .and_then(Value::as_f64)
            .unwrap_or_else(|| panic!("ratio {key} missing or not a number: {ratios:?}"));
        assert!(r.is_finite() && r > 0.0, "ratio {key} = {r}");
    }
}

#[test]
fn bad_arguments_exit_2_without_starting_anything() {
    for args in [
        &["--rounds", "0"][..],
        &["--duration-secs", "abc"],
        &["--connections"],
        &["--frobnicate"],
    ] {
        let out = bench(args, Duration::from_secs(10));
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}
