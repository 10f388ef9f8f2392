//! `make bench`: what the meshstats filter costs, measured side by side in one run.
//!
//! ```text
//!                  bare:  load --> [productpage-v1 sidecar] --> [ratings-v1 sidecar] --+
//!                                                                                      +--> backend
//!             meshstats:  load --> [productpage-v1 sidecar] --> [ratings-v1 sidecar] --+
//!                                   (+ meshstats, config {})     (+ meshstats, config {})
//! ```
//!
//! Both pairs run at once from the same bootstraps (`Sidecar`, `Bookinfo::start_with`), the
//! only difference being the filter; every Envoy has one worker (`--concurrency 1`). After a
//! warm-up of each, rounds alternate bare, meshstats, bare, … so that drift (other load,
//! thermal) hits both alike. Reported per setup: throughput, latency percentiles, Envoy CPU
//! time per request, memory (`/memory`, RSS) — and the ratios meshstats/bare. Then the
//! meshstats sidecars' `istio_requests_total` must equal the requests sent through them
//! exactly (warm-up included): that, request failures and errors make the exit status
//! non-zero; slowness never does.
//!
//! Then the cost of a new series: one more outbound sidecar (meshstats, the same config, a
//! cluster without `istio` metadata, so `destination_service` is the Host header) gets
//! requests one at a time, in alternating chunks: a Host it has seen (a cached label tuple) and
//! never-seen Hosts (each a new tuple: stat names built, metrics defined, Envoy's `stats_tags`
//! run over each name). Reported: its Envoy CPU per request for both and the ratio.
//!
//! Usage: `meshstats-bench [--rounds N] [--duration-secs S] [--connections C]
//! [--warmup-secs S] [--new-series N] [--json]`. Uses `ENVOY_BIN`, `MESHSTATS_WASM` like the tests.

use meshstats_integration::load::{self, LoadOptions, LoadResult};
use meshstats_integration::mesh::{Bookinfo, Sidecar};
use meshstats_integration::{envoy_bin, wasm_path, Backend, Envoy};
use serde_json::{json, Value};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: meshstats-bench [--rounds N] [--duration-secs S] [--connections C] [--warmup-secs S] [--config FILE] [--new-series N] [--json]\n  \
    --rounds N         measured rounds per setup, alternating bare/meshstats (default 3)\n  \
    --duration-secs S  length of each round (default 5)\n  \
    --connections C    concurrent keep-alive connections of the load generator (default 8)\n  \
    --warmup-secs S    unmeasured load on each setup before the rounds (default 1)\n  \
    --config FILE      the filter configuration to measure (default {})\n  \
    --new-series N     requests with never-seen Host headers (and as many cached ones) for the new-series row (default 1000, 0: skip)\n  \
    --json             print one JSON object with every number on stdout (the table goes to stderr)";

/// What the load generator sends to the client sidecar.
const PATH: &str = "/bench";
const HOST: &str = "ratings:9080";
/// Upper bounds, so a typo cannot make a run that never ends.
const MAX_ROUNDS: u32 = 100;
const MAX_SECS: f64 = 600.0;
const MAX_CONNECTIONS: usize = 256;
/// Below the default `max_series_per_metric` (2000): every never-seen Host is a new series.
const MAX_NEW_SERIES: usize = 1_500;
/// The new-series row alternates this many chunks of each kind.
const NEW_SERIES_CHUNKS: usize = 4;
/// How long to wait for `istio_requests_total` to reach the expected count.
const COUNT_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
struct Args {
    rounds: u32,
    duration: Duration,
    connections: usize,
    warmup: Duration,
    json: bool,
    /// The filter configuration under test.
    config: String,
    /// Never-seen Host headers sent for the new-series row.
    new_series: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        rounds: 3,
        duration: Duration::from_secs(5),
        connections: 8,
        warmup: Duration::from_secs(1),
        json: false,
        config: "{}".into(),
        new_series: 1_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--rounds" => args.rounds = number(&a, &value(&a)?, 1, MAX_ROUNDS)?,
            "--connections" => args.connections = number(&a, &value(&a)?, 1, MAX_CONNECTIONS)?,
            "--duration-secs" => args.duration = seconds(&a, &value(&a)?, false)?,
            "--warmup-secs" => args.warmup = seconds(&a, &value(&a)?, true)?,
            "--json" => args.json = true,
            "--new-series" => args.new_series = number(&a, &value(&a)?, 0, MAX_NEW_SERIES)?,
            "--config" => {
                let path = value(&a)?;
                args.config =
                    std::fs::read_to_string(&path).map_err(|e| format!("--config {path}: {e}"))?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(args)
}

fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display>(
    name: &str,
    v: &str,
    min: T,
    max: T,
) -> Result<T, String> {
    match v.parse::<T>() {
        Ok(n) if n >= min && n <= max => Ok(n),
        _ => Err(format!(
            "{name}: want a whole number from {min} to {max}, got {v:?}"
        )),
    }
}

fn seconds(name: &str, v: &str, zero_ok: bool) -> Result<Duration, String> {
    match v.parse::<f64>() {
        Ok(s) if s.is_finite() && s <= MAX_SECS && (s > 0.0 || (zero_ok && s == 0.0)) => {
            Ok(Duration::from_secs_f64(s))
        }
        _ => Err(format!(
            "{name}: want seconds from {} to {MAX_SECS}, got {v:?}",
            if zero_ok { "0" } else { "just above 0" }
        )),
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(problems) if problems.is_empty() => ExitCode::SUCCESS,
        Ok(problems) => {
            for p in problems {
                eprintln!("bench: FAILED: {p}");
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One Bookinfo pair and everything measured on it.
struct Setup {
    name: &'static str,
    mesh: Bookinfo,
    warmup: LoadResult,
    measured: LoadResult,
    /// (requests, req/s) of each round.
    rounds: Vec<(u64, f64)>,
    /// CPU time of the two Envoys during this setup's rounds: client, server.
    envoy_cpu: [Duration; 2],
    /// CPU time of this process (load generator and backend) during this setup's rounds.
    harness_cpu: Duration,
}

impl Setup {
    fn start(
        name: &'static str,
        backend: &Backend,
        with_filter: bool,
        config: &str,
    ) -> Result<Setup, String> {
        // Envoy's default stats flush (5 s) rather than the harness's 100 ms: a flush costs
        // CPU, and only counters (which need no flush) are checked here.
        let adjust = |s: Sidecar| Sidecar {
            with_filter,
            stats_flush_interval: None,
            ..s.config(config)
        };
        let mesh = Bookinfo::start_with(backend.addr(), adjust, adjust)?;
        Ok(Setup {
            name,
            mesh,
            warmup: LoadResult::default(),
            measured: LoadResult::default(),
            rounds: Vec::new(),
            envoy_cpu: [Duration::ZERO; 2],
            harness_cpu: Duration::ZERO,
        })
    }

    fn envoys(&self) -> [&Envoy; 2] {
        [&self.mesh.client, &self.mesh.server]
    }

    fn envoy_cpu_now(&self) -> Result<[Duration; 2], String> {
        Ok([
            load::cpu_time(self.mesh.client.pid())?,
            load::cpu_time(self.mesh.server.pid())?,
        ])
    }

    fn load(&self, args: &Args, duration: Duration) -> LoadResult {
        load::run(
            self.mesh.entry,
            &LoadOptions::new(args.connections, duration, PATH, HOST),
        )
    }

    fn round(&mut self, args: &Args) -> Result<LoadResult, String> {
        let me = std::process::id();
        let (envoy_before, harness_before) = (self.envoy_cpu_now()?, load::cpu_time(me)?);
        let r = self.load(args, args.duration);
        let (envoy_after, harness_after) = (self.envoy_cpu_now()?, load::cpu_time(me)?);
        for ((total, after), before) in self.envoy_cpu.iter_mut().zip(envoy_after).zip(envoy_before)
        {
            *total += after.saturating_sub(before);
        }
        self.harness_cpu += harness_after.saturating_sub(harness_before);
        self.rounds.push((r.completed, r.rate()));
        self.measured.merge(&r);
        Ok(r)
    }

    /// Every request this setup's Envoys carried, warm-up included.
    fn total_completed(&self) -> u64 {
        self.warmup.completed + self.measured.completed
    }
}

/// Latency percentiles (µs) and the numbers derived from a setup.
struct Summary {
    rate: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    mean: f64,
    cpu_us_per_request: f64,
    client_cpu_us_per_request: f64,
    server_cpu_us_per_request: f64,
    harness_cpu_us_per_request: f64,
    memory: Memory,
}

#[derive(Default, Clone, Copy)]
struct Memory {
    allocated: u64,
    heap_size: u64,
    rss: u64,
}

fn summarize(s: &Setup, memory: Memory) -> Summary {
    let h = &s.measured.latency_us;
    let q = |x: f64| h.value_at_quantile(x) as f64;
    let per_request = |cpu: Duration| {
        if s.measured.completed > 0 {
            cpu.as_secs_f64() * 1e6 / s.measured.completed as f64
        } else {
            0.0
        }
    };
    Summary {
        rate: s.measured.rate(),
        p50: q(0.50),
        p90: q(0.90),
        p99: q(0.99),
        max: h.max() as f64,
        mean: h.mean(),
        cpu_us_per_request: per_request(s.envoy_cpu[0] + s.envoy_cpu[1]),
        client_cpu_us_per_request: per_request(s.envoy_cpu[0]),
        server_cpu_us_per_request: per_request(s.envoy_cpu[1]),
        harness_cpu_us_per_request: per_request(s.harness_cpu),
        memory,
    }
}

/// `/memory` of one Envoy (the values are JSON strings of byte counts) and its RSS.
fn memory_of(envoy: &Envoy) -> Result<Memory, String> {
    let r = envoy.admin_get("/memory")?;
    if r.status != 200 {
        return Err(format!(
            "envoy {}: GET /memory: {} {}",
            envoy.name(),
            r.status,
            r.body
        ));
    }
    let v: Value = serde_json::from_str(&r.body)
        .map_err(|e| format!("envoy {}: /memory: {e}: {}", envoy.name(), r.body))?;
    let field = |k: &str| -> Result<u64, String> {
        match &v[k] {
            Value::String(s) => s.parse().ok(),
            n => n.as_u64(),
        }
        .ok_or_else(|| format!("envoy {}: /memory has no {k}: {}", envoy.name(), r.body))
    };
    Ok(Memory {
        allocated: field("allocated")?,
        heap_size: field("heap_size")?,
        rss: load::rss_bytes(envoy.pid())?,
    })
}

fn concurrency_of(envoy: &Envoy) -> Result<u64, String> {
    let r = envoy.admin_get("/server_info")?;
    let v: Value = serde_json::from_str(&r.body)
        .map_err(|e| format!("envoy {}: /server_info: {e}", envoy.name()))?;
    v["command_line_options"]["concurrency"]
        .as_u64()
        .ok_or_else(|| {
            format!(
                "envoy {}: /server_info has no command_line_options.concurrency",
                envoy.name()
            )
        })
}

/// Waits until the sum of `istio_requests_total` on `envoy` is `expected`; returns the last sum.
fn reported_requests(envoy: &Envoy, expected: u64) -> Result<u64, String> {
    let mut last = None;
    let got = envoy.wait_for(COUNT_WAIT, |s| {
        let sum = s.sum("istio_requests_total", &[]);
        last = Some(sum);
        (sum == expected as f64).then_some(sum)
    });
    match (got, last) {
        (Ok(v), _) => Ok(v as u64),
        // Not reached in time: report what was there (the caller compares).
        (Err(_), Some(v)) => Ok(v as u64),
        (Err(e), None) => Err(e),
    }
}

fn ratio(meshstats: f64, bare: f64) -> f64 {
    if bare > 0.0 {
        meshstats / bare
    } else {
        f64::NAN
    }
}

fn run(args: &Args) -> Result<Vec<String>, String> {
    let started = Instant::now();
    eprintln!(
        "bench: envoy {}, filter {}",
        envoy_bin().display(),
        wasm_path().display()
    );
    let backend = Backend::start();
    let mut setups = [
        Setup::start("bare", &backend, false, &args.config)?,
        Setup::start("meshstats", &backend, true, &args.config)?,
    ];
    for s in &setups {
        for e in s.envoys() {
            let c = concurrency_of(e)?;
            if c != 1 {
                return Err(format!(
                    "envoy {} ({}) runs with --concurrency {c}, want 1",
                    e.name(),
                    s.name
                ));
            }
        }
        eprintln!(
            "bench: {:<9} client sidecar {} → server sidecar {} → backend {}",
            s.name,
            s.mesh.entry,
            s.mesh.server_listen,
            backend.addr()
        );
    }

    for s in &mut setups {
        if !args.warmup.is_zero() {
            s.warmup = s.load(args, args.warmup);
            eprintln!(
                "bench: warm-up {:<9} {:>7} requests, {} failed",
                s.name,
                s.warmup.completed,
                s.warmup.failures()
            );
        }
    }
    for round in 1..=args.rounds {
        for s in &mut setups {
            let r = s.round(args)?;
            eprintln!(
                "bench: round {round}/{} {:<9} {:>7} requests  {:>9.1} req/s  p50 {:>6} µs  {} failed",
                args.rounds,
                s.name,
                r.completed,
                r.rate(),
                r.latency_us.value_at_quantile(0.5),
                r.failures()
            );
        }
    }

    let mut memory = [Memory::default(); 2];
    let mut per_envoy = Vec::new();
    for (s, m) in setups.iter().zip(&mut memory) {
        for e in s.envoys() {
            let x = memory_of(e)?;
            m.allocated += x.allocated;
            m.heap_size += x.heap_size;
            m.rss += x.rss;
            per_envoy.push(json!({
                "setup": s.name, "envoy": e.name(), "pid": e.pid(),
                "allocated_bytes": x.allocated, "heap_size_bytes": x.heap_size, "rss_bytes": x.rss,
            }));
        }
    }

    // Zero lost counts: every request through the meshstats pair is in istio_requests_total
    // on both sidecars, once.
    let [bare, meshstats] = &setups;
    let expected = meshstats.total_completed();
    let client_count = reported_requests(&meshstats.mesh.client, expected)?;
    let server_count = reported_requests(&meshstats.mesh.server, expected)?;
    let bare_istio = bare
        .mesh
        .client
        .prometheus()?
        .sum("istio_requests_total", &[])
        + bare
            .mesh
            .server
            .prometheus()?
            .sum("istio_requests_total", &[]);

    let new_series = if args.new_series > 0 {
        Some(new_series(args, &backend)?)
    } else {
        None
    };

    let (a, b) = (summarize(bare, memory[0]), summarize(meshstats, memory[1]));
    let r = |f: fn(&Summary) -> f64| ratio(f(&b), f(&a));
    let rm = |f: fn(&Memory) -> u64| ratio(f(&b.memory) as f64, f(&a.memory) as f64);
    let ratios = json!({
        "throughput": r(|s| s.rate),
        "latency_p50": r(|s| s.p50),
        "latency_p90": r(|s| s.p90),
        "latency_p99": r(|s| s.p99),
        "latency_max": r(|s| s.max),
        "latency_mean": r(|s| s.mean),
        "cpu_per_request": r(|s| s.cpu_us_per_request),
        "cpu_per_request_client": r(|s| s.client_cpu_us_per_request),
        "cpu_per_request_server": r(|s| s.server_cpu_us_per_request),
        "memory_allocated": rm(|m| m.allocated),
        "memory_heap_size": rm(|m| m.heap_size),
        "memory_rss": rm(|m| m.rss),
    });
    let counts_ok = client_count == expected && server_count == expected;
    let report = json!({
        "config": {
            "rounds": args.rounds,
            "duration_secs": args.duration.as_secs_f64(),
            "warmup_secs": args.warmup.as_secs_f64(),
            "connections": args.connections,
            "envoys_per_setup": 2,
            "envoy_concurrency": 1,
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "envoy": envoy_bin().display().to_string(),
            "wasm": wasm_path().display().to_string(),
        },
        "bare": setup_json(bare, &a),
        "meshstats": setup_json(meshstats, &b),
        "ratios": ratios,
        "memory_per_envoy": per_envoy,
        "counts": {
            "expected": expected,
            "client": client_count,
            "server": server_count,
            "ok": counts_ok,
        },
        "new_series": new_series.as_ref().map(|n| json!({
            "requests_each": n.requests,
            "cached_cpu_us_per_request": n.cached_us,
            "new_cpu_us_per_request": n.new_us,
            "ratio": ratio(n.new_us, n.cached_us),
            "series": n.series,
            "counted": n.counted,
        })),
        "elapsed_secs": started.elapsed().as_secs_f64(),
    });

    let mut table = table(args, &a, &b, bare, meshstats);
    if let Some(n) = &new_series {
        table += &format!(
            "\nnew series: one outbound sidecar, {} requests of each kind, one at a time, {} alternating chunks\n\
             {:<28} {:>12} {:>12} {:>15}\n\
             {:<28} {:>12.1} {:>12.1} {:>15.2}",
            n.requests,
            NEW_SERIES_CHUNKS,
            "",
            "cached",
            "never-seen",
            "never-seen/cached",
            "Envoy CPU per request (µs)",
            n.cached_us,
            n.new_us,
            ratio(n.new_us, n.cached_us)
        );
    }
    let counts_line =
        format!("counts: client {client_count}/{expected}, server {server_count}/{expected}");
    if args.json {
        eprintln!("{table}\n{counts_line}");
        println!("{report}");
    } else {
        println!("{table}\n{counts_line}");
    }

    let mut problems = Vec::new();
    if let Some(n) = &new_series {
        // One series per never-seen Host plus the cached one; every request counted.
        if n.series != n.requests + 1 || n.counted != n.sent {
            problems.push(format!(
                "new series: {} istio_requests_total series (want {}), {} requests counted of {}",
                n.series,
                n.requests + 1,
                n.counted,
                n.sent
            ));
        }
    }
    if !counts_ok {
        problems.push(format!(
            "istio_requests_total lost or added requests ({counts_line})"
        ));
    }
    if bare_istio != 0.0 {
        problems.push(format!("the bare setup reports istio_requests_total ({bare_istio}): the filter is loaded there"));
    }
    for s in [bare, meshstats] {
        let (w, m) = (&s.warmup, &s.measured);
        if w.failures() + m.failures() > 0 || s.measured.completed == 0 {
            let errors: Vec<&String> = w.errors.iter().chain(&m.errors).collect();
            problems.push(format!(
                "{}: {} completed, {} non-200, {} I/O errors; first errors: {errors:?}",
                s.name,
                s.total_completed(),
                w.non_200 + m.non_200,
                w.io_errors + m.io_errors
            ));
        }
    }
    Ok(problems)
}

/// The new-series row: CPU per request of one sidecar for cached and never-seen tuples.
struct NewSeries {
    requests: usize,
    cached_us: f64,
    new_us: f64,
    sent: u64,
    counted: u64,
    series: usize,
}

fn new_series(args: &Args, backend: &Backend) -> Result<NewSeries, String> {
    use meshstats_integration::http_get;
    let sidecar = Sidecar {
        stats_flush_interval: None,
        ..Sidecar::new(
            "new-series",
            meshstats_cli::Direction::Outbound,
            backend.addr(),
            meshstats_integration::mesh::workload_metadata("productpage", "v1"),
        )
        .config(&args.config)
    };
    let (envoy, listen) = sidecar.start()?;
    let pid = envoy.pid();
    let get = |host: &str| -> Result<(), String> {
        let r = http_get(listen, PATH, &[("host", host)])?;
        if r.status == 200 {
            Ok(())
        } else {
            Err(format!("new series: GET with host {host}: {}", r.status))
        }
    };
    let mut sent = 0u64;
    // Warm the connection, the VM and the cached tuple.
    for _ in 0..20 {
        get("cached.example")?;
        sent += 1;
    }
    let chunk = args.new_series.div_ceil(NEW_SERIES_CHUNKS);
    let (mut cached, mut new) = (Duration::ZERO, Duration::ZERO);
    let (mut n_cached, mut n_new) = (0usize, 0usize);
    while n_new < args.new_series {
        let size = chunk.min(args.new_series - n_new);
        let before = load::cpu_time(pid)?;
        for _ in 0..size {
            get("cached.example")?;
        }
        let middle = load::cpu_time(pid)?;
        for i in n_new..n_new + size {
            get(&format!("n{i}.example"))?;
        }
        let after = load::cpu_time(pid)?;
        cached += middle.saturating_sub(before);
        new += after.saturating_sub(middle);
        n_cached += size;
        n_new += size;
        sent += 2 * size as u64;
    }
    let per = |d: Duration, n: usize| d.as_secs_f64() * 1e6 / n.max(1) as f64;
    let counted = reported_requests(&envoy, sent)?;
    let series = envoy.prometheus()?.series("istio_requests_total").len();
    Ok(NewSeries {
        requests: n_new,
        cached_us: per(cached, n_cached),
        new_us: per(new, n_new),
        sent,
        counted,
        series,
    })
}

fn setup_json(s: &Setup, x: &Summary) -> Value {
    json!({
        "requests": s.measured.completed,
        "ok": s.measured.ok(),
        "failures": s.measured.failures(),
        "non_200": s.measured.non_200,
        "io_errors": s.measured.io_errors,
        "warmup_requests": s.warmup.completed,
        "warmup_failures": s.warmup.failures(),
        "measured_secs": s.measured.elapsed.as_secs_f64(),
        "requests_per_sec": x.rate,
        "latency_us": { "p50": x.p50, "p90": x.p90, "p99": x.p99, "max": x.max, "mean": x.mean },
        "envoy_cpu_secs": (s.envoy_cpu[0] + s.envoy_cpu[1]).as_secs_f64(),
        "cpu_us_per_request": x.cpu_us_per_request,
        "client_cpu_us_per_request": x.client_cpu_us_per_request,
        "server_cpu_us_per_request": x.server_cpu_us_per_request,
        "harness_cpu_us_per_request": x.harness_cpu_us_per_request,
        "memory": {
            "allocated_bytes": x.memory.allocated,
            "heap_size_bytes": x.memory.heap_size,
            "rss_bytes": x.memory.rss,
        },
        "rounds": s.rounds.iter().map(|(n, rate)| json!({ "requests": n, "requests_per_sec": rate })).collect::<Vec<_>>(),
    })
}

fn table(args: &Args, a: &Summary, b: &Summary, bare: &Setup, meshstats: &Setup) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let rows: Vec<(&str, f64, f64, usize)> = vec![
        ("throughput (req/s)", a.rate, b.rate, 1),
        ("latency p50 (µs)", a.p50, b.p50, 0),
        ("latency p90 (µs)", a.p90, b.p90, 0),
        ("latency p99 (µs)", a.p99, b.p99, 0),
        ("latency max (µs)", a.max, b.max, 0),
        (
            "Envoy CPU per request (µs)",
            a.cpu_us_per_request,
            b.cpu_us_per_request,
            1,
        ),
        (
            "  client sidecar",
            a.client_cpu_us_per_request,
            b.client_cpu_us_per_request,
            1,
        ),
        (
            "  server sidecar",
            a.server_cpu_us_per_request,
            b.server_cpu_us_per_request,
            1,
        ),
        (
            "memory allocated (MiB)",
            a.memory.allocated as f64 / MIB,
            b.memory.allocated as f64 / MIB,
            1,
        ),
        (
            "memory heap_size (MiB)",
            a.memory.heap_size as f64 / MIB,
            b.memory.heap_size as f64 / MIB,
            1,
        ),
        (
            "RSS (MiB)",
            a.memory.rss as f64 / MIB,
            b.memory.rss as f64 / MIB,
            1,
        ),
    ];
    let mut out =
        format!(
        "meshstats-bench: {} rounds x {} s per setup (alternating), {} connections, {} s warm-up; \
         2 Envoys per setup (client+server summed), --concurrency 1, {} cores\n",
        args.rounds,
        args.duration.as_secs_f64(),
        args.connections,
        args.warmup.as_secs_f64(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
    );
    out += &format!(
        "{:<28} {:>12} {:>12} {:>15}\n",
        "", "bare", "meshstats", "meshstats/bare"
    );
    for (name, x, y, decimals) in rows {
        out += &format!(
            "{name:<28} {x:>12.decimals$} {y:>12.decimals$} {:>15.3}\n",
            ratio(y, x)
        );
    }
    out += &format!(
        "{:<28} {:>12} {:>12}\n",
        "requests (measured)", bare.measured.completed, meshstats.measured.completed
    );
    out += &format!(
        "{:<28} {:>12} {:>12}\n",
        "failures",
        bare.measured.failures(),
        meshstats.measured.failures()
    );
    out += &format!(
        "{:<28} {:>12.1} {:>12.1}",
        "load gen+backend CPU/req (µs)", a.harness_cpu_us_per_request, b.harness_cpu_us_per_request
    );
    out
}
