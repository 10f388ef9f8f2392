#!/usr/bin/env bash
# Renders the checked-in Istio examples in envoyfilter/examples/istio/ (`make manifests`)
# from envoyfilter/examples/customized.json and new-log.json, with fixed options, so that
# `make check-manifests` (part of `make test`) fails when the renderer's output drifts.
# Uses MESHSTATS_BIN (default: dist/meshstats).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MESHSTATS_BIN="${MESHSTATS_BIN:-$ROOT/dist/meshstats}"
EXAMPLES="$ROOT/envoyfilter/examples"
OUT="$EXAMPLES/istio"
[ -x "$MESHSTATS_BIN" ] || { echo "manifests: $MESHSTATS_BIN not found: run \`make build\` first" >&2; exit 1; }
mkdir -p "$OUT"

IMAGE=oci://registry.example.com/meshstats/meshstats:0.1.0
WASM_PATH=/var/local/lib/wasm-plugins/meshstats.wasm
MODULE_PATH=/var/local/lib/meshstats/libmeshstats.so

render() { # FILE ARGS...
  local file="$1"
  shift
  "$MESHSTATS_BIN" render "$@" >"$OUT/$file.tmp"
  mv "$OUT/$file.tmp" "$OUT/$file"
  echo "manifests: envoyfilter/examples/istio/$file"
}

for example in customized new-log; do
  config="$EXAMPLES/$example.json"
  render "$example.wasmplugin.yaml" wasmplugin --config "$config" --url "$IMAGE"
  render "$example.envoyfilter.yaml" envoyfilter --config "$config" --wasm-path "$WASM_PATH"
  render "$example.proxy-config.yaml" proxy-config --config "$config" 2>/dev/null
  render "$example.mesh-config.yaml" mesh-config --config "$config"
done
# The native build (Envoy 1.40.0's dynamic module): the EnvoyFilter and the pod patch.
render customized.native.envoyfilter.yaml envoyfilter --build native --config "$EXAMPLES/customized.json" \
  --module-path "$MODULE_PATH" --wasm-path "$WASM_PATH" 2>/dev/null
render customized.native.proxy-config.yaml proxy-config --build native --config "$EXAMPLES/customized.json" \
  --module-path "$MODULE_PATH" --bootstrap-config-map meshstats-native-bootstrap 2>/dev/null
render customized.native.bootstrap-override.yaml bootstrap-override --build native \
  --config "$EXAMPLES/customized.json" --name meshstats-native-bootstrap --namespace bookinfo
render customized.bootstrap-override.yaml bootstrap-override --config "$EXAMPLES/customized.json" --namespace bookinfo
render new-log.telemetry.yaml telemetry --config "$EXAMPLES/new-log.json"
# Scoped variants: one workload by label, one Gateway API gateway.
render new-log.wasmplugin.ratings.yaml wasmplugin --config "$EXAMPLES/new-log.json" --url "$IMAGE" \
  --namespace bookinfo --selector app=ratings
render default.wasmplugin.gateway.yaml wasmplugin --url "$IMAGE" --namespace bookinfo \
  --target-ref Gateway/bookinfo-gateway --no-tcp
