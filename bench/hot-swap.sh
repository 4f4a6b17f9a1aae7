#!/usr/bin/env bash
# Benchmark (not a test): host start-to-ready without and with the compile
# cache, and swap latency (a new version written to the time it serves),
# by file rename and by admin API upload. Release build; loopback only.
#
#   bench/hot-swap.sh [RUNS]        (default 5; HOST=path/to/host to measure another build)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
cargo build --release -q --target wasm32-wasip2
cargo build --release -q -p host
host=${HOST:-target/release/host}   # HOST=another/build/host compares builds
wasm=target/wasm32-wasip2/release
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
wait_ready() { until curl -sf -o /dev/null "http://127.0.0.1:$1/healthz"; do sleep 0.002; done; }

cp "$wasm/ep_one.wasm" "$work/swap.wasm"
config="$work/webapp.toml"
# The release builds just made, whatever else `target/` holds (the default
# patterns would serve whichever build is newest).
sed "s|\"target/wasm32-wasip\*/\*/|\"$PWD/$wasm/|" webapp.toml > "$config"
printf '[[route]]\npath = "/swap"\ncomponent = "%s"\n' "$work/swap.wasm" >> "$config"

start_to_ready() { # $1 = cache args
  local t0 t1
  t0=$(now_ms)
  $host --config "$config" --listen 127.0.0.1:5090 --admin-listen 127.0.0.1:5091 $1 >/dev/null 2>&1 &
  local pid=$!
  wait_ready 5090
  t1=$(now_ms)
  kill -TERM $pid; wait $pid 2>/dev/null || true
  echo $((t1 - t0))
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

cold=$(for _ in $(seq "$runs"); do start_to_ready "--cache-dir $(mktemp -d -p "$work")"; done | median)
start_to_ready "--cache-dir $work/cache" >/dev/null   # fill the cache
cached=$(for _ in $(seq "$runs"); do start_to_ready "--cache-dir $work/cache"; done | median)
echo "start to ready (6 components): cold ${cold} ms, cached ${cached} ms (median of $runs)"

$host --config "$config" --listen 127.0.0.1:5090 --admin-listen 127.0.0.1:5091 --cache-dir "$work/cache" >/dev/null 2>&1 &
wait_ready 5090
file_ms=()
for i in $(seq "$runs"); do
  if (( i % 2 )); then version=ep_two body=2; else version=ep_one body=1; fi
  t0=$(now_ms)
  cp "$wasm/$version.wasm" "$work/swap.tmp" && mv "$work/swap.tmp" "$work/swap.wasm"
  until [ "$(curl -s http://127.0.0.1:5090/swap)" = "$body" ]; do sleep 0.001; done
  file_ms+=($(( $(now_ms) - t0 )))
done
echo "swap by file rename, written to serving: $(printf '%s\n' "${file_ms[@]}" | median) ms median (${file_ms[*]}), 200 ms of it debounce"
upload() { # $1 = component file; prints ms from request to serving
  curl -s -o "$work/answer.json" -w '%{http_code} %{time_total}' -X PUT --data-binary "@$1" \
    http://127.0.0.1:5091/routes/swap/component |
    awk -v f="$work/answer.json" '$1 != 200 {system("cat " f " >&2"); exit 1} {printf "%.1f", $2 * 1000}'
}
api_ms=()
for i in $(seq "$runs"); do
  if (( i % 2 )); then version=ep_three; else version=ep_four; fi
  api_ms+=($(upload "$wasm/$version.wasm"))
done
echo "swap by admin API upload of a version seen before (compiled, cached): $(printf '%s\n' "${api_ms[@]}" | median) ms median (${api_ms[*]})"
new_ms=()
for i in $(seq "$runs"); do
  # A version never seen: the same component with a custom section that
  # changes its digest, so it must be compiled.
  cp "$wasm/faults.wasm" "$work/new.wasm"
  printf '\x00\x0a\x05bench%04d' "$i" >> "$work/new.wasm"   # id 0, size 10, name "bench", 4 bytes
  new_ms+=($(upload "$work/new.wasm"))
done
echo "swap by admin API upload of a new version (compiled now): $(printf '%s\n' "${new_ms[@]}" | median) ms median (${new_ms[*]})"
