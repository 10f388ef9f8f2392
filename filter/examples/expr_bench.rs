//! Micro-benchmark of expression evaluation, needing no external tool:
//!
//! ```text
//! cargo run --release -p meshstats-filter --example expr_bench [-- ITERATIONS]
//! ```
//!
//! Compiles a typical set of user-defined dimensions, evaluates it over filled slots the way
//! the filter does per request (each result written into one reused `String`), and prints the
//! time per evaluation of the set and of each expression, and the heap allocations per
//! evaluation, counted by a global allocator.
// A counting allocator is an `unsafe impl GlobalAlloc`; it only forwards to `System`.
#![allow(unsafe_code)]

use meshstats_filter::expr::{chain_to_string, compile, Attr, Program, Resolver, Seg, Type};
use std::alloc::{GlobalAlloc, Layout, System};
use std::error::Error;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const DIMENSIONS: [&str; 6] = [
    r#"request.headers['x-user'] | "anonymous""#,
    r#"conditional((context.reporter.kind | "inbound") == "outbound", "client", "server")"#,
    r#"match(request.useragent | "-", "kube-probe*")"#,
    "response.code >= 500",
    "request.host",
    r#"source.workload.name | "unknown""#,
];

/// What a request carries; `source.workload.name` is absent, so its default is taken.
const ATTRIBUTES: [(&str, Type); 7] = [
    ("request.headers['x-user']", Type::String),
    ("context.reporter.kind", Type::String),
    ("request.useragent", Type::String),
    ("response.code", Type::Int),
    ("request.host", Type::String),
    ("source.workload.name", Type::String),
    ("request.path", Type::String),
];

struct Names;

impl Resolver for Names {
    fn resolve(&mut self, chain: &[Seg<'_>]) -> Result<(usize, Type), String> {
        let name = chain_to_string(chain);
        ATTRIBUTES
            .iter()
            .position(|(n, _)| *n == name)
            .and_then(|slot| Some((slot, ATTRIBUTES.get(slot)?.1)))
            .ok_or_else(|| format!("unknown attribute `{name}`"))
    }
}

fn fill() -> Vec<Option<Attr>> {
    let s = |v: &str| Some(Attr::Str(v.to_string()));
    vec![
        s("alice"),
        s("outbound"),
        s("kube-probe/1.27"),
        Some(Attr::Int(503)),
        s("reviews.default.svc.cluster.local"),
        None,
        s("/api/v1/reviews"),
    ]
}

/// Evaluates `programs` `iterations` times; returns (ns per iteration, allocations per iteration).
fn measure(programs: &[&Program], slots: &[Option<Attr>], iterations: u32) -> (f64, f64) {
    let mut out = String::with_capacity(256);
    let allocations = ALLOCATIONS.load(Relaxed);
    let start = Instant::now();
    for _ in 0..iterations {
        for program in programs {
            out.clear();
            match black_box(program).eval(black_box(slots)) {
                Ok(value) => value.write_to(&mut out),
                Err(e) => out.push_str(if matches!(e, meshstats_filter::expr::EvalError::Absent) {
                    "absent"
                } else {
                    "error"
                }),
            }
            black_box(&out);
        }
    }
    let elapsed = start.elapsed().as_nanos() as f64;
    let allocated = (ALLOCATIONS.load(Relaxed) - allocations) as f64;
    let n = f64::from(iterations.max(1));
    (elapsed / n, allocated / n)
}

fn main() -> Result<(), Box<dyn Error>> {
    let iterations: u32 = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => 1_000_000,
    };
    let mut programs = Vec::new();
    for source in DIMENSIONS {
        programs.push(compile(source, Some(Type::String), &mut Names)?);
    }
    let slots = fill();
    let all: Vec<&Program> = programs.iter().collect();
    measure(&all, &slots, iterations / 10 + 1); // warm-up
    let (ns, allocations) = measure(&all, &slots, iterations);
    println!(
        "{} expressions, {iterations} iterations: {ns:.1} ns per evaluation of the set, \
         {allocations:.3} allocations per evaluation",
        DIMENSIONS.len()
    );
    for (program, source) in programs.iter().zip(DIMENSIONS) {
        let (ns, allocations) = measure(&[program], &slots, iterations);
        let mut value = String::new();
        if let Ok(v) = program.eval(&slots) {
            v.write_to(&mut value);
        }
        println!("{ns:8.1} ns {allocations:6.3} allocs  {source}  => {value:?}");
    }
    Ok(())
}
