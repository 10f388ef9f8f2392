#!/usr/bin/env bash
# `make fuzz`: every meshstats-fuzz target under libFuzzer (cargo-fuzz, nightly), coverage
# guided, FUZZ_SECONDS each (default 120: 10 minutes for the five targets). Without a nightly
# toolchain, or when cargo-fuzz cannot be installed, the same targets run instead under the
# stable proptest driver with FUZZ_CASES random inputs each (default 200000, release build).
#
#   FUZZ_SECONDS=600 make fuzz            longer
#   FUZZ_TARGETS="config expr" make fuzz  some targets
#   FUZZ_JOBS=2 make fuzz                 libFuzzer workers per target (default 1)
#
# Inputs libFuzzer finds interesting stay in fuzz/libfuzzer/corpus/<target> (ignored by git)
# for the next run; a failing input is written to fuzz/libfuzzer/artifacts/<target>/ and the
# script fails. docs/fuzzing.md says how to turn one into a regression test.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_EACH="${FUZZ_SECONDS:-120}"
CASES="${FUZZ_CASES:-200000}"
JOBS="${FUZZ_JOBS:-1}"
TARGETS="${FUZZ_TARGETS:-config expr peer stat_name json_log}"
FUZZ_DIR="$ROOT/fuzz/libfuzzer"

step() { printf 'fuzz: %s\n' "$*"; }

have_libfuzzer() {
  rustup toolchain list 2>/dev/null | grep -q '^nightly' || return 1
  if ! cargo fuzz --version >/dev/null 2>&1; then
    step "installing cargo-fuzz (cargo install cargo-fuzz --locked; a few minutes, once)"
    cargo install cargo-fuzz --locked >/dev/null 2>&1 || return 1
  fi
}

cd "$ROOT"
if have_libfuzzer; then
  for t in $TARGETS; do
    mkdir -p "$FUZZ_DIR/corpus/$t"
    step "$t: libFuzzer for ${SECONDS_EACH}s"
    log="$FUZZ_DIR/$t.log"
    # -rss_limit_mb: an input that makes the filter allocate without bound is a finding.
    # -len_control=0: the targets read structure from their bytes, so long inputs from the
    # start (libFuzzer otherwise spends minutes on inputs of a few dozen bytes).
    rc=0
    cargo +nightly fuzz run --fuzz-dir "$FUZZ_DIR" --jobs "$JOBS" "$t" "$FUZZ_DIR/corpus/$t" -- \
      -max_total_time="$SECONDS_EACH" -max_len=4096 -len_control=0 -rss_limit_mb=2048 -timeout=10 \
      -print_final_stats=1 >"$log" 2>&1 || rc=$?
    grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
    if [ "$rc" -ne 0 ]; then
      grep -E 'panicked|SUMMARY|ERROR|Test unit written|^Done' "$log" | head -n 20 || true
      step "$t: FAILED (exit $rc), full output in $log, input in $FUZZ_DIR/artifacts/$t/"
      exit 1
    fi
  done
else
  step "no nightly toolchain or cargo-fuzz: stable proptest driver, $CASES cases per target"
  for t in $TARGETS; do
    MESHSTATS_FUZZ_CASES="$CASES" cargo test --release -p meshstats-fuzz --test bounded -- --exact "$t"
  done
fi
step "done"
