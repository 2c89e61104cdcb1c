#!/usr/bin/env bash
# Benchmark of `dinmo query` and `dinmo report` over a long history: RUNS daily runs of two
# syncs sending ROWS rows in all (written once by the `synthetic_history` example with dinmo's
# own state code, then compacted by `dinmo state compact` as runs would), and the same
# questions asked of DuckDB over the same Parquet files in the same run.
#
#   scripts/bench-history.sh                                   # 365 runs, 1 M rows, debug
#   RUNS=365 ROWS=10000000 PROFILE=release scripts/bench-history.sh
#
# Each dinmo command is timed whole (process start, reading the manifests, the query); DuckDB
# is timed inside one Python process (its start left out), reading the snapshot files by glob,
# which is what the docs show for pointing DuckDB at a state. The answers must agree.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-365}
ROWS=${ROWS:-1000000}
PROFILE=${PROFILE:-debug}
KEEP=${KEEP:-}

flag=$([ "$PROFILE" = release ] && echo --release || true)
cargo build $flag -q -p dinmo --bin dinmo --example synthetic_history
bin="target/$PROFILE"
work=${KEEP:-$(mktemp -d)}
[ -n "$KEEP" ] || trap 'rm -rf "$work"' EXIT
state="$work/state-$RUNS-$ROWS"
if [ ! -d "$state" ]; then
  "$bin/examples/synthetic_history" "$state" "$RUNS" "$ROWS"
fi
mkdir -p "$work/project/models"
printf 'name: bench\nstate: %s\n' "$state" > "$work/project/dinmo.yml"
dinmo=("$bin/dinmo" --project "$work/project")
DINMO_LOG=error "${dinmo[@]}" state compact >/dev/null
echo "state: $(du -sh "$state" | cut -f1) in $(find "$state" -type f | wc -l) files"

time_it() { # name, command...
  local name=$1; shift
  local start end
  start=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$work/rss" "$@" > "$work/$name.out"
  end=$(date +%s.%N)
  printf '%-28s %6.2f s  peak RSS %5d MB\n' "dinmo $name" "$(echo "$end - $start" | bc)" "$(( $(cat "$work/rss") / 1024 ))"
}

last_month="SELECT account, count(*) AS n, sum(quantity) AS q FROM sent \
WHERE usage_date >= DATE '2026-11-01' AND usage_date < DATE '2026-12-01' GROUP BY 1 ORDER BY 1"
totals="SELECT count(*) AS n, sum(quantity) AS q FROM sent"
refusals="SELECT code, field, count(*) AS n FROM rejected GROUP BY 1, 2 ORDER BY 1, 2"
run_x=$("${dinmo[@]}" query "SELECT max(run_id) AS r FROM runs WHERE run_id < (SELECT max(run_id) FROM runs)" --format csv | tail -1)
what_run_x="SELECT * FROM sent WHERE run_id = '$run_x'"

export DINMO_LOG=error
time_it totals "${dinmo[@]}" query "$totals" --format csv
time_it last-month-by-account "${dinmo[@]}" query "$last_month" --format csv
time_it refusals "${dinmo[@]}" query "$refusals" --format csv
time_it what-run-x-sent "${dinmo[@]}" query "$what_run_x" --out "$work/run-x.parquet"
time_it report "${dinmo[@]}" report --out "$work/report.html"
echo "report: $(du -k "$work/report.html" | cut -f1) KB"

python3 - "$state" "$work" "$run_x" <<'PY'
import sys, time, csv, duckdb
state, work, run_x = sys.argv[1:]
sent = f"read_parquet('{state}/*/snapshot/*.parquet', union_by_name=true)"
rejected = f"read_parquet('{state}/*/rejected/*.parquet', union_by_name=true)"
quantity = "CAST(coalesce(Quantity, QTY) AS DECIMAL(38, 9))"
account = "coalesce(AccountNumber, ACCOUNT_ID)"
questions = {
    "totals": f"SELECT count(*), sum({quantity}) FROM {sent}",
    "last-month-by-account": f"""SELECT {account} AS a, count(*), sum({quantity}) FROM {sent}
        WHERE CAST(coalesce(StartDateTime, STARTDATE) AS DATE) >= DATE '2026-11-01'
          AND CAST(coalesce(StartDateTime, STARTDATE) AS DATE) < DATE '2026-12-01' GROUP BY 1 ORDER BY 1""",
    "refusals": f"SELECT reject_code, reject_field, count(*) FROM {rejected} GROUP BY 1, 2 ORDER BY 1, 2",
    "what-run-x-sent": f"COPY (SELECT * FROM {sent} WHERE _dinmo_run_id = '{run_x}') TO '{work}/run-x-duck.parquet'",
}
con = duckdb.connect()
def dinmo_rows(name):
    with open(f"{work}/{name}.out") as f:
        return [tuple(r) for r in csv.reader(f)][1:]
for name, sql in questions.items():
    start = time.perf_counter()
    result = con.sql(sql).fetchall() if not sql.startswith("COPY") else con.execute(sql).fetchall()
    took = time.perf_counter() - start
    print(f"{'duckdb ' + name:<28} {took:6.2f} s")
    if name == "what-run-x-sent":
        ours = con.sql(f"SELECT count(*) FROM '{work}/run-x.parquet'").fetchall()
        theirs = con.sql(f"SELECT count(*) FROM '{work}/run-x-duck.parquet'").fetchall()
        assert ours == theirs, (ours, theirs)
        continue
    ours = [tuple(str(v) for v in r) for r in dinmo_rows(name)]
    theirs = [tuple("" if v is None else str(v) for v in r) for r in result]
    def value(x):
        try:
            return repr(round(float(x), 6))
        except ValueError:
            return x
    norm = lambda rows: sorted(tuple(value(x) for x in r) for r in rows)
    assert norm(ours) == norm(theirs), (name, ours[:3], theirs[:3])
print("dinmo and DuckDB agree on every answer")
PY
