//! The bounded run in `make test`: each target on `MESHSTATS_FUZZ_CASES` random inputs
//! (default 1000) from proptest, then on every input saved under `corpus/<target>/`
//! (regressions found by fuzzing, and seeds). `make fuzz` runs the same targets unbounded.

use meshstats_fuzz::TARGETS;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::path::Path;

fn cases() -> u32 {
    std::env::var("MESHSTATS_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

fn target(name: &str) -> fn(&[u8]) {
    TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no target {name}"))
}

fn random(name: &str) {
    let f = target(name);
    let config = Config {
        cases: cases(),
        // Failures are saved as corpus files by hand (see docs/fuzzing.md), not here.
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&proptest::collection::vec(any::<u8>(), 0..2048), |data| {
        f(&data);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
}

fn saved(name: &str) {
    let f = target(name);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(name);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut n = 0;
    for entry in entries.flatten() {
        let data = std::fs::read(entry.path()).unwrap_or_default();
        let path = entry.path();
        let result = std::panic::catch_unwind(|| f(&data));
        assert!(
            result.is_ok(),
            "{name}: saved input {} fails",
            path.display()
        );
        n += 1;
    }
    eprintln!("{name}: {n} saved inputs pass");
}

macro_rules! targets {
    ($($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                saved(stringify!($name));
                random(stringify!($name));
            }
        )*
    };
}

targets!(config, expr, peer, stat_name, json_log);
