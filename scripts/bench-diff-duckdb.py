#!/usr/bin/env python3
"""The DuckDB side of scripts/bench-diff.sh: dinmo's diff written as a short DuckDB script.

    bench-diff-duckdb.py EVENTS_FOLDER STATE_FOLDER OUT_FOLDER

Reads the exports, stops on a duplicate primary key, keys each row (32 hex digits, as dinmo's
row key), anti-joins against the keys of earlier runs (STATE_FOLDER/*.parquet), writes the new
rows as a usage CSV with the columns dinmo writes, stores their keys as a new Parquet file, and
prints how many rows it sent.
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
keyed = f"SELECT *, md5('usage.usage' || chr(0) || event_id) AS k FROM {source}"
parts = sorted(glob.glob(os.path.join(state, "*.parquet")))
if parts:
    listed = ", ".join(f"'{p}'" for p in parts)
    new = f"SELECT e.* FROM ({keyed}) e ANTI JOIN read_parquet([{listed}]) s ON e.k = s.k"
else:
    new = keyed
con.sql(f"CREATE TEMP TABLE new AS {new}")
sent = con.sql("SELECT count(*) FROM new").fetchall()[0][0]
if sent:
    run = len(parts)
    con.sql(
        f"""COPY (
            SELECT account_number AS AccountNumber, 'AccountNumber:' || account_number AS Tag,
                   uom AS UnitOfMeasure, strftime(event_ts, '%Y-%m-%dT%H:%M:%S') AS StartDateTime,
                   quantity AS Quantity, '' AS Description, k AS UniqueKey, '' AS GroupId
            FROM new
        ) TO '{out}/usage-{run:05d}.csv' (HEADER)"""
    )
    con.sql(f"COPY (SELECT k FROM new) TO '{state}/run-{run:05d}.parquet' (FORMAT parquet)")
print(sent)
