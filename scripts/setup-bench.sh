#!/usr/bin/env bash
# What `make bench` needs beyond `make setup`: wrk (Debian package), the one-thread epoll load
# generator the benchmark prefers. Installed only as root; otherwise the benchmark says so and
# uses the in-repo load generator (integration/src/load.rs). `make test` never needs wrk.
set -euo pipefail

step() { printf 'setup-bench: %s\n' "$*"; }

if command -v wrk >/dev/null; then
  step "wrk: already installed ($(command -v wrk))"
elif [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  step "wrk: installing (apt-get install wrk)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null || true
  command -v wrk >/dev/null && step "wrk: installed ($(command -v wrk))" \
    || step "wrk: not available; the benchmark uses the in-repo load generator"
else
  step "wrk: not installed (as root: apt-get install -y wrk); the benchmark uses the in-repo load generator"
fi
