#!/usr/bin/env bash
# Benchmark of the Zuora REST destination against the simulator: rows/second and requests
# per method for ROWS usage rows with LATENCY_MS added to every simulated request.
#
#   scripts/bench-zuora.sh                 # 100000 rows, 50 ms, debug build
#   ROWS=20000 LATENCY_MS=50 PROFILE=release scripts/bench-zuora.sh
#
# Prints one line per method: rows, seconds, rows/s, usage requests, token requests.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-100000}
LATENCY_MS=${LATENCY_MS:-50}
CONCURRENCY=${CONCURRENCY:-8}
METHODS=${METHODS:-"actions import object"}
PROFILE=${PROFILE:-debug}
flag=(); [ "$PROFILE" = release ] && flag=(--release)
cargo build -q "${flag[@]}" -p dinmo -p zuora-sim
bin="target/$PROFILE"
work=$(mktemp -d)
trap 'kill $sim_pid 2>/dev/null || true; rm -rf "$work"' EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/sim.json" <<JSON
{"client_id":"00000000-0000-4000-8000-00000000be4c","client_secret":"bench-secret","token_ttl_secs":3600,
 "accounts":[$(for n in $(seq 1 12); do printf '{"number":"A%08d","id":"%032x","status":"Active"}' "$n" "$n"; [ "$n" -lt 12 ] && printf ','; done)],
 "units_of_measure":["API_CALL"],"rate_limit_per_minute":100000000,"concurrency_limit":40,
 "enforce_unique_key":true,"import_delay_ms":200}
JSON
"$bin/zuora-sim" --port "$port" --config "$work/sim.json" > "$work/sim.log" 2>&1 &
sim_pid=$!
sim="http://127.0.0.1:$port"
for _ in $(seq 1 50); do curl -sf "$sim/sim/counters" >/dev/null && break; sleep 0.1; done

printf '%-8s %8s %9s %9s %15s %7s\n' method rows seconds rows/s usage_requests tokens
for method in $METHODS; do
  curl -sf -X POST "$sim/sim/reset" >/dev/null
  curl -sf -X PUT -H 'content-type: application/json' -d "{\"latency_ms\":$LATENCY_MS}" "$sim/sim/faults" >/dev/null
  project="$work/$method"
  mkdir -p "$project/models"
  cat > "$project/dinmo.yml" <<YML
name: bench
destinations:
  zuora:
    type: zuora
    base_url: $sim
    client_id: \${ZUORA_CLIENT_ID}
    client_secret: \${ZUORA_CLIENT_SECRET}
    method: $method
    concurrency: $CONCURRENCY
YML
  cat > "$project/models/usage.yml" <<YML
model: usage
sql: |
  SELECT 'A' || lpad(CAST(1 + value % 12 AS VARCHAR), 8, '0') AS account,
         'API_CALL' AS uom,
         to_timestamp_seconds(1767225600 + value) AS usage_at,
         value % 1000 AS quantity
  FROM range($ROWS)
primary_key: [account, usage_at]
syncs:
  - destination: zuora
    mapping: { AccountNumber: account, UOM: uom, StartDateTime: usage_at, Quantity: quantity }
YML
  start=$(date +%s.%N)
  ZUORA_CLIENT_ID=00000000-0000-4000-8000-00000000be4c ZUORA_CLIENT_SECRET=bench-secret DINMO_LOG=warn \
    "$bin/dinmo" --project "$project" run --quiet > "$work/$method.out"
  end=$(date +%s.%N)
  curl -sf "$sim/sim/counters" > "$work/$method.counters.json"
  stored=$(curl -sf "$sim/sim/records" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
  python3 - "$method" "$ROWS" "$start" "$end" "$stored" "$work/$method.counters.json" <<'PY'
import json, sys
method, rows, start, end, stored, counters = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
c = json.load(open(counters))
usage = sum(n for k, n in c["by_endpoint"].items() if "/oauth" not in k)
secs = end - start
assert stored == rows, f"{method}: simulator stored {stored} of {rows} rows"
print(f"{method:<8} {rows:>8} {secs:>9.1f} {rows/secs:>9.0f} {usage:>15} {c['token_requests']:>7}")
print("         " + ", ".join(f"{k}: {n}" for k, n in sorted(c["by_endpoint"].items())), f"(429s: {c['throttled']}, replays: {c['idempotent_replays']})")
PY
done
