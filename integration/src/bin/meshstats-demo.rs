//! `make run`: productpage-v1 calls ratings-v1 through two sidecars running meshstats, then
//! the `istio_*` series both sidecars report are printed as a table.
//!
//! ```text
//! client --> [productpage-v1 sidecar, outbound] --> [ratings-v1 sidecar, inbound] --> backend
//! ```
//!
//! Usage: `meshstats-demo [--requests N] [--keep] [--build wasm|native]`. `--keep` leaves
//! both Envoys running (admin URLs printed) until Ctrl-C. `--build` sets `MESHSTATS_BUILD`,
//! so the sidecars are the harness's for that build. Uses `ENVOY_BIN`, `MESHSTATS_WASM` and
//! `MESHSTATS_NATIVE` like the tests.

use meshstats_integration::mesh::Bookinfo;
use meshstats_integration::{
    build, envoy_bin, http_get, native_module_path, wasm_path, workspace_root, Backend, Build,
    Envoy, Kind, Scrape,
};
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The whole run (start-up, traffic, scrapes) must finish within this.
const DEADLINE: Duration = Duration::from_secs(60);

const USAGE: &str = "usage: meshstats-demo [--requests N] [--keep] [--build wasm|native]\n  \
    --requests N  requests to send (default 50)\n  \
    --keep        keep both Envoys running until Ctrl-C\n  \
    --build B     wasm (dist/meshstats.wasm, the default) or native (dist/libmeshstats.so)";

struct Args {
    requests: u32,
    keep: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        requests: 50,
        keep: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--keep" => args.keep = true,
            "--build" | "--build=wasm" | "--build=native" => {
                let v = match a.split_once('=') {
                    Some((_, v)) => v.to_string(),
                    None => it.next().ok_or("--build needs wasm or native")?,
                };
                if v != "wasm" && v != "native" {
                    return Err(format!("--build: expected wasm or native, got {v}"));
                }
                // Before any sidecar exists: the harness reads the build from here.
                std::env::set_var("MESHSTATS_BUILD", v);
            }
            "-n" | "--requests" => {
                let v = it.next().ok_or("--requests needs a number")?;
                args.requests = v
                    .parse()
                    .map_err(|_| format!("--requests: not a number: {v}"))?;
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

fn main() -> ExitCode {
    match parse_args().and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let started = Instant::now();
    let filter = match build() {
        Build::Wasm => wasm_path(),
        Build::Native => native_module_path(),
    };
    eprintln!(
        "demo: envoy {}, {} filter {}",
        envoy_bin().display(),
        build().as_str(),
        filter.display()
    );
    let backend = Backend::start();
    // The server sidecar also writes the Istio 1.0 task's `newlog` entry for each request.
    let log_config =
        std::fs::read_to_string(workspace_root().join("envoyfilter/examples/new-log.json"))
            .map_err(|e| format!("envoyfilter/examples/new-log.json: {e}"))?;
    let mesh = Bookinfo::start(backend.addr(), "{}", &log_config)?;
    let (client, server, entry) = (&mesh.client, &mesh.server, mesh.entry);
    eprintln!(
        "demo: ratings-v1 sidecar (inbound) on {}, admin {}",
        mesh.server_listen,
        server.admin()
    );
    eprintln!(
        "demo: productpage-v1 sidecar (outbound) on {entry}, admin {}",
        client.admin()
    );

    let mut failures = 0;
    for i in 1..=args.requests {
        if started.elapsed() > DEADLINE {
            return Err(format!(
                "gave up after {}s ({i} requests sent)",
                DEADLINE.as_secs()
            ));
        }
        // Every tenth call the app answers 503, so the table shows an error series too.
        let (headers, expect): (&[(&str, &str)], u16) = if i % 10 == 0 {
            (&[("x-backend-status", "503")], 503)
        } else {
            (&[], 200)
        };
        match http_get(entry, &format!("/ratings/{i}"), headers) {
            Ok(r) if r.status == expect => {}
            Ok(r) => {
                failures += 1;
                eprintln!("\ndemo: request {i}: {} {}", r.status, r.body.trim());
            }
            Err(e) => {
                failures += 1;
                eprintln!("\ndemo: request {i}: {e}");
            }
        }
        progress(i, args.requests);
    }
    eprintln!();

    // Counters are recorded as each stream ends, histograms reach the admin page at the
    // next stats flush (every 5 s by default): wait until both show every request.
    let want = f64::from(args.requests);
    let complete = |s: &Scrape| {
        s.sum("istio_requests_total", &[]) >= want
            && s.sum("istio_request_duration_milliseconds_count", &[]) >= want
    };
    let remaining = DEADLINE
        .saturating_sub(started.elapsed())
        .min(Duration::from_secs(12));
    let mut incomplete = Vec::new();
    let mut rows = Vec::new();
    for (name, envoy) in [("client", client), ("server", server)] {
        let scrape = match envoy.wait_for(remaining, |s| complete(s).then(|| s.clone())) {
            Ok(s) => s,
            Err(_) => {
                incomplete.push(name);
                envoy.prometheus()?
            }
        };
        rows.extend(istio_rows(name, &scrape));
    }
    print_table(&rows);
    print_log_lines(server);
    println!(
        "{} requests, {} failed; backend answered {}; {:.1}s",
        args.requests,
        failures,
        backend.request_count(),
        started.elapsed().as_secs_f64()
    );

    if args.keep {
        keep(
            &[
                ("productpage-v1 (client)", client),
                ("ratings-v1 (server)", server),
            ],
            entry,
        )?;
    }
    if !incomplete.is_empty() {
        return Err(format!(
            "istio_requests_total / istio_request_duration_milliseconds did not reach {} on: {}",
            args.requests,
            incomplete.join(", ")
        ));
    }
    if failures > 0 {
        return Err(format!("{failures} requests failed"));
    }
    Ok(())
}

fn progress(done: u32, total: u32) {
    const WIDTH: u32 = 40;
    let filled = (done * WIDTH).checked_div(total).unwrap_or(WIDTH);
    // Redraw only when the bar moves, so a log of it (no terminal) stays short.
    let before = (done.saturating_sub(1) * WIDTH)
        .checked_div(total)
        .unwrap_or(WIDTH);
    if filled == before && done != total && done != 1 {
        return;
    }
    let bar: String = (0..WIDTH)
        .map(|i| if i < filled { '#' } else { '.' })
        .collect();
    let mut err = std::io::stderr();
    let _ = write!(err, "\rdemo: [{bar}] {done}/{total}");
    let _ = err.flush();
}

const COLUMNS: [&str; 8] = [
    "sidecar",
    "metric",
    "reporter",
    "source_workload",
    "destination_workload",
    "destination_service",
    "response_code",
    "value",
];

fn istio_rows(sidecar: &str, scrape: &Scrape) -> Vec<[String; 8]> {
    let mut rows = Vec::new();
    for name in scrape
        .names()
        .into_iter()
        .filter(|n| n.starts_with("istio_"))
    {
        let (shown, what) = match scrape.kind(name) {
            Some(Kind::Histogram | Kind::Summary) => (format!("{name}_count"), "count"),
            _ => (name.to_string(), "value"),
        };
        for s in scrape.series(name) {
            let value = match (&s.histogram, what) {
                (Some(h), "count") => format!("{} (sum {:.1})", h.count, h.sum),
                _ => s.value.to_string(),
            };
            rows.push([
                sidecar.to_string(),
                shown.clone(),
                s.label("reporter").to_string(),
                s.label("source_workload").to_string(),
                s.label("destination_workload").to_string(),
                s.label("destination_service").to_string(),
                s.label("response_code").to_string(),
                value,
            ]);
        }
    }
    rows
}

/// A few of the JSON lines the server sidecar wrote on its stdout (flushed every 100 ms).
fn print_log_lines(server: &Envoy) {
    std::thread::sleep(Duration::from_millis(300));
    let stdout = String::from_utf8_lossy(&server.stdout()).into_owned();
    let lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with('{')).collect();
    println!(
        "\nratings-v1 sidecar stdout: {} JSON log lines (newlog entry), the last 3:",
        lines.len()
    );
    for line in lines.iter().rev().take(3).rev() {
        println!("  {line}");
    }
}

fn print_table(rows: &[[String; 8]]) {
    if rows.is_empty() {
        println!("(no istio_* series)");
        return;
    }
    let mut widths = COLUMNS.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(COLUMNS.to_vec());
    line(
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect(),
    );
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

fn keep(envoys: &[(&str, &Envoy)], entry: SocketAddr) -> Result<(), String> {
    let (tx, rx) = std::sync::mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })
    .map_err(|e| format!("cannot handle Ctrl-C: {e}"))?;
    for (name, envoy) in envoys {
        println!(
            "{name}: admin http://{}/  (stats: http://{}/stats/prometheus)",
            envoy.admin(),
            envoy.admin()
        );
    }
    println!("send traffic to http://{entry}/ ; Ctrl-C stops both Envoys");
    let _ = rx.recv();
    Ok(())
}
