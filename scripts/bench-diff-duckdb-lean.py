#!/usr/bin/env python3
"""The lean DuckDB side of scripts/bench-diff.sh: the script a data engineer would write
without dinmo's machinery, next to bench-diff-duckdb.py.

    bench-diff-duckdb-lean.py EVENTS_FOLDER STATE_FOLDER OUT_FOLDER [--three-way]

Checks the primary key (dinmo refuses a repeated one, so this does too), anti-joins the
exports on the primary key itself against the keys already sent (STATE_FOLDER/*.parquet, one
file per run), streams the new rows straight into a usage CSV with `COPY … TO` (no temporary
table, no hashing), then keeps their keys as a new Parquet file read back from that CSV, and
prints how many rows it sent. It keeps keys only: no values, so it cannot tell a changed row.

With --three-way it keeps the values sent as well (the mapped columns, beside the key), and
first writes the rows whose key was sent with other values, before and after, to
OUT_FOLDER/held.parquet (one join on the primary key, streamed by `COPY`); it prints how many
rows it sent, then how many changed. The new rows are then stored with their values first and
the CSV written from that file, as one would to keep what was sent.
"""

import glob
import os
import sys

import duckdb

events, state, out = sys.argv[1:4]
three_way = "--three-way" in sys.argv[4:]
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
listed = ", ".join(f"'{p}'" for p in parts)
new = f"SELECT * FROM {source}"
if parts:
    new = f"SELECT e.* FROM {source} e ANTI JOIN read_parquet([{listed}]) s ON e.event_id = s.event_id"
run = len(parts)
csv = os.path.join(out, f"usage-{run:05d}.csv")
usage = """SELECT account_number AS AccountNumber, 'AccountNumber:' || account_number AS Tag,
               uom AS UnitOfMeasure, strftime(event_ts, '%Y-%m-%dT%H:%M:%S') AS StartDateTime,
               quantity AS Quantity, '' AS Description, event_id AS UniqueKey, '' AS GroupId"""
changed = 0
if three_way:
    if parts:
        held = f"""SELECT e.*, s.account_number AS before_account_number, s.uom AS before_uom,
                          s.event_ts AS before_event_ts, s.quantity AS before_quantity
                   FROM {source} e JOIN read_parquet([{listed}]) s ON e.event_id = s.event_id
                   WHERE e.account_number IS DISTINCT FROM s.account_number OR e.uom IS DISTINCT FROM s.uom
                      OR e.event_ts IS DISTINCT FROM s.event_ts OR e.quantity IS DISTINCT FROM s.quantity"""
        con.sql(f"COPY ({held}) TO '{out}/held.parquet' (FORMAT parquet)")
        changed = con.sql(f"SELECT count(*) FROM read_parquet('{out}/held.parquet')").fetchall()[0][0]
    kept = os.path.join(state, f"run-{run:05d}.parquet")
    con.sql(
        f"COPY (SELECT event_id, account_number, uom, event_ts, quantity FROM ({new})) TO '{kept}' (FORMAT parquet)"
    )
    sent = con.sql(f"SELECT count(*) FROM read_parquet('{kept}')").fetchall()[0][0]
    if sent:
        con.sql(f"COPY ({usage} FROM read_parquet('{kept}')) TO '{csv}' (HEADER)")
    else:
        os.remove(kept)
else:
    con.sql(f"COPY ({usage} FROM ({new})) TO '{csv}' (HEADER)")
    sent = con.sql(f"SELECT count(*) FROM read_csv('{csv}', header = true, all_varchar = true)").fetchall()[0][0]
    if sent:
        con.sql(
            f"COPY (SELECT UniqueKey AS event_id FROM read_csv('{csv}', header = true, all_varchar = true)) "
            f"TO '{state}/run-{run:05d}.parquet' (FORMAT parquet)"
        )
    else:
        os.remove(csv)
print(sent)
if three_way:
    print(changed)
