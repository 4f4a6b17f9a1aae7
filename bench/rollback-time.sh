#!/usr/bin/env bash
# Benchmark (not a test): time from a bad canary's start to its automatic
# rollback, at the demo's traffic (the generator's defaults: 4 workers, all
# five endpoints, ~20 requests a second in all, ~4 on /ep_one). Release build;
# loopback only; each run stops by itself.
#
#   bench/rollback-time.sh [RUNS]   (default 3)
#   SHARE=10 CANDIDATE=ep_four bench/rollback-time.sh   (share; component judged)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
share=${SHARE:-20}
candidate=target/wasm32-wasip2/release/${CANDIDATE:-ep_error}.wasm
cargo build --release -q --target wasm32-wasip2
cargo build --release -q -p host -p generator
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
# Polls `grep -q PATTERN FILE` every 10 ms for up to 60 s.
wait_for() { for _ in $(seq 6000); do grep -q "$1" "$2" && return; sleep 0.01; done; echo "timed out: $1" >&2; exit 1; }

for run in $(seq "$runs"); do
  rm -rf "$work/cache"
  target/release/host --config webapp.toml --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    --cache-dir "$work/cache" > "$work/out" 2> "$work/log" &
  host=$!
  wait_for "webapp listening" "$work/out"
  url=$(grep -o 'webapp listening on http://[0-9.:]*' "$work/out" | grep -o 'http://.*')
  admin=$(grep -o 'admin API listening on http://[0-9.:]*' "$work/out" | grep -o 'http://.*')
  target/release/generator --target "$url" --duration 90s > /dev/null 2>&1 &
  generator=$!
  sleep 3 # traffic settles (the stable version has answers to compare with)
  start=$(date +%s%N)
  curl -sf -X PUT --data-binary "@$candidate" "$admin/routes/ep_one/component?canary=$share" > /dev/null
  wait_for "rollout ended" "$work/log"
  end=$(date +%s%N)
  echo "run $run: $(( (end - start) / 1000000 )) ms from the canary's start to its rollback"
  grep "rollout ended" "$work/log" | sed 's/.*rollout ended, //; s/ route=.*//'
  kill "$generator" "$host"; wait "$generator" "$host" 2>/dev/null || true
done
