#!/usr/bin/env bash
# Benchmark (not a test): what per-request metrics cost, on the hello
# component. Interleaved rounds of this build with metrics on and with
# --no-request-metrics (and, given BEFORE=path/to/other/host, that build with
# metrics on), each a fresh host: wrk -t2 -c50 -d8s after a 2 s warm-up.
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
printf '[[route]]\npath = "/hello"\ncomponent = "%s"\n' "$PWD/target/wasm32-wasip2/release/hello.wasm" > "$work/b.toml"
run() { # HOST [FLAGS]: prints "req/s (µs CPU per request)"
  "$1" --config "$work/b.toml" --no-admin --no-watch --cache-dir "$work/cache" --listen 127.0.0.1:5110 ${2:-} >/dev/null 2>&1 &
  local pid=$! before after rate
  until curl -sf -o /dev/null http://127.0.0.1:5110/healthz; do sleep 0.01; done
  wrk -t2 -c50 -d2s http://127.0.0.1:5110/hello >/dev/null 2>&1
  before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  rate=$(wrk -t2 -c50 -d8s http://127.0.0.1:5110/hello | awk '/Requests\/sec/ {print $2}')
  after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  awk -v r="$rate" -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.0f (%.1f µs)", r, t / hz * 1e6 / (r * 8)}'
}
for ((i = 1; i <= rounds; i++)); do
  line="round $i: on $(run target/release/host) | off $(run target/release/host --no-request-metrics)"
  [ -n "${BEFORE:-}" ] && line+=" | before $(run "$BEFORE")"
  echo "$line"
done
