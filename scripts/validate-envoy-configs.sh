#!/usr/bin/env bash
# `envoy --mode validate` on every Envoy configuration the project has:
#   - the standard sidecar bootstraps, rendered by `meshstats render envoy` with the built
#     filter: inbound (ratings-v1) and outbound (productpage-v1), with the filter and bare;
#   - a server sidecar for every example configuration in envoyfilter/examples/;
#   - the same with the native build (`render envoy --build native`, dist/libmeshstats.so),
#     HTTP and TCP, and the filter entries `render http-filter` / `network-filter` print for
#     both builds, each placed in a minimal listener;
#   - every checked-in *.envoy.json / *.envoy.yaml / *.envoy.yml file.
# Validate mode parses the whole config and loads the Wasm module and the dynamic module
# (Envoy resolves the module's symbols then), without binding ports.
# Uses ENVOY_BIN, MESHSTATS_BIN, MESHSTATS_WASM and MESHSTATS_NATIVE, defaulting to what
# `make build` makes.
# Checks everything, then fails if anything failed. One line per config.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENVOY_BIN="${ENVOY_BIN:-$ROOT/.venv/bin/envoy}"
MESHSTATS_BIN="${MESHSTATS_BIN:-$ROOT/dist/meshstats}"
MESHSTATS_WASM="${MESHSTATS_WASM:-$ROOT/dist/meshstats.wasm}"
MESHSTATS_NATIVE="${MESHSTATS_NATIVE:-$ROOT/dist/libmeshstats.so}"

for f in "$ENVOY_BIN" "$MESHSTATS_BIN" "$MESHSTATS_WASM" "$MESHSTATS_NATIVE"; do
  [ -f "$f" ] || { echo "validate: $f not found: run \`make build\` first" >&2; exit 1; }
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/meshstats-validate.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

failed=0
checked=0

# The arguments of meshstats_testkit::envoy_validate (testkit/src/envoy.rs says why these).
validate() { # NAME FILE
  local name="$1" file="$2" out
  checked=$((checked + 1))
  if out="$("$ENVOY_BIN" --mode validate --log-level warn -c "$file" 2>&1)"; then
    echo "validate: $name: ok"
  else
    failed=$((failed + 1))
    echo "validate: $name: FAILED ($file)"
    printf '%s\n' "$out" | tail -n 30 | sed 's/^/    /'
  fi
}

# Inputs of the standard sidecars (the same ones meshstats-demo runs).
echo '{}' >"$WORK/filter-config.json"
node_metadata() { # APP
  cat <<EOF
{"NAME": "$1-v1-validate", "NAMESPACE": "default", "WORKLOAD_NAME": "$1-v1", "CLUSTER_ID": "Kubernetes",
 "LABELS": {"app": "$1", "version": "v1",
            "service.istio.io/canonical-name": "$1", "service.istio.io/canonical-revision": "v1"}}
EOF
}
node_metadata ratings >"$WORK/ratings-node.json"
node_metadata productpage >"$WORK/productpage-node.json"
cat >"$WORK/cluster-metadata.json" <<'EOF'
{"istio": {"services": [{"host": "ratings.default.svc.cluster.local", "name": "ratings", "namespace": "default"}]}}
EOF

render() { # NAME DIRECTION NODE_METADATA [ARGS...]  (CONFIG overrides the filter config)
  local name="$1" direction="$2" node="$3"
  shift 3
  local file="$WORK/$name.json"
  if "$MESHSTATS_BIN" render envoy --config "${CONFIG:-$WORK/filter-config.json}" --direction "$direction" \
      --listen 127.0.0.1:15006 --upstream 127.0.0.1:9080 --admin 127.0.0.1:15000 \
      --node-metadata "$node" --cluster-metadata "$WORK/cluster-metadata.json" \
      "$@" >"$file" 2>"$WORK/$name.err"; then
    validate "rendered $name" "$file"
  else
    checked=$((checked + 1))
    failed=$((failed + 1))
    echo "validate: rendered $name: FAILED to render"
    sed 's/^/    /' "$WORK/$name.err"
  fi
}

render inbound-ratings inbound "$WORK/ratings-node.json" --wasm "$MESHSTATS_WASM" --root-id stats_inbound
render outbound-productpage outbound "$WORK/productpage-node.json" --wasm "$MESHSTATS_WASM" --root-id stats_outbound
render inbound-ratings-bare inbound "$WORK/ratings-node.json" --no-filter
render outbound-productpage-bare outbound "$WORK/productpage-node.json" --no-filter
# Every example configuration (custom tags, buckets, access loggers): `meshstats validate`
# finds no problem in it, and it renders into a server sidecar Envoy accepts.
for example in "$ROOT"/envoyfilter/examples/*.json; do
  case "$example" in *node-metadata*) continue ;; esac
  checked=$((checked + 1))
  if out="$("$MESHSTATS_BIN" validate "$example" 2>&1)"; then
    echo "validate: meshstats validate $(basename "$example"): ok"
  else
    failed=$((failed + 1))
    echo "validate: meshstats validate $(basename "$example"): FAILED"
    printf '%s\n' "$out" | sed 's/^/    /'
  fi
  CONFIG="$example" render "example-$(basename "$example" .json)" inbound "$WORK/ratings-node.json" \
    --wasm "$MESHSTATS_WASM"
done

# The native build: the standard sidecars, TCP, and every example configuration.
render native-inbound-ratings inbound "$WORK/ratings-node.json" --build native \
  --module "$MESHSTATS_NATIVE" --root-id stats_inbound
render native-outbound-productpage outbound "$WORK/productpage-node.json" --build native \
  --module "$MESHSTATS_NATIVE" --root-id stats_outbound
render native-inbound-ratings-tcp inbound "$WORK/ratings-node.json" --build native \
  --module "$MESHSTATS_NATIVE" --wasm "$MESHSTATS_WASM" --protocol tcp
for example in "$ROOT"/envoyfilter/examples/*.json; do
  case "$example" in *node-metadata*) continue ;; esac
  CONFIG="$example" render "native-example-$(basename "$example" .json)" inbound "$WORK/ratings-node.json" \
    --build native --module "$MESHSTATS_NATIVE"
done

# `render http-filter` / `network-filter` print one filter entry for a user's own listener:
# each in a minimal bootstrap (before the router / tcp_proxy), with the customized example.
snippet() { # NAME KIND BUILD MODULE
  local name="$1" kind="$2" build="$3" module="$4" entry="$WORK/$1.entry.json"
  if ! "$MESHSTATS_BIN" render "$kind" --build "$build" --module "$module" --direction inbound \
      --config "$ROOT/envoyfilter/examples/customized.json" >"$entry" 2>"$WORK/$name.err"; then
    checked=$((checked + 1))
    failed=$((failed + 1))
    echo "validate: rendered $name: FAILED to render"
    sed 's/^/    /' "$WORK/$name.err"
    return
  fi
  python3 - "$kind" "$entry" >"$WORK/$name.json" <<'PY'
import json, sys
kind, entry = sys.argv[1], json.load(open(sys.argv[2]))
sock = lambda port: {"socket_address": {"address": "127.0.0.1", "port_value": port}}
if kind == "http-filter":
    router = {"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
    filters = [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "snippet", "http_filters": [entry, router],
        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "route": {"cluster": "app"}}]}]}}}]
else:
    filters = [entry, {"name": "envoy.filters.network.tcp_proxy", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        "stat_prefix": "snippet", "cluster": "app"}}]
print(json.dumps({"admin": {"address": sock(15000)}, "static_resources": {
    "listeners": [{"name": "snippet", "address": sock(15006), "traffic_direction": "INBOUND",
                   "filter_chains": [{"filters": filters}]}],
    "clusters": [{"name": "app", "type": "STATIC", "connect_timeout": "1s", "load_assignment": {
        "cluster_name": "app", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": sock(9080)}}]}]}}]}}))
PY
  validate "rendered $name" "$WORK/$name.json"
}
snippet http-filter-wasm http-filter wasm "$MESHSTATS_WASM"
snippet network-filter-wasm network-filter wasm "$MESHSTATS_WASM"
snippet http-filter-native http-filter native "$MESHSTATS_NATIVE"
snippet network-filter-native network-filter native "$MESHSTATS_NATIVE"

# Checked-in Envoy configurations.
while IFS= read -r -d '' file; do
  validate "${file#"$ROOT"/}" "$file"
done < <(find "$ROOT" \( -path "$ROOT/target" -o -path "$ROOT/.git" -o -path "$ROOT/.venv" \
                        -o -path "$ROOT/dist" -o -name node_modules \) -prune -o \
              -type f \( -name '*.envoy.json' -o -name '*.envoy.yaml' -o -name '*.envoy.yml' \) \
              -print0 | sort -z)

echo "validate: $((checked - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
