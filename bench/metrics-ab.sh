#!/usr/bin/env bash
# Benchmark (not a test): what per-request metrics cost, on the hello
# component. Interleaved rounds of this build with metrics on and with
# --no-request-metrics, and this build during a 50 % canary of hello (a copy
# differing by a custom section, never judged: the per-request rollout
# bookkeeping included), and, given BEFORE=path/to/other/host, that build
# with metrics on; each a fresh host: wrk -t2 -c50 -d8s after a 2 s warm-up.
# Prints req/s and the server's CPU microseconds per request.
#
#   bench/metrics-ab.sh [ROUNDS]     (default 5; BEFORE=... adds a column)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
cargo build --release -q --target wasm32-wasip2
cargo build --release -q -p host
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
hello=$PWD/target/wasm32-wasip2/release/hello.wasm
printf '[[route]]\npath = "/hello"\ncomponent = "%s"\n' "$hello" > "$work/b.toml"
printf '[route.rollout]\nmin_requests = 1000000000\n' | cat "$work/b.toml" - > "$work/canary.toml"
# hello plus a 5-byte custom section (id 0, size 5, name "test"): a new digest.
{ cat "$hello"; printf '\000\005\004test'; } > "$work/hello-canary.wasm"
run() { # HOST [FLAGS]: prints "req/s (µs CPU per request)"
  local config=$work/b.toml flags=${2:-}
  [ "$flags" = canary ] && config=$work/canary.toml flags=
  "$1" --config "$config" --admin-listen 127.0.0.1:5111 --no-watch --cache-dir "$work/cache" --listen 127.0.0.1:5110 $flags >/dev/null 2>&1 &
  local pid=$! before after rate
  until curl -sf -o /dev/null http://127.0.0.1:5110/healthz; do sleep 0.01; done
  if [ "${2:-}" = canary ]; then
    curl -sf -o /dev/null -X PUT --data-binary "@$work/hello-canary.wasm" \
      'http://127.0.0.1:5111/routes/hello/component?canary=50'
  fi
  wrk -t2 -c50 -d2s http://127.0.0.1:5110/hello >/dev/null 2>&1
  before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  rate=$(wrk -t2 -c50 -d8s http://127.0.0.1:5110/hello | awk '/Requests\/sec/ {print $2}')
  after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  awk -v r="$rate" -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.0f (%.1f µs)", r, t / hz * 1e6 / (r * 8)}'
}
for ((i = 1; i <= rounds; i++)); do
  line="round $i: on $(run target/release/host) | off $(run target/release/host --no-request-metrics) | canary $(run target/release/host canary)"
  [ -n "${BEFORE:-}" ] && line+=" | before $(run "$BEFORE")"
  echo "$line"
done
