# Sourced by the benchmarks against the Zuora simulator (bench-zuora.sh, bench-reconcile.sh):
# builds dinmo and the simulator for $PROFILE, makes a work folder ($work, removed on exit),
# and starts the simulator on a free loopback port with twelve active accounts, the unit
# API_CALL, no rate limit to speak of and enforced UniqueKeys. Sets $bin, $work, $sim (its URL)
# and $sim_pid.
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
