//! `make run`: bookinfo on loopback (an ingress gateway and eleven sidecars running
//! meshstats, tiny apps, a gRPC and an mTLS TCP edge), scraped by a real Prometheus; then
//! the per-edge table and the service graph (SVG), every number a PromQL query, and a few
//! JSON access-log lines. The mesh and the queries are `meshstats_integration::demo`'s,
//! shared with `tests/demo_mesh.rs`; docs/demo.md explains them.
//!
//! Usage: `meshstats-demo [--seconds N] [--rate R] [--svg PATH] [--verbose] [--keep]
//! [--build wasm|native]`. Uses `ENVOY_BIN`, `MESHSTATS_WASM`, `MESHSTATS_NATIVE`,
//! `PROMETHEUS_BIN` and `DOT_BIN` like the tests.

use meshstats_integration::demo::{table, Demo};
use meshstats_integration::{build, envoy_bin, native_module_path, wasm_path, Build};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: meshstats-demo [--seconds N] [--rate R] [--svg PATH] [--verbose] [--keep] [--build wasm|native]\n  \
    --seconds N   seconds of traffic (default 30)\n  \
    --rate R      requests a second through the gateway (default 10)\n  \
    --svg PATH    where to write the service graph (default target/demo/mesh-graph.svg)\n  \
    --verbose     print every PromQL query\n  \
    --keep        keep the mesh and Prometheus up until Ctrl-C\n  \
    --build B     wasm (dist/meshstats.wasm, the default) or native (dist/libmeshstats.so)";

struct Args {
    seconds: u64,
    rate: u32,
    svg: PathBuf,
    verbose: bool,
    keep: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        seconds: 30,
        rate: 10,
        svg: meshstats_integration::workspace_root().join("target/demo/mesh-graph.svg"),
        verbose: false,
        keep: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (a.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or(format!("{name} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--keep" => args.keep = true,
            "-v" | "--verbose" => args.verbose = true,
            "--build" => {
                let v = value("--build")?;
                if v != "wasm" && v != "native" {
                    return Err(format!("--build: expected wasm or native, got {v}"));
                }
                // Before any sidecar exists: the harness reads the build from here.
                std::env::set_var("MESHSTATS_BUILD", v);
            }
            "--seconds" => {
                let v = value("--seconds")?;
                args.seconds = v
                    .parse()
                    .ok()
                    .filter(|s| (1..=600).contains(s))
                    .ok_or(format!("--seconds: 1 to 600, got {v}"))?;
            }
            "--rate" => {
                let v = value("--rate")?;
                args.rate = v
                    .parse()
                    .ok()
                    .filter(|r| (1..=100).contains(r))
                    .ok_or(format!("--rate: 1 to 100, got {v}"))?;
            }
            "--svg" => args.svg = PathBuf::from(value("--svg")?),
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
    let mut demo = Demo::start()?;
    eprintln!(
        "demo: {} Envoys up, Prometheus http://{} scraping each every second ({:.1} s)",
        demo.mesh.proxies.len(),
        demo.prometheus.addr(),
        started.elapsed().as_secs_f64()
    );
    let sent = demo.traffic(Duration::from_secs(args.seconds), args.rate);
    if let Some(dir) = args.svg.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let report = demo.report(&args.svg, args.verbose)?;

    println!(
        "\nPer edge over the last {} s (reporter=source; PromQL against Prometheus; --verbose shows the queries):",
        report.window_secs
    );
    print!("{}", table::render(&report.rows));
    println!(
        "\nService graph (Kiali's queries, drawn by Graphviz): {}",
        report.svg.display()
    );
    println!("\nratings-v1's inbound sidecar, its last JSON access-log lines (stdout):");
    for line in demo.log_lines("ratings-v1-inbound", 3) {
        println!("  {line}");
    }
    println!(
        "\n{} requests through the gateway, {} not 200; ratings-v1 answered {} (every 20th of each caller a 503); {:.1} s",
        sent.requests,
        sent.failed,
        demo.mesh.ratings.requests(),
        started.elapsed().as_secs_f64()
    );
    if args.keep {
        keep(&demo)?;
    }
    if sent.failed > 0 {
        return Err(format!(
            "{} requests through the gateway failed",
            sent.failed
        ));
    }
    Ok(())
}

/// Prints where everything is and waits for Ctrl-C; the mesh stops when `demo` drops.
fn keep(demo: &Demo) -> Result<(), String> {
    println!("\nKept running (Ctrl-C stops everything):");
    println!("  prometheus      http://{}/graph", demo.prometheus.addr());
    println!("  gateway         http://{}/productpage", demo.mesh.entry);
    for p in &demo.mesh.proxies {
        println!(
            "  {:<36} admin http://{}/stats/prometheus  listener {}",
            p.job,
            p.envoy.admin(),
            p.listen
        );
    }
    let (tx, rx) = std::sync::mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })
    .map_err(|e| format!("cannot handle Ctrl-C: {e}"))?;
    let _ = rx.recv();
    eprintln!("\ndemo: stopping");
    Ok(())
}
