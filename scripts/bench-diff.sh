#!/usr/bin/env bash
# The diff benchmark: dinmo (release build) against a DuckDB script doing the same work on the
# same Parquet files, in one run, alternating, medians. See scripts/bench-diff.py for the
# scenarios and docs/performance.md for the numbers.
#
#   scripts/bench-diff.sh                                   # 10 days x 1,000,000 rows, 3 runs each
#   DAYS=2 ROWS_PER_DAY=200000 REPS=1 scripts/bench-diff.sh # a quick look
#   SCENARIOS="first noop" scripts/bench-diff.sh            # some of first incremental noop history
#
# Needs DuckDB for Python (pip install duckdb). Data and state go to BENCH_DIR
# (default /tmp/dinmo-bench; ~2 GB at the default size). Results also land in
# $BENCH_DIR/results.json.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c 'import duckdb' 2>/dev/null || { echo "bench-diff: needs DuckDB for Python: pip install duckdb" >&2; exit 2; }
cargo build -q --release -p dinmo
export DINMO_BIN="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/dinmo"
exec python3 scripts/bench-diff.py
