#!/usr/bin/env python3
"""Differential test of dinmo's diff against DuckDB's anti-join on the same files.

Each case, from its own seed:
  1. makes a random export: a few days of Parquet files, each written by pyarrow or DuckDB,
     with the drift real exports have (strings plain, dictionary-encoded, large or view;
     integers of several widths; decimals of several shapes; timestamps in every unit, with
     and without a zone; a column that only newer files have; unicode, empty and long values;
     nulls), laid out as real tools write it: `day=` folders, sometimes with the day inside
     the files too (Polars' partition_by), sometimes read through a `day=*/*.parquet` glob,
     sometimes with Spark's INT96 timestamps;
  2. makes a random model from a small SQL grammar (projection, CAST, CASE, COALESCE,
     filters, GROUP BY with sum/count/min/max, date_trunc) that DataFusion and DuckDB both
     read the same way;
  3. syncs the first days with `dinmo run` (a zuora_file destination), then adds the other
     days and runs again;
  4. compares the rows each run sent (`dinmo show RUN --rows`) with DuckDB: the model over the
     first days, then the model over all days anti-joined with it on the primary key. DuckDB
     reads every file itself, casting each column to the type the generator meant;
  5. compares the second run's three-way diff with DuckDB's: the rows of already-synced keys
     whose values differ (a GROUP BY without the day in its key sums more events once the
     later days land) must be exactly the rows dinmo held (`on_change: hold`, exit 3), and the
     keys the model no longer produces (a filter on a later value) its count of gone rows.
Every fourth case also runs a compressed-CSV case (`check_csv_case`): DuckDB writes the days as
gzip or zstd CSV, account numbers with leading zeros, commas and quotes among them; dinmo and
DuckDB each read the same compressed files their own way, and the rows sent must be DuckDB's.
Some cases carry drift that must be refused (a column that is text in one file and numbers in
another, a zone on some files only without `naive_timestamp_zone`); dinmo must exit 1 and name
the column.

Usage:
  differential.py --dinmo PATH [--seed N] [--cases N] [--jobs N] [--max-seconds S]
  differential.py --dinmo PATH --case SEED [--keep DIR]      # replay one case
Regression seeds in regressions.txt (next to this file) run first, every time.
"""

import argparse
import datetime as dt
import decimal
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))
UTC = dt.timezone.utc
BASE_TS = dt.datetime(2026, 11, 1)

# Values a string column draws from: empty, unicode, quotes, a long one.
STRINGS = ["A-001", "A-002", "b", "", "Zoë", "日本語", "naïve café", "x" * 300, "O'Brien", "a,b", "emoji 🚀", "ACC 9"]


class Column:
    """One column of the export: its kind, its values' physical types and its drift."""

    def __init__(self, name, kind, rng, nullable=True):
        self.name = name
        self.kind = kind
        self.nullable = nullable
        self.null_rate = rng.choice([0.0, 0.1, 0.3]) if nullable else 0.0
        self.from_day = 0  # first day whose files have it
        self.hidden = False  # appears only after the first run: the model does not read it
        self.zoned = True  # timestamps: zone on every file
        self.mixed_zone = False  # timestamps: zone on some files only
        self.conflict = False  # text in some files, numbers in others: must be refused
        if kind == "decimal":
            self.shapes = rng.sample([(9, 2), (12, 2), (10, 3), (18, 4)], rng.randint(1, 3))

    def value(self, rng, row):
        if self.null_rate and rng.random() < self.null_rate:
            return None
        k = self.kind
        if k == "str":
            return rng.choice(STRINGS)
        if k == "int":
            return rng.randint(-1000, 1000)
        if k == "uint":
            return rng.randint(0, 200)
        if k == "float":
            return rng.randint(-400, 400) / 4  # exact in float32 too
        if k == "decimal":
            return decimal.Decimal(rng.randint(-99999, 99999)).scaleb(-2)
        if k == "bool":
            return rng.random() < 0.5
        if k == "date":
            return dt.date(2026, 10, 1) + dt.timedelta(days=rng.randint(0, 60))
        if k == "ts":
            return BASE_TS + dt.timedelta(seconds=rng.randint(0, 5 * 86400))
        raise ValueError(k)

    def physical(self, rng, writer):
        """The Arrow type one file holds this column in."""
        k = self.kind
        if k == "str":
            return rng.choice(["plain", "dictionary", "large", "view"] if writer == "pyarrow" else ["plain"])
        if k == "int":
            return rng.choice([pa.int16(), pa.int32(), pa.int64()])
        if k == "uint":
            return rng.choice([pa.uint8(), pa.uint16(), pa.uint32()])
        if k == "float":
            return rng.choice([pa.float32(), pa.float64()])
        if k == "decimal":
            return pa.decimal128(*rng.choice(self.shapes))
        if k == "bool":
            return pa.bool_()
        if k == "date":
            return pa.date32()
        if k == "ts":
            unit = rng.choice(["ms", "us", "ns"] + (["s"] if writer == "pyarrow" else []))
            zoned = self.zoned if not self.mixed_zone else rng.random() < 0.5
            zone = rng.choice(["UTC", "+00:00"]) if zoned else None
            return pa.timestamp(unit, tz=zone)
        raise ValueError(k)

    def duck_type(self):
        return {
            "str": "VARCHAR",
            "int": "BIGINT",
            "uint": "BIGINT",
            "float": "DOUBLE",
            "decimal": "DECIMAL(20, 4)",
            "bool": "BOOLEAN",
            "date": "DATE",
            "ts": "TIMESTAMPTZ" if (self.zoned or self.mixed_zone) else "TIMESTAMP",
        }[self.kind]


def arrow_array(values, physical):
    if physical == "plain":
        return pa.array(values, pa.string())
    if physical == "dictionary":
        return pa.array(values, pa.string()).dictionary_encode()
    if physical == "large":
        return pa.array(values, pa.large_string())
    if physical == "view":
        return pa.array(values, pa.string_view())
    if pa.types.is_timestamp(physical) and physical.tz is not None:
        values = [None if v is None else v.replace(tzinfo=UTC) for v in values]
    return pa.array(values, physical)


class Case:
    def __init__(self, seed):
        self.seed = seed
        rng = random.Random(seed)
        self.rng = rng
        self.days = [f"2026-11-{d:02d}" for d in range(1, rng.randint(2, 4) + 1)]
        self.first_days = rng.randint(1, len(self.days) - 1)
        cols = [
            Column("event_id", "str", rng, nullable=False),
            Column("account", "str", rng),
            Column("ts", "ts", rng, nullable=False),
        ]
        kinds = ["str", "int", "uint", "float", "decimal", "bool", "date", "ts", "int", "decimal"]
        for i in range(rng.randint(2, 5)):
            cols.append(Column(f"c{i}", rng.choice(kinds), rng))
        for c in cols:
            if c.kind == "ts":
                c.zoned = rng.random() < 0.6
                c.mixed_zone = rng.random() < 0.2
        # A column only newer files have.
        late = rng.choice(cols[3:])
        if rng.random() < 0.5:
            late.from_day = rng.randint(1, len(self.days) - 1)
            # A model reads a column once it exists: one that first appears after the first
            # run is only carried along.
            late.hidden = late.from_day >= self.first_days
        self.columns = cols
        self.naive_zone = any(c.mixed_zone for c in cols) and rng.random() < 0.85
        # Drift that must be refused (see `refusals`).
        if rng.random() < 0.06:
            # Text in the last day's files, numbers in an earlier day's.
            victims = [c for c in cols[3:] if c.kind in ("int", "uint") and c.from_day < len(self.days) - 1]
            victim = rng.choice(victims or [None])
            if victim is not None:
                victim.conflict = True
        self.files = []  # (day, name, writer, {column: physical})
        row = 0
        self.data = {}  # (day, name) -> {column: values}
        for d, day in enumerate(self.days):
            for f in range(rng.randint(1, 2)):
                writer = rng.choice(["pyarrow", "duckdb"])
                n = rng.randint(0 if f else 1, 60)
                present = [c for c in cols if c.from_day <= d]
                phys = {c.name: c.physical(rng, writer) for c in present}
                values = {}
                for c in present:
                    if c.name == "event_id":
                        values[c.name] = [f"e{seed % 1000}-{row + i}" + ("é" if (row + i) % 7 == 0 else "") for i in range(n)]
                    else:
                        values[c.name] = [c.value(rng, row + i) for i in range(n)]
                if any(c.conflict for c in present) and d == len(self.days) - 1:
                    for c in present:
                        if c.conflict:
                            phys[c.name] = "plain"
                            values[c.name] = [None if v is None else f"#{v}" for v in values[c.name]]
                row += n
                self.files.append((day, f"part-{f}.parquet", writer, phys))
                self.data[(day, f"part-{f}.parquet")] = values
        self.sql, self.key = self.model(rng)
        # How the export is laid out, from a generator of its own (the draws above stay what
        # regression seeds recorded): the day also inside the files, as Polars' partition_by
        # writes it; a glob with a wildcard in the `day=` folder segment; Spark's INT96 for
        # timestamps (UTC instants) when every timestamp column carries a zone.
        layout = random.Random(seed * 17 + 3)
        self.day_in_files = layout.random() < 0.3
        self.glob = layout.random() < 0.3
        self.int96 = layout.random() < 0.4 and all(c.zoned and not c.mixed_zone for c in cols if c.kind == "ts")

    # ---- the model -------------------------------------------------------------------------
    def cols_of(self, *kinds, nonnull=False):
        return [
            c
            for c in self.columns
            if c.kind in kinds and not c.conflict and not c.hidden and (not nonnull or not c.nullable)
        ]

    def expr(self, rng, kind):
        """A scalar expression of `kind` over the export's columns, or None."""
        opts = self.cols_of(kind)
        if kind == "str":
            strs = self.cols_of("str")
            c = rng.choice(strs).name
            ints = self.cols_of("int", "uint")
            choices = [
                c,
                f"COALESCE({c}, 'none')",
                f"CASE WHEN {c} = '' THEN 'none' ELSE {c} END",
                f"{c} || '/' || day",
                "day",
            ]
            if ints:
                choices.append(f"CAST({rng.choice(ints).name} AS VARCHAR)")
            dates = self.cols_of("date")
            if dates:
                choices.append(f"CAST({rng.choice(dates).name} AS VARCHAR)")
            return rng.choice(choices)
        if kind == "int":
            ints = self.cols_of("int", "uint")
            strs = self.cols_of("str")
            choices = [f"length({rng.choice(strs).name})"]
            if ints:
                c = rng.choice(ints).name
                choices += [c, f"{c} + 1", f"COALESCE({c}, 0)", f"CASE WHEN {c} > 10 THEN {c} ELSE 0 END", f"CAST({c} AS BIGINT)"]
            return rng.choice(choices)
        if not opts:
            return None
        c = rng.choice(opts).name
        if kind == "decimal":
            return rng.choice([c, f"{c} * 2", f"COALESCE({c}, 0)"])
        if kind == "float":
            return rng.choice([c, f"{c} * 2"])
        if kind == "bool":
            return rng.choice([c, f"NOT {c}", f"COALESCE({c}, false)"])
        if kind == "date":
            return rng.choice([c, "CAST(ts AS DATE)"])
        if kind == "ts":
            return rng.choice([c, f"date_trunc('day', {c})", f"date_trunc('hour', {c})"])
        return None

    def filter(self, rng):
        choices = ["account <> ''", "account IS NOT NULL", "ts >= TIMESTAMP '2026-11-02 00:00:00'", f"day <= '{self.days[-1]}'"]
        for c in self.cols_of("int", "uint"):
            choices.append(f"{c.name} > {rng.randint(-500, 150)}")
        for c in self.cols_of("decimal"):
            choices.append(f"{c.name} > 10")
        for c in self.cols_of("bool"):
            choices.append(f"{c.name}")
        for c in self.cols_of("str"):
            choices.append(f"{c.name} IS NOT NULL")
        return rng.choice(choices)

    def model(self, rng):
        """The model's SQL (what DuckDB runs too) and primary key; sets `self.out`, the output
        columns with their kinds."""
        where = f" WHERE {self.filter(rng)}" if rng.random() < 0.6 else ""
        if rng.random() < 0.5:
            out = [("event_id", "k", "str")]
            for i in range(rng.randint(1, 5)):
                kind = rng.choice(["str", "int", "decimal", "float", "bool", "date", "ts"])
                e = self.expr(rng, kind)
                if e is not None:
                    out.append((e, f"v{i}", "int" if kind == "uint" else kind))
            self.out = [(alias, kind) for _e, alias, kind in out]
            select = ", ".join(f"{e} AS {alias}" for e, alias, _k in out)
            return f"SELECT {select} FROM events{where}", ["k"]
        candidates = [
            ("COALESCE(account, 'none')", "str"),
            ("date_trunc('day', ts)", "ts"),
            ("day", "str"),
            ("CASE WHEN account = '' THEN 'none' ELSE COALESCE(account, 'null') END", "str"),
        ]
        for c in self.cols_of("int", "uint"):
            candidates.append((f"COALESCE({c.name}, -1)", "int"))
        for c in self.cols_of("bool"):
            candidates.append((f"COALESCE({c.name}, false)", "bool"))
        for c in self.cols_of("date"):
            candidates.append((f"COALESCE({c.name}, DATE '2000-01-01')", "date"))
        for c in self.cols_of("decimal"):
            candidates.append((f"COALESCE({c.name}, 0)", "decimal"))
        groups = rng.sample(candidates, rng.randint(1, min(3, len(candidates))))
        if rng.random() < 0.08:
            # A key that may be null: dinmo must refuse the run and count the rows as DuckDB does.
            groups[0] = ("account", "str")
        aggs = [("count(*)", "n", "int")]
        for c in self.columns:
            if c.conflict or c.hidden or c.name == "event_id":
                continue
            kind = "int" if c.kind == "uint" else c.kind
            if kind in ("int", "decimal", "float") and rng.random() < 0.5:
                aggs.append((f"sum({c.name})", f"sum_{c.name}", kind))
            if kind in ("str", "date", "ts", "int") and rng.random() < 0.3:
                aggs.append((f"{rng.choice(['min', 'max'])}({c.name})", f"mm_{c.name}", kind))
            if rng.random() < 0.2:
                aggs.append((f"count({c.name})", f"n_{c.name}", "int"))
        out = [(g, f"g{i}", kind) for i, (g, kind) in enumerate(groups)] + aggs
        self.out = [(alias, kind) for _e, alias, kind in out]
        select = ", ".join(f"{e} AS {alias}" for e, alias, _k in out)
        group_by = ", ".join(g for g, _k in groups)
        return f"SELECT {select} FROM events{where} GROUP BY {group_by}", [f"g{i}" for i in range(len(groups))]

    def dinmo_sql(self):
        """The model dinmo runs: the same query, plus each column as a destination field can
        carry it (usage files' custom fields take text or integers) and the usage fields."""
        carriers = []
        for alias, kind in self.out:
            if kind == "str":
                carriers.append(f"{alias} AS zc_{alias}")
            elif kind == "int":
                carriers.append(f"CAST({alias} AS BIGINT) AS zc_{alias}")
            elif kind == "ts":
                carriers.append(f"to_unixtime({alias}) AS zc_{alias}")
            else:
                carriers.append(f"CAST({alias} AS VARCHAR) AS zc_{alias}")
        consts = "'ACC-1' AS zz_acct, 'UNIT' AS zz_uom, TIMESTAMP '2026-11-01 00:00:00' AS zz_start, 1 AS zz_qty"
        return f"WITH m AS ({self.sql}) SELECT *, {', '.join(carriers)}, {consts} FROM m"

    # ---- files -------------------------------------------------------------------------------
    def write_day(self, root, day):
        for entry in self.files:
            if entry[0] == day:
                self.write_file(root, entry)

    def write_file(self, root, entry):
        day, name, writer, phys = entry
        folder = os.path.join(root, "data", "events", f"day={day}")
        os.makedirs(folder, exist_ok=True)
        values = self.data[(day, name)]
        table = pa.table({c: arrow_array(values[c], phys[c]) for c in values})
        if self.day_in_files:
            table = table.append_column("day", pa.array([day] * table.num_rows, pa.string()))
        path = os.path.join(folder, name)
        if writer == "pyarrow" and self.int96:
            # As Spark writes: INT96 timestamps, no Arrow schema in the footer.
            pq.write_table(table, path, use_deprecated_int96_timestamps=True, store_schema=False)
        elif writer == "pyarrow":
            pq.write_table(table, path, compression=self.rng.choice(["snappy", "zstd", "none"]))
        else:
            con = duckdb.connect()
            con.register("t", table)
            con.execute(f"COPY (SELECT * FROM t) TO '{path}' (FORMAT parquet)")
            con.close()

    def restate(self, root):
        """Sometimes, after the first run, a day already synced is restated: one of its files is
        rewritten with other values in a quarter of its rows (an upstream correction), so rows
        already synced change their values, and keys may go or come."""
        rng = random.Random(self.seed * 31 + 7)
        if rng.random() >= 0.4:
            return False
        first = self.days[: self.first_days]
        entries = [e for e in self.files if e[0] in first and self.data[(e[0], e[1])]["event_id"]]
        if not entries:
            return False
        day, name, writer, phys = rng.choice(entries)
        values = self.data[(day, name)]
        n = len(values["event_id"])
        rows = rng.sample(range(n), max(1, n // 4))
        for c in self.columns:
            if c.name == "event_id" or c.name not in values or c.conflict:
                continue
            for r in rows:
                if rng.random() < 0.7:
                    values[c.name][r] = c.value(rng, r)
        self.write_file(root, (day, name, writer, phys))
        return True

    def project(self, root):
        options = "\n    options:\n      naive_timestamp_zone: UTC" if self.naive_zone else ""
        with open(os.path.join(root, "dinmo.yml"), "w") as f:
            f.write(
                f"name: differential\nsources:\n  events:\n    location: data/events/{'day=*/*.parquet' if self.glob else ''}{options}\n"
                "destinations:\n  files:\n    type: zuora_file\n    path: out\n"
            )
        os.makedirs(os.path.join(root, "models"), exist_ok=True)
        with open(os.path.join(root, "models", "m.yml"), "w") as f:
            f.write(
                "model: m\nsql: " + json.dumps(self.dinmo_sql()) + "\nprimary_key: " + json.dumps(self.key) + "\n"
                "syncs:\n  - destination: files\n    max_new_rows: 100000000\n    mapping:\n"
                "      AccountNumber: zz_acct\n      UnitOfMeasure: zz_uom\n      StartDateTime: zz_start\n      Quantity: zz_qty\n"
                # Every model column rides along as a custom field, so the sent rows carry it.
                + "".join(f"      CustomFields.{c}: zc_{c}\n" for c, _kind in self.out)
            )

    # ---- DuckDB's side -----------------------------------------------------------------------
    def duck(self, days):
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        parts = []
        root = self.root
        for (day, name, _writer, phys) in self.files:
            if day not in days:
                continue
            path = os.path.join(root, "data", "events", f"day={day}", name)
            select = []
            for c in self.columns:
                if c.name in phys:
                    select.append(f"CAST({c.name} AS {c.duck_type()}) AS {c.name}")
                else:
                    select.append(f"CAST(NULL AS {c.duck_type()}) AS {c.name}")
            select.append(f"'{day}' AS day")
            parts.append(f"SELECT {', '.join(select)} FROM read_parquet('{path}')")
        con.execute("CREATE VIEW events AS " + " UNION ALL ".join(parts))
        return con

    def refusals(self, days):
        """The columns dinmo must refuse to unify over the files of `days`: text in some files
        and numbers in others; a zone on some files only, without `naive_timestamp_zone`."""
        found = set()
        for c in self.columns:
            physical = [phys[c.name] for (day, _n, _w, phys) in self.files if day in days and c.name in phys]
            if c.conflict and "plain" in physical and any(p != "plain" for p in physical):
                found.add(c.name)
            if c.kind == "ts" and not self.naive_zone and len({p.tz is None for p in physical}) == 2:
                found.add(c.name)
        return found

    def null_keys(self, days):
        """Rows of the model over `days` whose primary key has a null, by DuckDB."""
        con = self.duck(days)
        nulls = " OR ".join(f"{k} IS NULL" for k in self.key)
        return con.execute(f"SELECT count(*) FROM ({self.sql}) WHERE {nulls}").fetchone()[0]

    def synced(self):
        """DuckDB's side of the first run: the model over the first days, as they are now."""
        return self.duck(self.days[: self.first_days]).sql(self.sql).to_arrow_table()

    def expected(self, a):
        """DuckDB's side of the second run, given `a` (what the first run sent, `synced`): the
        rows of the model over all days whose key `a` lacks (new), the keys of both whose
        values differ (changed), and how many of `a`'s keys the model lacks now (gone)."""
        con_all = self.duck(self.days)
        con_all.register("synced", a)
        keys = " AND ".join(f"m.{k} = s.{k}" for k in self.key)
        new = con_all.sql(f"SELECT m.* FROM ({self.sql}) m WHERE NOT EXISTS (SELECT 1 FROM synced s WHERE {keys})").to_arrow_table()
        both = con_all.sql(self.sql).to_arrow_table()
        columns = [alias for alias, _kind in self.out]
        before, after = keyed(a, self.key, columns), keyed(both, self.key, columns)
        changed = {k for k in before.keys() & after.keys() if before[k] != after[k]}
        gone = len(before.keys() - after.keys())
        return new, changed, gone


def normal(value):
    """A value in one form whichever engine produced it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, (int, decimal.Decimal)):
        d = decimal.Decimal(value)
        return ("n", "0" if d == 0 else format(d.normalize(), "f"))
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 2**53:
            return ("n", str(int(value)))
        return ("n", f"{value:.12g}")
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return ("t", value.isoformat())
    if isinstance(value, dt.date):
        return ("d", value.isoformat())
    return ("s", str(value))


def carried(value, kind):
    """A value as dinmo's carrier column holds it, in `normal`'s form."""
    if value is None:
        return None
    if kind == "ts":
        return ("t", dt.datetime.fromtimestamp(int(value), UTC).replace(tzinfo=None).isoformat())
    if kind == "bool":
        return ("b", {"true": True, "false": False}[value])
    if kind == "date":
        return ("d", value)
    if kind == "float":
        return normal(float(value))
    if kind in ("int", "decimal"):
        return normal(decimal.Decimal(value))
    return ("s", value)


def dinmo_rows(table, out):
    data = table.select([f"CustomFields.{alias}" for alias, _k in out]).to_pylist()
    return sorted(
        (tuple(carried(row[f"CustomFields.{alias}"], kind) for alias, kind in out) for row in data), key=repr
    )


def rows_of(table, columns):
    out = []
    for i in range(table.num_columns):
        if pa.types.is_timestamp(table.schema.field(i).type) and table.schema.field(i).type.unit == "ns":
            table = table.set_column(i, table.schema.field(i).name, table.column(i).cast(pa.timestamp("us", tz=table.schema.field(i).type.tz)))
    data = table.select(columns).to_pylist()
    for row in data:
        out.append(tuple(normal(row[c]) for c in columns))
    return sorted(out, key=repr)


def keyed(table, key, columns):
    """Each row's values in `normal`'s form, by its primary key's."""
    rows = {}
    for i in range(table.num_columns):
        if pa.types.is_timestamp(table.schema.field(i).type) and table.schema.field(i).type.unit == "ns":
            table = table.set_column(i, table.schema.field(i).name, table.column(i).cast(pa.timestamp("us", tz=table.schema.field(i).type.tz)))
    for row in table.to_pylist():
        rows[tuple(normal(row[k]) for k in key)] = tuple(normal(row[c]) for c in columns)
    return rows


def run(cmd, cwd, timeout=120):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def sent_rows(dinmo, root, run_out):
    """The rows the run of `dinmo run --format json` output `run_out` sent, as a table."""
    report = json.loads(run_out)
    run_id = report["run_id"]
    rows_dir = os.path.join(root, "rows", run_id)
    shown = run([dinmo, "show", run_id, "--rows", rows_dir, "--rows-format", "parquet", "-q"], root)
    if shown.returncode != 0:
        raise Failure(f"dinmo show failed: {shown.stderr}")
    path = os.path.join(rows_dir, "m.files.sent.parquet")
    if not os.path.exists(path):
        return None
    return pq.read_table(path)


def held_rows(root, run_out):
    """The rows the run held, from the files `sent_rows` had `dinmo show` write."""
    run_id = json.loads(run_out)["run_id"]
    path = os.path.join(root, "rows", run_id, "m.files.held.parquet")
    return pq.read_table(path) if os.path.exists(path) else None


class Failure(Exception):
    pass


def check_case(dinmo, seed, keep=None):
    case = Case(seed)
    root = keep or tempfile.mkdtemp(prefix=f"dinmo-diff-{seed}-")
    case.root = root
    try:
        case.project(root)
        for day in case.days[: case.first_days]:
            case.write_day(root, day)
        first = run([dinmo, "run", "--format", "json", "-q"], root)
        refused = check_refusals(case, first, case.days[: case.first_days], "first")
        if refused:
            return refused
        want_a = case.synced()
        restated = case.restate(root)
        for day in case.days[case.first_days :]:
            case.write_day(root, day)
        second = run([dinmo, "run", "--format", "json", "-q"], root)
        want_new, want_changed, want_gone = case.expected(want_a)
        refused = check_refusals(case, second, case.days, "second", (0, 3))
        if refused:
            return refused
        columns = [alias for alias, _kind in case.out]
        compared = []
        for label, out, want in (("first run", first.stdout, want_a), ("second run", second.stdout, want_new)):
            got = sent_rows(dinmo, root, out)
            got_rows = [] if got is None else dinmo_rows(got, case.out)
            want_rows = rows_of(want, columns)
            if got_rows != want_rows:
                only_got = [r for r in got_rows if r not in want_rows][:5]
                only_want = [r for r in want_rows if r not in got_rows][:5]
                raise Failure(
                    f"{label}: dinmo sent {len(got_rows)} row(s), DuckDB expects {len(want_rows)}\n"
                    f"  columns: {columns}\n  only dinmo: {only_got}\n  only DuckDB: {only_want}"
                )
            compared.append(len(want_rows))
        check_three_way(case, root, second.stdout, want_changed, want_gone)
        held = json.loads(second.stdout)["syncs"][0]["held_rows"]
        if second.returncode != (3 if held else 0):
            raise Failure(f"second run: exit {second.returncode} with {held} held row(s) (3 when any is held, else 0)")
        return (
            f"{len(columns)} columns; rows compared: {compared[0]} in the first run, {compared[1]} in the second; "
            f"{len(want_changed)} changed, {want_gone} gone{', a synced day restated' if restated else ''}"
        )
    except Failure as failure:
        raise Failure(f"{failure}\n  sql: {case.sql}\n  files: {[(d, n, w, {k: str(v) for k, v in p.items()}) for d, n, w, p in case.files]}") from None
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)


def check_three_way(case, root, run_out, want_changed, want_gone):
    """The second run's changed rows (held) and gone count against DuckDB's. dinmo compares
    the values it sends exactly; DuckDB's side compares floats to 12 significant digits (a
    float sum may differ in its last bits with the order rows are added), so dinmo may hold a
    row more than DuckDB only where nothing but a float column differs."""
    report = json.loads(run_out)["syncs"][0]
    if report["gone_rows"] != want_gone:
        raise Failure(f"second run: dinmo counts {report['gone_rows']} gone row(s), DuckDB {want_gone}")
    held = held_rows(root, run_out)
    got = {}
    if held is not None:
        kinds = dict(case.out)
        for row in held.to_pylist():
            key = tuple(carried(row[f"CustomFields.{c}"], kinds[c]) for c in case.key)
            changed = [
                c for c, _kind in case.out
                if row[f"CustomFields.{c}"] != row[f"before_CustomFields.{c}"]
                and carried(row[f"CustomFields.{c}"], kinds[c]) != carried(row[f"before_CustomFields.{c}"], kinds[c])
            ]
            got[key] = changed
    if report["changed_rows"] != len(got) or report["held_rows"] != len(got):
        raise Failure(f"second run: {report['changed_rows']} changed, {report['held_rows']} held, {len(got)} rows in the held part")
    missing = [k for k in want_changed if k not in got]
    extra = [k for k in got if k not in want_changed and any(dict(case.out)[c] != "float" for c in got[k])]
    if missing or extra:
        raise Failure(
            f"second run: dinmo held {len(got)} changed row(s), DuckDB finds {len(want_changed)}\n"
            f"  only DuckDB: {missing[:5]}\n  only dinmo (beyond float noise): {[(k, got[k]) for k in extra[:5]]}"
        )


def check_refusals(case, proc, days, label, success=(0,)):
    """When `days` hold drift dinmo must refuse, or a null primary key, checks that the run was
    refused for it and returns what was checked; otherwise checks the run succeeded."""
    columns = case.refusals(days)
    if columns:
        if proc.returncode != 1:
            raise Failure(f"{label} run: expected a refusal naming {sorted(columns)}, got exit {proc.returncode}:\n{proc.stderr}{proc.stdout}")
        missing = [c for c in sorted(columns) if f"column `{c}`" not in proc.stderr]
        if missing:
            raise Failure(f"{label} run: the refusal does not name {missing}:\n{proc.stderr}")
        return f"{label} run refused as expected ({', '.join(sorted(columns))})"
    null_keys = case.null_keys(days)
    if null_keys:
        want = f"is null in {null_keys} row(s)"
        if proc.returncode != 1 or want not in proc.stderr:
            raise Failure(f"{label} run: expected exit 1 and `{want}` (DuckDB's count), got exit {proc.returncode}:\n{proc.stderr}")
        return f"{label} run: null key refused ({null_keys} rows)"
    if proc.returncode not in success:
        raise Failure(f"{label} `dinmo run` exited {proc.returncode}, expected {success}:\n{proc.stderr}{proc.stdout}")
    return None


def check_csv_case(dinmo, seed, keep=None):
    """Compressed CSV, as a warehouse unload writes it (DuckDB's COPY with gzip or zstd): a
    few days of `day=` folders of event rows (account numbers with leading zeros among them),
    a model that sums them per account and day, two runs; the rows each run sent must be
    DuckDB's model over the same compressed files (its own CSV reading), anti-joined with what
    the first run covered."""
    rng = random.Random(seed * 7 + 1)
    compression, extension = rng.choice([("gzip", "csv.gz"), ("zstd", "csv.zst")])
    days = [f"2026-11-{d:02d}" for d in range(1, rng.randint(2, 4) + 1)]
    first = rng.randint(1, len(days) - 1)
    accounts = [f"{n:07d}" for n in rng.sample(range(1, 3000), 6)] + ["A-001", "Zoë", "a,b", 'say "hi"']
    root = keep or tempfile.mkdtemp(prefix=f"dinmo-csv-{seed}-")
    try:
        with open(os.path.join(root, "dinmo.yml"), "w") as f:
            f.write(
                "name: csv\nsources:\n  events:\n    location: data/events/\n    format: csv\n"
                "destinations:\n  files:\n    type: zuora_file\n    path: out\n    layout: active_rating\n"
            )
        os.makedirs(os.path.join(root, "models"), exist_ok=True)
        with open(os.path.join(root, "models", "m.yml"), "w") as f:
            f.write(
                "model: m\nsql: " + json.dumps(
                    "SELECT account, CAST(day AS VARCHAR) AS day, sum(qty) AS qty, count(*) AS n "
                    "FROM events GROUP BY account, day"
                ) + "\nprimary_key: [account, day]\nsyncs:\n  - destination: files\n    mapping:\n"
                "      AccountNumber: account\n      UnitOfMeasure: day\n      StartDateTime: day\n"
                "      Quantity: qty\n      Description: n\n"
            )
        con = duckdb.connect()

        def write(day):
            folder = os.path.join(root, "data", "events", f"day={day}")
            os.makedirs(folder, exist_ok=True)
            n = rng.randint(1, 40)
            rows = [(rng.choice(accounts), rng.randint(0, 500)) for _ in range(n)]
            con.execute("CREATE OR REPLACE TABLE t (account VARCHAR, qty BIGINT)")
            con.executemany("INSERT INTO t VALUES (?, ?)", rows)
            con.execute(f"COPY t TO '{folder}/part-0.{extension}' (HEADER, COMPRESSION {compression})")

        def expected(upto):
            return {
                (account, day): (qty, n)
                for account, day, qty, n in con.execute(
                    f"SELECT account, CAST(day AS VARCHAR), sum(qty), count(*) FROM read_csv('{root}/data/events/*/*.{extension}', "
                    # The dialect COPY wrote, given: DuckDB's sniffer can miss the quoting of a
                    # file whose only quoted field is one with quotes (`"say ""hi"""`).
                    "hive_partitioning = true, hive_types = {'day': VARCHAR}, delim = ',', quote = '\"', "
                    "escape = '\"', header = true) "
                    f"WHERE day <= '{days[upto - 1]}' GROUP BY ALL"
                ).fetchall()
            }

        def sent():
            rows = {}
            out = os.path.join(root, "out")
            for folder, _, files in os.walk(out):
                for name in files:
                    with open(os.path.join(folder, name), newline="") as f:
                        import csv as csvlib
                        for row in csvlib.DictReader(f):
                            key = (row["AccountNumber"], row["UnitOfMeasure"])
                            if key in rows:
                                raise Failure(f"csv case {seed}: {key} sent twice")
                            rows[key] = (int(row["Quantity"]), int(row["Description"]))
            return rows

        for day in days[:first]:
            write(day)
        proc = run([dinmo, "run", "-q"], root)
        if proc.returncode != 0:
            raise Failure(f"csv case {seed}: first run exited {proc.returncode}:\n{proc.stderr}")
        want = expected(first)
        if sent() != want:
            raise Failure(f"csv case {seed}: first run sent {sorted(sent().items())[:5]}…, DuckDB {sorted(want.items())[:5]}…")
        for day in days[first:]:
            write(day)
        proc = run([dinmo, "run", "-q"], root)
        if proc.returncode != 0:
            raise Failure(f"csv case {seed}: second run exited {proc.returncode}:\n{proc.stderr}")
        want = expected(len(days))
        got = sent()
        if got != want:
            missing = sorted(set(want.items()) - set(got.items()))[:5]
            extra = sorted(set(got.items()) - set(want.items()))[:5]
            raise Failure(f"csv case {seed}: after both runs, DuckDB has but dinmo did not send {missing}; dinmo sent {extra}")
        return f"csv rows compared: {len(got)}"
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dinmo", required=True)
    parser.add_argument("--seed", type=int, default=20261121)
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--max-seconds", type=float, default=0, help="stop starting cases after this long (0: no limit)")
    parser.add_argument("--case", type=int, help="replay one case seed")
    parser.add_argument("--keep", help="with --case: keep the case's project in this folder")
    args = parser.parse_args()
    dinmo = os.path.abspath(args.dinmo)
    here = os.path.relpath(__file__)
    if args.case is not None:
        if args.keep:
            os.makedirs(args.keep, exist_ok=True)
        try:
            print(f"case {args.case}: ok ({check_case(dinmo, args.case, args.keep)})")
        except Failure as failure:
            print(f"case {args.case}: FAILED\n{failure}")
            return 1
        return 0
    regressions = []
    path = os.path.join(HERE, "regressions.txt")
    if os.path.exists(path):
        for line in open(path):
            line = line.split("#")[0].strip()
            if line:
                regressions.append(int(line))
    master = random.Random(args.seed)
    seeds = regressions + [master.randrange(1, 2**40) for _ in range(args.cases)]
    start = time.monotonic()
    failures = []
    done = [0]
    skipped = [0]
    outcomes = {"compared": 0, "refused": 0, "null key": 0, "csv": 0}
    rows = [0]
    three = [0, 0, 0]  # cases with changed rows, with gone rows, with a restated day
    lock = threading.Lock()

    def one(seed):
        if args.max_seconds and time.monotonic() - start > args.max_seconds:
            with lock:
                skipped[0] += 1
            return
        try:
            if seed % 4 == 0:
                check_csv_case(dinmo, seed)
                with lock:
                    outcomes["csv"] += 1
            result = check_case(dinmo, seed)
            with lock:
                if "null key" in result:
                    outcomes["null key"] += 1
                elif "refused" in result:
                    outcomes["refused"] += 1
                else:
                    outcomes["compared"] += 1
                    compared, three_way = result.split("rows compared: ")[1].split(";", 1)
                    rows[0] += sum(int(n) for n in compared.split() if n.isdigit())
                    changed, gone = (int(part.split()[0]) for part in three_way.split(",")[:2])
                    three[0] += changed > 0
                    three[1] += gone > 0
                    three[2] += "restated" in three_way
        except Exception as error:  # noqa: BLE001 - every failure is reported with its seed
            with lock:
                failures.append((seed, error))
        with lock:
            done[0] += 1

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(one, seeds))
    took = time.monotonic() - start
    print(f"differential: {done[0]} case(s) in {took:.0f} s ({len(regressions)} regression seeds, base seed {args.seed}), "
          f"{len(failures)} failed, {skipped[0]} not started (time limit)")
    print(f"  {outcomes['compared']} compared with DuckDB ({rows[0]} rows), {outcomes['refused']} drift refusals and "
          f"{outcomes['null key']} null-key refusals checked; {outcomes['csv']} compressed-CSV case(s) compared")
    print(f"  three-way diff: {three[0]} case(s) with changed rows, {three[1]} with gone rows, {three[2]} with a synced day restated")
    for seed, error in failures[:10]:
        print(f"\ncase {seed} FAILED: {error}\n  replay: python3 {here} --dinmo {args.dinmo} --case {seed} --keep /tmp/case-{seed}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
