#!/usr/bin/env python3
"""The lean DuckDB side of scripts/bench-diff.sh: the script a data engineer would write
without dinmo's machinery, next to bench-diff-duckdb.py.

    bench-diff-duckdb-lean.py EVENTS_FOLDER STATE_FOLDER OUT_FOLDER

Checks the primary key (dinmo refuses a repeated one, so this does too), anti-joins the
exports on the primary key itself against the keys already sent (STATE_FOLDER/*.parquet, one
file per run), streams the new rows straight into a usage CSV with `COPY … TO` (no temporary
table, no hashing), then keeps their keys as a new Parquet file read back from that CSV, and
prints how many rows it sent. It keeps keys only: no values, so it cannot tell a changed row.
"""

import glob
import os
import sys

import duckdb

events, state, out = sys.argv[1:4]
os.makedirs(state, exist_ok=True)
os.makedirs(out, exist_ok=True)
con = duckdb.connect()
source = f"read_parquet('{events}/*/*.parquet', hive_partitioning = false)"
duplicates = con.sql(
    f"SELECT event_id, count(*) AS n FROM {source} GROUP BY event_id HAVING count(*) > 1 LIMIT 5"
).fetchall()
if duplicates:
    sys.exit(f"duplicate primary key: {duplicates}")
parts = sorted(glob.glob(os.path.join(state, "*.parquet")))
new = f"SELECT * FROM {source}"
if parts:
    listed = ", ".join(f"'{p}'" for p in parts)
    new = f"SELECT e.* FROM {source} e ANTI JOIN read_parquet([{listed}]) s ON e.event_id = s.event_id"
run = len(parts)
csv = os.path.join(out, f"usage-{run:05d}.csv")
con.sql(
    f"""COPY (
        SELECT account_number AS AccountNumber, 'AccountNumber:' || account_number AS Tag,
               uom AS UnitOfMeasure, strftime(event_ts, '%Y-%m-%dT%H:%M:%S') AS StartDateTime,
               quantity AS Quantity, '' AS Description, event_id AS UniqueKey, '' AS GroupId
        FROM ({new})
    ) TO '{csv}' (HEADER)"""
)
sent = con.sql(f"SELECT count(*) FROM read_csv('{csv}', header = true, all_varchar = true)").fetchall()[0][0]
if sent:
    con.sql(
        f"COPY (SELECT UniqueKey AS event_id FROM read_csv('{csv}', header = true, all_varchar = true)) "
        f"TO '{state}/run-{run:05d}.parquet' (FORMAT parquet)"
    )
else:
    os.remove(csv)
print(sent)
