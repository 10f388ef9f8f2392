//! `make bench`: what meshstats costs, every setup side by side in one run.
//!
//! Setups (`bench::setup::SETUPS`): bare Envoy; Envoy's own JSON access log; the empty Wasm
//! filter (`fixtures/empty-wasm`); meshstats Wasm and meshstats native, each with `{}` and
//! with 5 custom dimensions + one JSON log line per request. Modes: one Envoy (an INBOUND
//! listener answering with a direct response) and two sidecars (Bookinfo's client and server
//! in front of the harness's backend). Every Envoy has one worker.
//!
//! All setups of a mode run at once; after a warm-up of each, rounds go through every setup in
//! turn, each round starting one setup later, so drift on a shared machine hits all setups
//! alike. Per round: throughput, Envoy CPU per request (`/proc/<pid>/stat` over the round),
//! p50/p99 latency, peak RSS over the round; the table shows medians of rounds and ratios of
//! medians, then the budget lines. Every request through a meshstats setup must be in its
//! `istio_requests_total` (and with `--access-log-dir`, every log line in its file): that,
//! failed requests and setups that do not start make the exit status non-zero; slowness never
//! does. A module that is not built is a "not built" row.
//!
//! Then the cost of a new series (Wasm, as before): one more outbound sidecar gets requests
//! one at a time, alternating a cached label tuple and never-seen Host headers.

use meshstats_integration::bench::setup::{self, Artifacts, Build, Mode, Running, Spec, SETUPS};
use meshstats_integration::bench::{median, ratio, wrk};
use meshstats_integration::load::{self, LoadOptions};
use meshstats_integration::mesh::Sidecar;
use meshstats_integration::{envoy_bin, wasm_path, Backend, Envoy};
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: meshstats-bench [--mode one-envoy|two-sidecars|both] [--rounds N] [--duration-secs S] [--warmup-secs S] [--connections C] [--load auto|wrk|builtin] [--setups a,b,...] [--access-log-dir DIR] [--new-series N] [--json]\n  \
    --mode M            one-envoy, two-sidecars or both (default both)\n  \
    --rounds N          measured rounds per setup, interleaved (default 5)\n  \
    --duration-secs S   length of each round (default 4; wrk rounds up to whole seconds)\n  \
    --warmup-secs S     unmeasured load on each setup before the rounds (default 1)\n  \
    --connections C     keep-alive connections (default 16 one-envoy, 8 two-sidecars)\n  \
    --load L            wrk (one thread), builtin (integration/src/load.rs) or auto: wrk when installed (default)\n  \
    --setups LIST       only these setups (default all): bare,envoy_json_log,empty_wasm,wasm,wasm_dims_log,native,native_dims_log\n  \
    --access-log-dir D  write access logs into D (one file per Envoy) and check every line is there, instead of /dev/null\n  \
    --new-series N      requests with never-seen Host headers (and as many cached ones) for the new-series row (default 1000, 0: skip)\n  \
    --json              print one JSON object with every number on stdout (the table goes to stderr)\n\
    Modules: MESHSTATS_WASM, MESHSTATS_EMPTY_WASM (dist/empty-filter.wasm), MESHSTATS_NATIVE (dist/libmeshstats.so).";

const PATH: &str = "/bench";
const HOST: &str = "ratings:9080";
/// Upper bounds, so a typo cannot make a run that never ends.
const MAX_ROUNDS: u32 = 100;
const MAX_SECS: f64 = 600.0;
const MAX_CONNECTIONS: usize = 256;
/// Below the default `max_series_per_metric` (2000): every never-seen Host is a new series.
const MAX_NEW_SERIES: usize = 1_500;
const NEW_SERIES_CHUNKS: usize = 4;
/// How long counts and log lines may take to arrive (a counter flush on the filter's tick,
/// Envoy's 1 s access-log file flush).
const COUNT_WAIT: Duration = Duration::from_secs(15);

/// The budget lines: `setup`'s median throughput over `reference`'s must be at least `min`.
const BUDGETS: [(&str, &str, f64); 3] = [
    ("native", "bare", 0.93),
    ("native_dims_log", "envoy_json_log", 0.90),
    ("wasm", "empty_wasm", 0.75),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Wrk,
    Builtin,
}

#[derive(Debug, Clone)]
struct Args {
    modes: Vec<Mode>,
    rounds: u32,
    duration: Duration,
    warmup: Duration,
    connections: Option<usize>,
    tool: Option<Tool>,
    setups: Vec<&'static Spec>,
    log_dir: Option<PathBuf>,
    new_series: usize,
    json: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        modes: vec![Mode::OneEnvoy, Mode::TwoSidecars],
        rounds: 5,
        duration: Duration::from_secs(4),
        warmup: Duration::from_secs(1),
        connections: None,
        tool: None,
        setups: SETUPS.iter().collect(),
        log_dir: None,
        new_series: 1_000,
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--rounds" => args.rounds = number(&a, &value(&a)?, 1, MAX_ROUNDS)?,
            "--connections" => {
                args.connections = Some(number(&a, &value(&a)?, 1, MAX_CONNECTIONS)?)
            }
            "--duration-secs" => args.duration = seconds(&a, &value(&a)?, false)?,
            "--warmup-secs" => args.warmup = seconds(&a, &value(&a)?, true)?,
            "--new-series" => args.new_series = number(&a, &value(&a)?, 0, MAX_NEW_SERIES)?,
            "--json" => args.json = true,
            "--mode" => {
                args.modes = match value(&a)?.as_str() {
                    "one-envoy" => vec![Mode::OneEnvoy],
                    "two-sidecars" => vec![Mode::TwoSidecars],
                    "both" => vec![Mode::OneEnvoy, Mode::TwoSidecars],
                    other => {
                        return Err(format!(
                            "--mode: want one-envoy, two-sidecars or both, got {other:?}"
                        ))
                    }
                }
            }
            "--load" => {
                args.tool = match value(&a)?.as_str() {
                    "auto" => None,
                    "wrk" => Some(Tool::Wrk),
                    "builtin" => Some(Tool::Builtin),
                    other => {
                        return Err(format!("--load: want auto, wrk or builtin, got {other:?}"))
                    }
                }
            }
            "--setups" => {
                let list = value(&a)?;
                args.setups = list
                    .split(',')
                    .map(|n| {
                        setup::spec(n.trim())
                            .ok_or_else(|| format!("--setups: no setup {n:?}\n{USAGE}"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--access-log-dir" => args.log_dir = Some(PathBuf::from(value(&a)?)),
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
    let artifacts = Artifacts::find(args.log_dir.clone());
    // Envoy finds dynamic modules only through this variable; set before any thread or Envoy
    // starts, so every Envoy inherits it.
    if let Some(dir) = artifacts.native_dir() {
        std::env::set_var("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", dir);
    }
    match run(&args, &artifacts) {
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

/// One load run's outcome, whichever tool made it.
struct Shot {
    requests: u64,
    secs: f64,
    p50_us: f64,
    p99_us: f64,
    failures: u64,
    error: Option<String>,
}

/// One measured round of one setup.
struct Sample {
    requests: u64,
    rate: f64,
    cpu_us_per_request: f64,
    p50_us: f64,
    p99_us: f64,
    peak_rss_bytes: u64,
}

/// One setup in one mode and everything measured on it.
struct Row {
    spec: &'static Spec,
    /// `Err`: not built, or failed to start.
    running: Result<Running, String>,
    samples: Vec<Sample>,
    warmup_requests: u64,
    /// Load runs (warm-up included): wrk may leave up to `connections` requests of each
    /// uncounted in flight, which Envoy still serves.
    runs: u64,
    failures: u64,
    errors: Vec<String>,
}

impl Row {
    fn sent(&self) -> u64 {
        self.warmup_requests + self.samples.iter().map(|s| s.requests).sum::<u64>()
    }

    fn medians(&self) -> [f64; 5] {
        let m = |f: fn(&Sample) -> f64| median(&self.samples.iter().map(f).collect::<Vec<_>>());
        [
            m(|s| s.rate),
            m(|s| s.cpu_us_per_request),
            m(|s| s.p50_us),
            m(|s| s.p99_us),
            self.samples
                .iter()
                .map(|s| s.peak_rss_bytes as f64)
                .fold(f64::NAN, f64::max),
        ]
    }
}

struct Load {
    tool: Tool,
    connections: usize,
}

impl Load {
    fn shot(&self, running: &Running, duration: Duration) -> Shot {
        match self.tool {
            Tool::Wrk => {
                let url = format!("http://{}{PATH}", running.entry);
                let secs = duration.as_secs_f64().ceil().max(1.0) as u64;
                match wrk::run(&url, HOST, self.connections, secs) {
                    Ok(r) => Shot {
                        requests: r.requests,
                        secs: r.secs,
                        p50_us: r.p50_us,
                        p99_us: r.p99_us,
                        failures: r.non_2xx + r.socket_errors,
                        error: (r.non_2xx + r.socket_errors > 0).then(|| {
                            format!("{} non-2xx, {} socket errors", r.non_2xx, r.socket_errors)
                        }),
                    },
                    Err(e) => Shot {
                        requests: 0,
                        secs: 0.0,
                        p50_us: f64::NAN,
                        p99_us: f64::NAN,
                        failures: 1,
                        error: Some(e),
                    },
                }
            }
            Tool::Builtin => {
                let r = load::run(
                    running.entry,
                    &LoadOptions::new(self.connections, duration, PATH, HOST),
                );
                let q = |x: f64| r.latency_us.value_at_quantile(x) as f64;
                Shot {
                    requests: r.completed,
                    secs: r.elapsed.as_secs_f64(),
                    p50_us: q(0.5),
                    p99_us: q(0.99),
                    failures: r.failures(),
                    error: r.errors.first().cloned(),
                }
            }
        }
    }

    fn describe(&self) -> String {
        match self.tool {
            Tool::Wrk => format!("wrk -t1 -c{}", self.connections),
            Tool::Builtin => format!("in-repo load generator, {} connections", self.connections),
        }
    }
}

fn record_failure(row: &mut Row, shot: &Shot) {
    row.failures += shot.failures;
    if let Some(e) = &shot.error {
        if row.errors.len() < 5 {
            row.errors.push(e.clone());
        }
    }
}

fn round(row: &mut Row, load: &Load, duration: Duration) -> Result<Shot, String> {
    let Ok(running) = &row.running else {
        return Err("not running".into());
    };
    let pids: Vec<u32> = running.envoys.iter().map(Envoy::pid).collect();
    for &pid in &pids {
        // Without it the peak is the process's lifetime one, which only overstates.
        let _ = load::reset_peak_rss(pid);
    }
    let cpu = |pids: &[u32]| -> Result<Duration, String> {
        pids.iter().map(|&p| load::cpu_time(p)).sum()
    };
    let before = cpu(&pids)?;
    let shot = load.shot(running, duration);
    let used = cpu(&pids)?.saturating_sub(before);
    let peak = pids
        .iter()
        .map(|&p| load::peak_rss_bytes(p))
        .sum::<Result<u64, String>>()?;
    row.runs += 1;
    record_failure(row, &shot);
    row.samples.push(Sample {
        requests: shot.requests,
        rate: if shot.secs > 0.0 {
            shot.requests as f64 / shot.secs
        } else {
            0.0
        },
        cpu_us_per_request: ratio(used.as_secs_f64() * 1e6, shot.requests as f64),
        p50_us: shot.p50_us,
        p99_us: shot.p99_us,
        peak_rss_bytes: peak,
    });
    Ok(shot)
}

/// A mode's rows, what was checked on them, and its budget lines.
struct ModeResult {
    mode: Mode,
    load: String,
    connections: usize,
    rows: Vec<Row>,
    checks: Vec<Value>,
    problems: Vec<String>,
}

fn run_mode(
    mode: Mode,
    args: &Args,
    tool: Tool,
    artifacts: &Artifacts,
    backend: &Backend,
) -> Result<ModeResult, String> {
    let connections = args.connections.unwrap_or(match mode {
        Mode::OneEnvoy => 16,
        Mode::TwoSidecars => 8,
    });
    let load = Load { tool, connections };
    // Started in parallel: V8 compiling a module takes a while, and start-up is not measured.
    let mut rows: Vec<Row> = std::thread::scope(|scope| {
        let handles: Vec<_> = args
            .setups
            .iter()
            .map(|&spec| {
                scope.spawn(move || match artifacts.missing(spec.build) {
                    Some(reason) => Err(reason),
                    None => setup::start(spec, mode, artifacts, backend.addr())
                        .map_err(|e| format!("failed to start: {e}")),
                })
            })
            .collect();
        args.setups
            .iter()
            .zip(handles)
            .map(|(&spec, h)| Row {
                spec,
                running: h
                    .join()
                    .unwrap_or_else(|_| Err("start-up thread panicked".into())),
                samples: Vec::new(),
                warmup_requests: 0,
                runs: 0,
                failures: 0,
                errors: Vec::new(),
            })
            .collect()
    });
    let mut problems = Vec::new();
    for row in &rows {
        match &row.running {
            Ok(r) => eprintln!(
                "bench: {} {:<16} {} Envoy(s), load to {}",
                mode.name(),
                row.spec.name,
                r.envoys.len(),
                r.entry
            ),
            Err(e) if e.starts_with("not built") => {
                eprintln!("bench: {} {:<16} {e}", mode.name(), row.spec.name)
            }
            Err(e) => problems.push(format!("{} {}: {e}", mode.name(), row.spec.name)),
        }
    }
    if !args.warmup.is_zero() {
        for row in rows.iter_mut() {
            let Ok(running) = &row.running else { continue };
            let shot = load.shot(running, args.warmup);
            row.warmup_requests += shot.requests;
            row.runs += 1;
            record_failure(row, &shot);
        }
    }
    let n = rows.len();
    for r in 0..args.rounds as usize {
        for i in 0..n {
            let row = &mut rows[(i + r) % n];
            if row.running.is_err() {
                continue;
            }
            let shot = round(row, &load, args.duration)?;
            eprintln!(
                "bench: {} round {}/{} {:<16} {:>9.1} req/s  p50 {:>7.0} µs  {} failed",
                mode.name(),
                r + 1,
                args.rounds,
                row.spec.name,
                ratio(shot.requests as f64, shot.secs),
                shot.p50_us,
                shot.failures
            );
        }
    }

    let mut checks = Vec::new();
    // One wait for all of the mode's counts, so a setup that never reports costs it once.
    let deadline = Instant::now() + COUNT_WAIT;
    for row in &rows {
        let Ok(running) = &row.running else { continue };
        let (low, high) = expected_range(row, &load);
        if row.failures > 0 || row.samples.iter().any(|s| s.requests == 0) {
            problems.push(format!(
                "{} {}: {} failed requests; first errors: {:?}",
                mode.name(),
                row.spec.name,
                row.failures,
                row.errors
            ));
        }
        let meshstats = matches!(row.spec.build, Build::Wasm | Build::Native);
        let mut counted = Vec::new();
        for envoy in &running.envoys {
            let sum = istio_requests(envoy, meshstats.then_some((low, high)), deadline)?;
            let ok = if meshstats {
                (low..=high).contains(&sum)
            } else {
                sum == 0
            };
            if !ok {
                problems.push(format!(
                    "{} {}: envoy {} has istio_requests_total {sum}, want {}",
                    mode.name(),
                    row.spec.name,
                    envoy.name(),
                    if meshstats {
                        format!("{low}..={high} (the requests sent)")
                    } else {
                        "0 (no filter)".into()
                    }
                ));
            }
            counted.push(json!({ "envoy": envoy.name(), "istio_requests_total": sum, "ok": ok }));
        }
        let logs = row.spec.envoy_json_log || row.spec.config.contains("\"logs\"");
        let mut lines = Vec::new();
        if let (true, Some(dir)) = (logs, &artifacts.log_dir) {
            for envoy in &running.envoys {
                let file = dir.join(format!("{}.log", envoy.name()));
                let got = log_lines(&file, low, deadline)?;
                let ok = (low..=high).contains(&got);
                if !ok {
                    problems.push(format!(
                        "{} {}: {} has {got} log lines, want {low}..={high}",
                        mode.name(),
                        row.spec.name,
                        file.display()
                    ));
                }
                lines.push(json!({ "envoy": envoy.name(), "lines": got, "ok": ok }));
            }
        }
        checks.push(json!({
            "setup": row.spec.name,
            "sent_min": low, "sent_max": high,
            "istio_requests_total": counted,
            "log_lines": lines,
        }));
    }
    Ok(ModeResult {
        mode,
        load: load.describe(),
        connections,
        rows,
        checks,
        problems,
    })
}

/// The requests Envoy may have served for `row`: exactly those completed with the in-repo
/// generator, which sends none it does not wait for; with wrk up to `connections` more per
/// run, cut off in flight at its end.
fn expected_range(row: &Row, load: &Load) -> (u64, u64) {
    let sent = row.sent();
    match load.tool {
        Tool::Builtin => (sent, sent),
        Tool::Wrk => (sent, sent + row.runs * load.connections as u64),
    }
}

/// The sum of `istio_requests_total` on `envoy`; with `want`, after waiting (until
/// `deadline`) for it to get into that range.
fn istio_requests(
    envoy: &Envoy,
    want: Option<(u64, u64)>,
    deadline: Instant,
) -> Result<u64, String> {
    let Some((low, high)) = want else {
        return Ok(envoy.prometheus()?.sum("istio_requests_total", &[]) as u64);
    };
    let mut last = 0;
    let wait = deadline.saturating_duration_since(Instant::now());
    let got = envoy.wait_for(wait, |s| {
        last = s.sum("istio_requests_total", &[]) as u64;
        (low..=high).contains(&last).then_some(last)
    });
    Ok(got.unwrap_or(last))
}

/// Lines in `file`, after waiting (until `deadline`) for at least `low`.
fn log_lines(file: &std::path::Path, low: u64, deadline: Instant) -> Result<u64, String> {
    loop {
        let n = match std::fs::read(file) {
            Ok(b) => b.iter().filter(|&&c| c == b'\n').count() as u64,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(format!("{}: {e}", file.display())),
        };
        if n >= low || Instant::now() > deadline {
            return Ok(n);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn load_average() -> Vec<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .filter_map(|v| v.parse().ok())
        .collect()
}

fn envoy_version() -> String {
    std::process::Command::new(envoy_bin())
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.split('/')
                .find(|p| {
                    p.split('.').count() == 3 && p.split('.').all(|n| n.parse::<u32>().is_ok())
                })
                .map(str::to_string)
        })
        .unwrap_or_else(|| "unknown".into())
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0)
}

fn run(args: &Args, artifacts: &Artifacts) -> Result<Vec<String>, String> {
    let started = Instant::now();
    let load_start = load_average();
    let tool = match args.tool {
        Some(t) => t,
        None if wrk::available() => Tool::Wrk,
        None => Tool::Builtin,
    };
    if tool == Tool::Wrk && !wrk::available() {
        return Err("--load wrk: wrk is not installed (scripts/setup-bench.sh, as root)".into());
    }
    if let Some(dir) = &artifacts.log_dir {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let version = envoy_version();
    eprintln!(
        "bench: envoy {} ({version}), {} cores, load average {:?}",
        envoy_bin().display(),
        cores(),
        load_start
    );
    let backend = Backend::start();
    let mut results = Vec::new();
    for &mode in &args.modes {
        results.push(run_mode(mode, args, tool, artifacts, &backend)?);
    }
    let new_series = if args.new_series > 0 {
        Some(new_series(args, &backend)?)
    } else {
        None
    };
    let load_end = load_average();

    let mut out = String::new();
    let mut modes_json = Map::new();
    let mut problems = Vec::new();
    for m in &results {
        out += &table(args, m);
        let budgets = budgets(m);
        for b in &budgets {
            out += &format!("{}\n", b.line);
        }
        out += "\n";
        modes_json.insert(m.mode.name().into(), mode_json(m, &budgets));
        problems.extend(m.problems.iter().cloned());
    }
    out += "setups:\n";
    for s in &args.setups {
        out += &format!("  {:<16} {}\n", s.name, s.what);
    }
    out += &format!(
        "load average: {} at the start, {} at the end\n",
        fmt_load(&load_start),
        fmt_load(&load_end)
    );
    if let Some(n) = &new_series {
        out += &format!(
            "new series (Wasm, one outbound sidecar, {} requests of each kind one at a time): \
             Envoy CPU per request {:.1} µs cached, {:.1} µs never-seen, ratio {:.2}\n",
            n.requests,
            n.cached_us,
            n.new_us,
            ratio(n.new_us, n.cached_us)
        );
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
    let report = json!({
        "config": {
            "rounds": args.rounds,
            "duration_secs": args.duration.as_secs_f64(),
            "warmup_secs": args.warmup.as_secs_f64(),
            "load": match tool { Tool::Wrk => "wrk", Tool::Builtin => "builtin" },
            "modes": args.modes.iter().map(|m| m.name()).collect::<Vec<_>>(),
            "envoy_concurrency": 1,
            "cores": cores(),
            "envoy": envoy_bin().display().to_string(),
            "envoy_version": version,
            "wasm": wasm_path().display().to_string(),
            "empty_wasm": artifacts.empty_wasm.display().to_string(),
            "native": artifacts.native.display().to_string(),
        },
        "load_average": { "start": load_start, "end": load_end },
        "modes": modes_json,
        "new_series": new_series.as_ref().map(|n| json!({
            "requests_each": n.requests,
            "cached_cpu_us_per_request": n.cached_us,
            "new_cpu_us_per_request": n.new_us,
            "ratio": ratio(n.new_us, n.cached_us),
            "series": n.series,
            "counted": n.counted,
        })),
        "problems": problems,
        "elapsed_secs": started.elapsed().as_secs_f64(),
    });
    if args.json {
        eprint!("{out}");
        println!("{report}");
    } else {
        print!("{out}");
    }
    Ok(problems)
}

fn fmt_load(l: &[f64]) -> String {
    l.iter()
        .map(|x| format!("{x:.2}"))
        .collect::<Vec<_>>()
        .join(" ")
}

struct Budget {
    setup: &'static str,
    reference: &'static str,
    min: f64,
    ratio: f64,
    status: &'static str,
    line: String,
}

fn budgets(m: &ModeResult) -> Vec<Budget> {
    let rate = |name: &str| -> Result<f64, String> {
        match m.rows.iter().find(|r| r.spec.name == name) {
            None => Err(format!("{name} not selected")),
            Some(r) => match &r.running {
                Ok(_) => Ok(r.medians()[0]),
                Err(e) if e.starts_with("not built") => Err(format!("{name} not built")),
                Err(_) => Err(format!("{name} failed")),
            },
        }
    };
    BUDGETS
        .iter()
        .map(|&(setup, reference, min)| {
            let (ratio, status, detail) = match (rate(setup), rate(reference)) {
                (Ok(a), Ok(b)) => {
                    let r = ratio(a, b);
                    let status = if r >= min { "pass" } else { "miss" };
                    (r, status, format!("{r:.3} {status}"))
                }
                (Err(e), _) | (_, Err(e)) => {
                    (f64::NAN, "not measured", format!("not measured ({e})"))
                }
            };
            Budget {
                setup,
                reference,
                min,
                ratio,
                status,
                line: format!(
                    "budget ({}): {setup} >= {min:.2} x {reference} throughput: {detail}",
                    m.mode.name()
                ),
            }
        })
        .collect()
}

fn table(args: &Args, m: &ModeResult) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let what = match m.mode {
        Mode::OneEnvoy => "1 Envoy, INBOUND listener with a direct response",
        Mode::TwoSidecars => "client + server sidecar in front of a backend (CPU and RSS summed)",
    };
    let mut out = format!(
        "{}: {what}; --concurrency 1; {}; {} interleaved rounds x {} s, {} s warm-up; medians of rounds, ratios of medians\n",
        m.mode.name(),
        m.load,
        args.rounds,
        args.duration.as_secs_f64(),
        args.warmup.as_secs_f64(),
    );
    out += &format!(
        "{:<16} {:>10} {:>7} {:>11} {:>7} {:>8} {:>8} {:>9}\n",
        "setup", "req/s", "x bare", "CPU µs/req", "x bare", "p50 µs", "p99 µs", "RSS MiB"
    );
    let bare = m
        .rows
        .iter()
        .find(|r| r.spec.name == "bare" && r.running.is_ok())
        .map(Row::medians);
    for row in &m.rows {
        match &row.running {
            Ok(_) => {
                let [rate, cpu, p50, p99, rss] = row.medians();
                let (rb, cb) = bare.map_or((f64::NAN, f64::NAN), |b| {
                    (ratio(rate, b[0]), ratio(cpu, b[1]))
                });
                out += &format!(
                    "{:<16} {rate:>10.1} {rb:>7.3} {cpu:>11.1} {cb:>7.3} {p50:>8.0} {p99:>8.0} {:>9.1}\n",
                    row.spec.name,
                    rss / MIB
                );
            }
            Err(e) => {
                let short = if e.starts_with("not built") {
                    "not built"
                } else {
                    "failed"
                };
                out += &format!("{:<16} {short}\n", row.spec.name);
            }
        }
    }
    out
}

fn mode_json(m: &ModeResult, budgets: &[Budget]) -> Value {
    let bare = m
        .rows
        .iter()
        .find(|r| r.spec.name == "bare" && r.running.is_ok())
        .map(Row::medians);
    let mut setups = Map::new();
    for row in &m.rows {
        let v = match &row.running {
            Err(e) => json!({
                "status": if e.starts_with("not built") { "not built" } else { "failed" },
                "reason": e,
                "what": row.spec.what,
            }),
            Ok(running) => {
                let [rate, cpu, p50, p99, rss] = row.medians();
                json!({
                    "status": "ok",
                    "what": row.spec.what,
                    "envoys": running.envoys.len(),
                    "requests": row.samples.iter().map(|s| s.requests).sum::<u64>(),
                    "warmup_requests": row.warmup_requests,
                    "failures": row.failures,
                    "requests_per_sec": rate,
                    "cpu_us_per_request": cpu,
                    "latency_us": { "p50": p50, "p99": p99 },
                    "peak_rss_bytes": rss,
                    "vs_bare": bare.map(|b| json!({
                        "throughput": ratio(rate, b[0]),
                        "cpu_per_request": ratio(cpu, b[1]),
                    })),
                    "rounds": row.samples.iter().map(|s| json!({
                        "requests": s.requests,
                        "requests_per_sec": s.rate,
                        "cpu_us_per_request": s.cpu_us_per_request,
                        "latency_us": { "p50": s.p50_us, "p99": s.p99_us },
                        "peak_rss_bytes": s.peak_rss_bytes,
                    })).collect::<Vec<_>>(),
                })
            }
        };
        setups.insert(row.spec.name.into(), v);
    }
    json!({
        "load": m.load,
        "connections": m.connections,
        "setups": setups,
        "checks": m.checks,
        "budgets": budgets.iter().map(|b| json!({
            "setup": b.setup, "reference": b.reference, "min": b.min,
            "ratio": if b.ratio.is_nan() { Value::Null } else { json!(b.ratio) },
            "status": b.status,
        })).collect::<Vec<_>>(),
    })
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
    let counted = istio_requests(&envoy, Some((sent, sent)), Instant::now() + COUNT_WAIT)?;
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
