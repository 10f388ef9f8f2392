//! `meshstats-bench` end to end, as small as it goes (both modes, 1 round of 0.5 s, 2
//! connections, the in-repo load generator so `make test` needs no wrk): only what cannot
//! depend on the machine's speed is asserted. Every setup has its row (measured, or "not
//! built" exactly when its module file is absent), every measured setup carried traffic
//! without a failure, every request through meshstats is in `istio_requests_total` and every
//! log line in its file, the budget lines are printed, and `--json` has what CI logs rely on.

use serde_json::Value;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BENCH: &str = env!("CARGO_BIN_EXE_meshstats-bench");

const SETUPS: [&str; 7] = [
    "bare",
    "envoy_json_log",
    "empty_wasm",
    "wasm",
    "wasm_dims_log",
    "native",
    "native_dims_log",
];

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

/// Whether the optional module `var` / `default` names exists, as the bench decides it.
fn built(var: &str, default: &str) -> bool {
    let root = meshstats_integration::workspace_root();
    match std::env::var_os(var).filter(|v| !v.is_empty()) {
        Some(v) => root.join(PathBuf::from(v)),
        None => root.join(default),
    }
    .is_file()
}

#[test]
fn every_setup_has_its_row_counts_are_exact_and_the_budget_lines_are_printed() {
    let logs = std::env::temp_dir().join(format!("meshstats-bench-smoke-{}", std::process::id()));
    let logs_arg = logs.display().to_string();
    let args = [
        "--mode",
        "both",
        "--rounds",
        "1",
        "--duration-secs",
        "0.5",
        "--warmup-secs",
        "0.2",
        "--connections",
        "2",
        "--load",
        "builtin",
        "--new-series",
        "40",
        "--access-log-dir",
        &logs_arg,
        "--json",
    ];
    let out = bench(&args, Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let _ = std::fs::remove_dir_all(&logs);
    assert!(
        out.status.success(),
        "exit {:?}; stderr:\n{stderr}",
        out.status
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}):\n{stdout}"));
    assert_eq!(report["config"]["load"], "builtin");
    assert_eq!(num(&report, &["config", "rounds"]), 1.0);
    assert_eq!(report["problems"].as_array().map(Vec::len), Some(0));
    assert_eq!(
        report["load_average"]["start"].as_array().map(Vec::len),
        Some(3)
    );

    let empty = built("MESHSTATS_EMPTY_WASM", "dist/empty-filter.wasm");
    let native = built("MESHSTATS_NATIVE", "dist/libmeshstats.so");
    for (mode, envoys) in [("one-envoy", 1.0), ("two-sidecars", 2.0)] {
        let m = &report["modes"][mode];
        assert_eq!(num(m, &["connections"]), 2.0, "{mode}");
        let table_start = stderr
            .find(&format!("{mode}: "))
            .unwrap_or_else(|| panic!("no {mode} table in stderr:\n{stderr}"));
        let table = &stderr[table_start..];
        for name in SETUPS {
            let s = &m["setups"][name];
            let present = match name {
                "empty_wasm" => empty,
                "native" | "native_dims_log" => native,
                _ => true,
            };
            let want = if present { "ok" } else { "not built" };
            assert_eq!(s["status"], want, "{mode} {name}: {s}");
            let row = table
                .lines()
                .find(|l| l.split_whitespace().next() == Some(name))
                .unwrap_or_else(|| panic!("{mode}: no row {name} in\n{table}"));
            if !present {
                assert!(row.ends_with("not built"), "{row}");
                continue;
            }
            // Measured: 7 columns of numbers after the name.
            let cells: Vec<f64> = row
                .split_whitespace()
                .skip(1)
                .map(|c| c.parse().unwrap_or_else(|_| panic!("{mode}: {row}")))
                .collect();
            assert_eq!(cells.len(), 7, "{row}");
            assert_eq!(num(s, &["envoys"]), envoys, "{mode} {name}");
            assert_eq!(
                num(s, &["failures"]),
                0.0,
                "{mode} {name}; stderr:\n{stderr}"
            );
            for key in [
                "requests",
                "warmup_requests",
                "requests_per_sec",
                "cpu_us_per_request",
                "peak_rss_bytes",
            ] {
                assert!(num(s, &[key]) > 0.0, "{mode} {name}.{key}: {s}");
            }
            let (p50, p99) = (
                num(s, &["latency_us", "p50"]),
                num(s, &["latency_us", "p99"]),
            );
            assert!(
                0.0 < p50 && p50 <= p99,
                "{mode} {name}: p50 {p50} p99 {p99}"
            );
            assert_eq!(
                s["rounds"].as_array().map(Vec::len),
                Some(1),
                "{mode} {name}"
            );

            // The in-repo generator waits for every request it sends: exact counts.
            let check = m["checks"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["setup"] == name))
                .unwrap_or_else(|| panic!("{mode}: no check for {name}"));
            let sent = num(s, &["requests"]) + num(s, &["warmup_requests"]);
            assert_eq!(
                (num(check, &["sent_min"]), num(check, &["sent_max"])),
                (sent, sent)
            );
            let meshstats = name.starts_with("wasm") || name.starts_with("native");
            let counts = check["istio_requests_total"].as_array().unwrap();
            assert_eq!(counts.len() as f64, envoys, "{check}");
            for c in counts {
                let want = if meshstats { sent } else { 0.0 };
                assert_eq!(
                    num(c, &["istio_requests_total"]),
                    want,
                    "{mode} {name}: {c}"
                );
            }
            let lines = check["log_lines"].as_array().unwrap();
            if name.ends_with("log") {
                assert_eq!(lines.len() as f64, envoys, "{check}");
                for l in lines {
                    assert_eq!(num(l, &["lines"]), sent, "{mode} {name}: {l}");
                }
            } else {
                assert!(lines.is_empty(), "{check}");
            }
        }
        let budgets = m["budgets"].as_array().unwrap();
        let setups: Vec<&str> = budgets.iter().filter_map(|b| b["setup"].as_str()).collect();
        assert_eq!(setups, ["native", "native_dims_log", "wasm"], "{mode}");
        for b in budgets {
            let measured = match b["setup"].as_str() {
                Some("wasm") => empty,
                _ => native,
            };
            if measured {
                let r = num(b, &["ratio"]);
                assert!(r.is_finite() && r > 0.0, "{b}");
                let want = if r >= num(b, &["min"]) {
                    "pass"
                } else {
                    "miss"
                };
                assert_eq!(b["status"], want, "{b}");
            } else {
                assert_eq!(b["status"], "not measured", "{b}");
            }
        }
        let lines = stderr
            .lines()
            .filter(|l| l.starts_with(&format!("budget ({mode}): ")))
            .count();
        assert_eq!(lines, 3, "{mode} budget lines in:\n{stderr}");
    }

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
}

#[test]
fn bad_arguments_exit_2_without_starting_anything() {
    for args in [
        &["--rounds", "0"][..],
        &["--duration-secs", "abc"],
        &["--connections"],
        &["--mode", "three-sidecars"],
        &["--load", "ab"],
        &["--setups", "bare,nope"],
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
