# meshstats: build, test and demo. `make test` is what CI runs (.ci/run).
#
#   make setup   install the wasm32-wasip1 target and Envoy $(ENVOY_VERSION) (in .venv)
#   make build   dist/meshstats.wasm (the filter), dist/libmeshstats.so (the same filter as an Envoy
#                dynamic module, docs/native.md) and dist/meshstats (the CLI)
#   make test    unit tests, rustfmt check, clippy (host and wasm), envoy --mode validate on every Envoy
#                config, then the tests against real Envoy processes (once per build: wasm, native)
#   make run     the demo (docs/demo.md): bookinfo with an ingress gateway, 13 Envoys, a real
#                Prometheus; ends with a per-edge PromQL table, the service graph as SVG and
#                JSON log lines (ARGS=--keep, ARGS="--build native", ARGS=--verbose, ...)
#   make demo-graph  a demo run that rewrites docs/demo-graph.svg, the README's picture
#   make bench   bare Envoy, the Wasm floor, meshstats Wasm and native side by side (ARGS=--json, ...)
#   make bench-expr  per-request cost of evaluating a typical set of dimension expressions
#   make soak    1,000,000 requests (keep-alive and new connections) through two sidecars: every
#                one counted and logged exactly once on each side (ARGS=--requests N, ...)
#   make compat  every real-Envoy test against every Envoy in ENVOY_COMPAT_VERSIONS (the native
#                build on the releases it is built for: 1.40.0)
#   make fuzz    the fuzz targets (meshstats-fuzz) under libFuzzer, FUZZ_SECONDS each (default
#                120: 10 minutes); stable proptest with FUZZ_CASES each without nightly
#                (docs/fuzzing.md). `make test` runs them bounded: 1000 cases each, in `unit`.
#   make manifests  re-render the Istio examples in envoyfilter/examples/istio/ (checked in;
#                `make test` fails when they differ from what the CLI renders)
#   make clean   remove build outputs (distclean also removes .venv)

ENVOY_VERSION ?= 1.40.0
CARGO ?= cargo
WASM_TARGET := wasm32-wasip1
# Tests against Envoy run this many at a time: each Envoy has one worker thread, and the
# machines have 2 cores.
ENVOY_TEST_THREADS ?= 2
ARGS ?=

ENVOY_BIN := $(CURDIR)/.venv/bin/envoy
MESHSTATS_WASM := $(CURDIR)/dist/meshstats.wasm
MESHSTATS_BIN := $(CURDIR)/dist/meshstats
MESHSTATS_NATIVE ?= $(CURDIR)/dist/libmeshstats.so
# The Wasm floor of `make bench` (fixtures/empty-wasm): a filter that does nothing.
EMPTY_WASM := $(CURDIR)/dist/empty-filter.wasm
ARTIFACTS := ENVOY_BIN=$(ENVOY_BIN) MESHSTATS_WASM=$(MESHSTATS_WASM) MESHSTATS_BIN=$(MESHSTATS_BIN) MESHSTATS_NATIVE=$(MESHSTATS_NATIVE) MESHSTATS_EMPTY_WASM=$(EMPTY_WASM)
# The builds `make integration` runs the real-Envoy suite against, one after the other.
MESHSTATS_BUILDS ?= wasm native

.PHONY: setup build test unit lint validate-configs check-manifests manifests integration run demo-graph bench bench-expr soak compat fuzz clean distclean

setup:
	@ENVOY_VERSION=$(ENVOY_VERSION) bash scripts/setup.sh

build: setup
	$(CARGO) build --release -p meshstats-wasm --target $(WASM_TARGET)
	$(CARGO) build --release -p meshstats-cli
	$(CARGO) build --release -p meshstats-native
	$(CARGO) build --release -p meshstats-empty-wasm --target $(WASM_TARGET)
	@mkdir -p dist
	cp target/$(WASM_TARGET)/release/meshstats_wasm.wasm $(MESHSTATS_WASM)
	cp target/$(WASM_TARGET)/release/meshstats_empty_wasm.wasm $(EMPTY_WASM)
	cp target/release/libmeshstats.so $(MESHSTATS_NATIVE)
	cp target/release/meshstats $(MESHSTATS_BIN)

# Each step needs the previous ones only for ordering: `make -k test` runs them all.
test: build
	@$(MAKE) --no-print-directory unit lint validate-configs check-manifests integration

# Host tests of every crate but the one that drives real Envoys (the CLI's own tests still
# use Envoy for `--mode validate`, hence the variables). This includes meshstats-fuzz's
# bounded run (MESHSTATS_FUZZ_CASES, default 1000 per target, ~20 s).
unit:
	$(ARTIFACTS) $(CARGO) test --workspace --exclude meshstats-integration

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p meshstats-wasm --target $(WASM_TARGET) -- -D warnings

validate-configs:
	$(ARTIFACTS) bash scripts/validate-envoy-configs.sh

# The checked-in Istio examples must be what the CLI renders now: re-render them and fail
# on any difference (a new, untracked file included). Outside a git checkout: render only.
manifests:
	$(CARGO) build --release -p meshstats-cli
	@mkdir -p dist
	cp target/release/meshstats $(MESHSTATS_BIN)
	MESHSTATS_BIN=$(MESHSTATS_BIN) bash scripts/render-istio-examples.sh

check-manifests: manifests
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	  untracked="$$(git ls-files --others --exclude-standard -- envoyfilter/examples/istio)"; \
	  if ! git diff --exit-code --stat -- envoyfilter/examples/istio || [ -n "$$untracked" ]; then \
	    [ -z "$$untracked" ] || printf 'untracked: %s\n' $$untracked; \
	    echo "check-manifests: envoyfilter/examples/istio differs from what meshstats renders: run \`make manifests\` and commit the result" >&2; \
	    exit 1; \
	  fi; \
	  echo "check-manifests: envoyfilter/examples/istio is up to date"; \
	else \
	  echo "check-manifests: not a git checkout, rendered only"; \
	fi

# `--tests`: the crate has no doc tests, and this keeps cargo's last summary line a real one.
# Once per build (MESHSTATS_BUILD, read by the harness): every scenario against both; a test
# about one build only says so and returns under the other.
integration:
	@set -e; for b in $(MESHSTATS_BUILDS); do \
	  echo "integration: MESHSTATS_BUILD=$$b"; \
	  MESHSTATS_BUILD=$$b $(ARTIFACTS) $(CARGO) test -p meshstats-integration --tests -- --test-threads $(ENVOY_TEST_THREADS); \
	done

# ARGS: --seconds N --rate R --svg PATH --verbose --keep --build wasm|native. Unquoted, `make run ARGS=--build native`
# makes `native` a goal of its own: it is handed to the demo instead (and does nothing).
RUN_BUILD_WORD := $(if $(filter run,$(MAKECMDGOALS)),$(filter wasm native,$(MAKECMDGOALS)))
ifneq ($(RUN_BUILD_WORD),)
override ARGS += $(RUN_BUILD_WORD)
$(RUN_BUILD_WORD):
	@:
endif
run: build
	$(ARTIFACTS) $(CARGO) run --release -p meshstats-integration --bin meshstats-demo -- $(ARGS)

demo-graph: build
	$(ARTIFACTS) $(CARGO) run --release -p meshstats-integration --bin meshstats-demo -- --svg $(CURDIR)/docs/demo-graph.svg $(ARGS)

# Every setup side by side in one run (bare Envoy, Envoy's JSON log, the empty Wasm filter,
# meshstats Wasm and native), medians and budget lines; never fails on slowness
# (docs/benchmarks.md). The native rows say "not built" without dist/libmeshstats.so.
# ARGS: --mode one-envoy|two-sidecars|both --rounds N --duration-secs S --load wrk|builtin --json
bench: build
	@bash scripts/setup-bench.sh
	$(ARTIFACTS) $(CARGO) run --release -p meshstats-integration --bin meshstats-bench -- $(ARGS)

bench-expr:
	$(CARGO) run --release -p meshstats-filter --example expr_bench

# Exact accounting under load (docs/benchmarks.md); `make test` runs a 20,000-request version.
# ARGS: --requests N --connections C --budget-secs S
soak: build
	$(ARTIFACTS) $(CARGO) run --release -p meshstats-integration --bin meshstats-soak -- $(ARGS)

# Every real-Envoy test against each Envoy release in ENVOY_COMPAT_VERSIONS (docs/compatibility.md).
ENVOY_COMPAT_VERSIONS ?= 1.36.4 1.37.0 1.38.3 1.39.3 1.40.0
compat: build
	ENVOY_COMPAT_VERSIONS="$(ENVOY_COMPAT_VERSIONS)" ENVOY_TEST_THREADS=$(ENVOY_TEST_THREADS) bash scripts/compat.sh

fuzz:
	bash scripts/fuzz.sh

clean:
	$(CARGO) clean
	rm -rf dist

distclean: clean
	rm -rf .venv
