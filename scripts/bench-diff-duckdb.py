#!/usr/bin/env python3
"""The DuckDB side of scripts/bench-diff.sh: dinmo's diff written as a short DuckDB script.

    bench-diff-duckdb.py EVENTS_FOLDER STATE_FOLDER OUT_FOLDER [--three-way]

Reads the exports, stops on a duplicate primary key, keys each row (32 hex digits, as dinmo's
row key), anti-joins against the keys of earlier runs (STATE_FOLDER/*.parquet), writes the new
rows as a usage CSV with the columns dinmo writes, stores their keys and the values sent as a
new Parquet file (dinmo's snapshot keeps the values sent too), and prints how many rows it sent.

With --three-way it also finds the changed rows, as dinmo does: one left join on the key, the
rows whose key is there with another value in a mapped column (IS DISTINCT FROM) written with
their values before and after to OUT_FOLDER/held.parquet (what `on_change: hold` keeps); it
prints how many rows it sent, then how many changed.
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
keyed = f"SELECT *, md5('usage.usage' || chr(0) || event_id) AS k FROM {source}"
parts = sorted(glob.glob(os.path.join(state, "*.parquet")))
changed = 0
if parts and three_way:
    listed = ", ".join(f"'{p}'" for p in parts)
    con.sql(
        f"""CREATE TEMP TABLE joined AS
            SELECT e.*, s.k AS sk, s.account_number AS before_account_number, s.uom AS before_uom,
                   s.event_ts AS before_event_ts, s.quantity AS before_quantity
            FROM ({keyed}) e LEFT JOIN read_parquet([{listed}]) s ON e.k = s.k"""
    )
    con.sql("CREATE TEMP TABLE new AS SELECT * EXCLUDE (sk, before_account_number, before_uom, before_event_ts, before_quantity) FROM joined WHERE sk IS NULL")
    held = """SELECT * EXCLUDE (sk) FROM joined WHERE sk IS NOT NULL AND (
                  account_number IS DISTINCT FROM before_account_number OR uom IS DISTINCT FROM before_uom
                  OR event_ts IS DISTINCT FROM before_event_ts OR quantity IS DISTINCT FROM before_quantity)"""
    con.sql(f"COPY ({held}) TO '{out}/held.parquet' (FORMAT parquet)")
    changed = con.sql(f"SELECT count(*) FROM read_parquet('{out}/held.parquet')").fetchall()[0][0]
elif parts:
    listed = ", ".join(f"'{p}'" for p in parts)
    new = f"SELECT e.* FROM ({keyed}) e ANTI JOIN read_parquet([{listed}]) s ON e.k = s.k"
    con.sql(f"CREATE TEMP TABLE new AS {new}")
else:
    con.sql(f"CREATE TEMP TABLE new AS {keyed}")
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
    con.sql(
        f"COPY (SELECT k, account_number, uom, event_ts, quantity FROM new) TO '{state}/run-{run:05d}.parquet' (FORMAT parquet)"
    )
print(sent)
if three_way:
    print(changed)
