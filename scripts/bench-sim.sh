# Sourced by the benchmarks against the Zuora simulator (bench-zuora.sh, bench-reconcile.sh):
# builds dinmo and the simulator for $PROFILE, makes a work folder ($work, removed on exit),
# and starts the simulator on a free loopback port with twelve active accounts, the unit
# API_CALL, no rate limit to speak of and enforced UniqueKeys. Sets $bin, $work, $sim (its URL)
# and $sim_pid, and defines usage_project (below) and the simulator's test credentials in the
# environment.
flag=(); [ "$PROFILE" = release ] && flag=(--release)
cargo build -q "${flag[@]}" -p dinmo -p zuora-sim
bin="${CARGO_TARGET_DIR:-target}/$PROFILE"
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

export ZUORA_CLIENT_ID=00000000-0000-4000-8000-00000000be4c ZUORA_CLIENT_SECRET=bench-secret

# usage_project DIR ROWS ZUORA_SETTINGS: a project in DIR whose model makes ROWS usage rows
# (twelve accounts, API_CALL, one a second from 2026-01-01) for one `zuora` destination on the
# simulator, its settings lines (`method: import`, ...) given as ZUORA_SETTINGS.
usage_project() {
  local dir=$1 rows=$2 settings=$3
  mkdir -p "$dir/models"
  {
    printf 'name: bench\ndestinations:\n  zuora:\n    type: zuora\n    base_url: %s\n' "$sim"
    printf '    client_id: ${ZUORA_CLIENT_ID}\n    client_secret: ${ZUORA_CLIENT_SECRET}\n'
    printf '%s\n' "$settings" | sed 's/^/    /'
  } > "$dir/dinmo.yml"
  cat > "$dir/models/usage.yml" <<YML
model: usage
sql: |
  SELECT 'A' || lpad(CAST(1 + value % 12 AS VARCHAR), 8, '0') AS account,
         'API_CALL' AS uom,
         to_timestamp_seconds(1767225600 + value) AS usage_at,
         value % 1000 AS quantity
  FROM range($rows)
primary_key: [account, usage_at]
syncs:
  - destination: zuora
    mapping: { AccountNumber: account, UOM: uom, StartDateTime: usage_at, Quantity: quantity }
YML
}
