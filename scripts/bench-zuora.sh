#!/usr/bin/env bash
# Benchmark of the Zuora REST destination against the simulator: rows/second and requests
# per method for ROWS usage rows with LATENCY_MS added to every simulated request, and the
# latency-bound ceiling (usage requests × latency ÷ concurrency) the run is measured against.
#
#   scripts/bench-zuora.sh                 # 100000 rows, 50 ms, debug build
#   ROWS=20000 LATENCY_MS=50 PROFILE=release scripts/bench-zuora.sh
#   FAULTS=1 ROWS=5000 LATENCY_MS=5 scripts/bench-zuora.sh   # each method without faults,
#       then with 5 % 5xx + 5 % concurrency 429s (real RateLimit-* headers on every answer),
#       and the ratio of the two wall times
#
# Prints one line per method (and fault setting): rows, seconds, rows/s, usage requests,
# token requests, % of the latency ceiling. Every run must store each row exactly once.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-100000}
LATENCY_MS=${LATENCY_MS:-50}
CONCURRENCY=${CONCURRENCY:-8}
METHODS=${METHODS:-"actions import object"}
PROFILE=${PROFILE:-debug}
FAULTS=${FAULTS:-0}
# shellcheck source=bench-sim.sh
source scripts/bench-sim.sh

printf '%-8s %-7s %8s %9s %9s %15s %7s %9s\n' method faults rows seconds rows/s usage_requests tokens ceiling%
bench() {
  local method=$1 faults=$2 label=$3
  curl -sf -X POST "$sim/sim/reset" >/dev/null
  curl -sf -X PUT -H 'content-type: application/json' -d "{\"latency_ms\":$LATENCY_MS$faults}" "$sim/sim/faults" >/dev/null
  project="$work/$method-$label"
  rm -rf "$project"
  usage_project "$project" "$ROWS" "method: $method
concurrency: $CONCURRENCY"
  local start end
  start=$(date +%s.%N)
  DINMO_LOG=error "$bin/dinmo" --project "$project" run --quiet > "$work/$method.out"
  end=$(date +%s.%N)
  curl -sf "$sim/sim/counters" > "$work/$method.counters.json"
  stored=$(curl -sf "$sim/sim/records" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
  distinct=$(curl -sf "$sim/sim/records" | python3 -c 'import json,sys; print(len({r["unique_key"] for r in json.load(sys.stdin)}))')
  python3 - "$method" "$label" "$ROWS" "$start" "$end" "$stored" "$distinct" "$work/$method.counters.json" "$LATENCY_MS" "$CONCURRENCY" <<'PY' | tee -a "$work/results.txt"
import json, sys
method, label, rows, start, end, stored, distinct, counters, latency, concurrency = sys.argv[1:11]
rows, stored, distinct = int(rows), int(stored), int(distinct)
c = json.load(open(counters))
usage = sum(n for k, n in c["by_endpoint"].items() if "/oauth" not in k)
secs = float(end) - float(start)
assert stored == rows and distinct == rows, f"{method}: simulator stored {stored} records, {distinct} distinct, of {rows} rows"
# The latency-bound ceiling: every usage request takes the injected latency and at most
# `concurrency` are in flight (an import's polls are sequential, so the ceiling is an upper bound).
ceiling = usage * int(latency) / 1000 / int(concurrency)
print(f"{method:<8} {label:<7} {rows:>8} {secs:>9.2f} {rows/secs:>9.0f} {usage:>15} {c['token_requests']:>7} {100*ceiling/secs:>8.0f}%")
print("         " + ", ".join(f"{k}: {n}" for k, n in sorted(c["by_endpoint"].items())), f"(429s: {c['throttled']}, 5xx: {c['server_errors']}, replays: {c['idempotent_replays']})")
PY
}
for method in $METHODS; do
  bench "$method" "" none
  if [ "$FAULTS" = 1 ]; then
    bench "$method" ',"error_rate":0.05,"throttle_rate":0.05,"seed":7' faults
  fi
done
if [ "$FAULTS" = 1 ]; then
  python3 - "$work/results.txt" <<'PY'
import sys
times = {}
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) >= 4 and parts[1] in ("none", "faults"):
        times.setdefault(parts[0], {})[parts[1]] = float(parts[3])
for method, t in times.items():
    print(f"{method:<8} with faults / without: {t['faults'] / t['none']:.2f}x")
PY
fi
