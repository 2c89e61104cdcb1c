#!/usr/bin/env python3
"""Writes the example project's warehouse exports with pyarrow (deterministic).

exports/events/day=2026-11-18/ and day=2026-11-19/ are the "warehouse" on day one;
next_day/events/day=2026-11-20/ is the export that lands the day after, and
next_day/late_events/day=2026-11-19/ late events for a day already synced (the warehouse
restating yesterday). Run from models/.
"""
import datetime as dt
import decimal
import pathlib
import random

import pyarrow as pa
import pyarrow.parquet as pq

ACCOUNTS = [f"A{n:08d}" for n in range(1, 13)]
SCHEMA = pa.schema([
    ("event_id", pa.string()),
    ("account_number", pa.dictionary(pa.int16(), pa.string())),
    ("event_type", pa.dictionary(pa.int8(), pa.string())),
    ("ts", pa.timestamp("us", tz="UTC")),
    ("storage_gb", pa.decimal128(12, 3)),
])


def day_events(day: dt.date, rng: random.Random):
    rows = []
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)
    for account in ACCOUNTS:
        for i in range(rng.randint(5, 40)):
            ts = start + dt.timedelta(seconds=rng.randint(0, 86399))
            rows.append((f"{day:%Y%m%d}-{account}-call-{i}", account, "api_call", ts, None))
        gb = decimal.Decimal(rng.randint(1000, 500000)) / 1000
        rows.append((f"{day:%Y%m%d}-{account}-storage", account, "storage_snapshot", start + dt.timedelta(hours=23), gb))
    return to_table(rows)


def to_table(rows):
    """Events (id, account, type, time, GB) as a table of SCHEMA, in time order."""
    rows.sort(key=lambda r: r[3])
    cols = list(zip(*rows))
    return pa.table([
        pa.array(cols[0], pa.string()),
        pa.array(cols[1], pa.string()).dictionary_encode().cast(SCHEMA.field("account_number").type),
        pa.array(cols[2], pa.string()).dictionary_encode().cast(SCHEMA.field("event_type").type),
        pa.array(cols[3], SCHEMA.field("ts").type),
        pa.array(cols[4], SCHEMA.field("storage_gb").type),
    ], schema=SCHEMA)


def late_events():
    """Twenty API calls that arrive late for 2026-11-19, spread over the accounts."""
    rng = random.Random(20261119)
    day = dt.date(2026, 11, 19)
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)
    rows = []
    for i in range(20):
        account = rng.choice(ACCOUNTS)
        rows.append((f"{day:%Y%m%d}-{account}-late-{i}", account, "api_call", start + dt.timedelta(seconds=rng.randint(0, 86399)), None))
    table = to_table(rows)
    out = pathlib.Path("next_day") / "late_events" / f"day={day:%Y-%m-%d}"
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out / "part-late.parquet")


def main():
    rng = random.Random(20261118)
    for folder, day in [("exports", dt.date(2026, 11, 18)), ("exports", dt.date(2026, 11, 19)), ("next_day", dt.date(2026, 11, 20))]:
        out = pathlib.Path(folder) / "events" / f"day={day:%Y-%m-%d}"
        out.mkdir(parents=True, exist_ok=True)
        pq.write_table(day_events(day, rng), out / "part-0.parquet")
    late_events()


if __name__ == "__main__":
    main()
