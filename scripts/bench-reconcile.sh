#!/usr/bin/env bash
# Benchmark of `dinmo reconcile` against the Zuora simulator: ROWS usage records delivered by a
# usage import (without added latency), then reconciled with LATENCY_MS added to every
# simulated request. Prints the requests reconcile made (by endpoint), its wall time, the CPU
# dinmo itself used, its peak RSS, the time the requests alone take at that latency, and how
# long Zuora's rate limit would make them take at RPM requests a minute.
#
#   scripts/bench-reconcile.sh                               # 100000 rows, 50 ms, debug build
#   ROWS=1000000 LATENCY_MS=50 PROFILE=release scripts/bench-reconcile.sh
#
# Every record must come back `equal`, and a second reconcile after deleting one record must
# find exactly that one missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-100000}
LATENCY_MS=${LATENCY_MS:-50}
RPM=${RPM:-1000}
PROFILE=${PROFILE:-debug}
# shellcheck source=bench-sim.sh
source scripts/bench-sim.sh

project="$work/project"
usage_project "$project" "$ROWS" "method: import"
export DINMO_LOG=error
"$bin/dinmo" --project "$project" run --quiet > "$work/run.out"
stored=$(curl -sf "$sim/sim/records" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$stored" = "$ROWS" ] || { echo "the simulator holds $stored records, not $ROWS" >&2; exit 1; }

curl -sf -X PUT -H 'content-type: application/json' -d "{\"latency_ms\":$LATENCY_MS}" "$sim/sim/faults" >/dev/null
curl -sf "$sim/sim/counters" > "$work/before.json"
start=$(date +%s.%N)
/usr/bin/time -f '%M %U %S' -o "$work/rss" "$bin/dinmo" --project "$project" reconcile --format json > "$work/reconcile.json"
end=$(date +%s.%N)
curl -sf "$sim/sim/counters" > "$work/after.json"

# One record deleted behind dinmo's back: exactly that one is missing.
victim=$(curl -sf "$sim/sim/records" | python3 -c "import json,sys; print(json.load(sys.stdin)[$ROWS//2]['id'])")
curl -sf -X PUT -H 'content-type: application/json' -d '{"latency_ms":0}' "$sim/sim/faults" >/dev/null
token=$(curl -sf -d grant_type=client_credentials -d client_id=$ZUORA_CLIENT_ID -d client_secret=$ZUORA_CLIENT_SECRET "$sim/oauth/token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
curl -sf -X DELETE -H "Authorization: Bearer $token" "$sim/v1/object/usage/$victim" >/dev/null
set +e
"$bin/dinmo" --project "$project" reconcile --format json > "$work/again.json"
again=$?
set -e

python3 - "$ROWS" "$start" "$end" "$work" "$LATENCY_MS" "$RPM" "$again" <<'PY'
import json, sys
rows, start, end, work, latency, rpm, again = sys.argv[1:8]
rows, latency, rpm = int(rows), int(latency), int(rpm)
secs = float(end) - float(start)
report = json.load(open(f"{work}/reconcile.json"))
classes = {c["class"]: c["rows"] for c in report["syncs"][0]["classes"] if c["rows"]}
assert classes == {"equal": rows}, f"every record should be equal: {classes}"
again_report = json.load(open(f"{work}/again.json"))
again_classes = {c["class"]: c["rows"] for c in again_report["syncs"][0]["classes"] if c["rows"]}
assert again == "4" and again_classes == {"equal": rows - 1, "missing": 1}, f"exit {again}: {again_classes}"
before, after = json.load(open(f"{work}/before.json")), json.load(open(f"{work}/after.json"))
by_endpoint = {k: n - before["by_endpoint"].get(k, 0) for k, n in after["by_endpoint"].items()}
by_endpoint = {k: n for k, n in by_endpoint.items() if n}
requests = sum(n for k, n in by_endpoint.items() if "/oauth" not in k)
rss_kb, user, system = open(f"{work}/rss").read().split()[-3:]
print(f"records {rows}  reconcile {secs:.2f} s  dinmo CPU {float(user) + float(system):.1f} s  peak RSS {int(rss_kb) / 1024:.0f} MB  requests {requests} ({', '.join(f'{k}: {n}' for k, n in sorted(by_endpoint.items()))})")
print(f"  requests × latency (one at a time): {requests * latency / 1000:.1f} s;  at {rpm} requests/minute: {requests / rpm * 60:.1f} s")
print(f"  one record deleted: exit {again}, {again_classes}")
PY
