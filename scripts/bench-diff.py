#!/usr/bin/env python3
"""The diff benchmark: dinmo against a DuckDB script doing the same work on the same files.

Run it through scripts/bench-diff.sh (which builds dinmo in release and checks DuckDB is
installed). Every scenario alternates dinmo and DuckDB runs and prints medians of wall time and
peak RSS (os.wait4's ru_maxrss of the process itself), and their ratio.

Scenarios (DAYS x ROWS_PER_DAY usage events, 5 columns, a `zuora_file` destination):
  first        every day, empty snapshot
  incremental  every day synced, one more day new
  noop         every day and the extra one synced, nothing new
  history      a no-op after HISTORY_RUNS runs of HISTORY_ROWS rows each, against a no-op on a
               state holding the same rows from one run (dinmo's ratio to itself, and
               DuckDB's to itself on the same data)
  changed      every day synced, then 1 % of the rows restated (their quantity raised): the
               three-way diff finds them and holds them with their values before and after
               (`on_change: hold`); DuckDB left-joins on the key, compares the mapped columns
               and writes the changed rows with before and after

Two DuckDB scripts do the same work on the same files, in every scenario. The lean one
(bench-diff-duckdb-lean.py) is the script a data engineer would write: anti-join on the
primary key itself, the new rows streamed into the CSV, keys kept as Parquet (in the changed
scenario, with the values sent, and the changed rows found by one join on the key). The other (bench-diff-duckdb.py) does what dinmo does besides: read the exports, check
the primary key, compute a 32-hex-digit key (md5 of the sync id and the key), anti-join against
the keys already sent (Parquet files, one per run), write the new rows as usage CSV with the
same columns, then store the new keys.
"""

import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DINMO = os.environ["DINMO_BIN"]
WORK = os.environ.get("BENCH_DIR") or "/tmp/dinmo-bench"
DAYS = int(os.environ.get("DAYS", "10"))
ROWS_PER_DAY = int(os.environ.get("ROWS_PER_DAY", "1000000"))
REPS = int(os.environ.get("REPS", "3"))
HISTORY_RUNS = int(os.environ.get("HISTORY_RUNS", "365"))
HISTORY_ROWS = int(os.environ.get("HISTORY_ROWS", "2000"))
SCENARIOS = os.environ.get("SCENARIOS", "first incremental noop changed history").split()
DINMO_ENV = {k: v for k, v in os.environ.items()}


def run_measured(argv, env=None, cwd=None, ok=(0,)):
    """Runs argv and returns (seconds, peak RSS MB, stdout, MB written), reaping with wait4 for
    the RSS; an exit code not in `ok` stops the benchmark. MB written is the process's `wchar`
    (every byte it handed to write(2), files deleted before the end included), read from
    /proc/<pid>/io after it exited and before it is reaped; None where there is no /proc."""
    start = time.monotonic()
    out_path = os.path.join(WORK, "stdout.txt")
    err_path = os.path.join(WORK, "stderr.txt")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=cwd)
        written = None
        try:
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
            with open(f"/proc/{proc.pid}/io") as io:
                fields = dict(line.split(": ") for line in io.read().splitlines())
            written = int(fields["wchar"]) / 1e6
        except (AttributeError, OSError, KeyError, ValueError):
            pass
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - start
    code = os.waitstatus_to_exitcode(status)
    text = open(out_path, encoding="utf-8", errors="replace").read()
    if code not in ok:
        sys.stderr.write(open(err_path, encoding="utf-8", errors="replace").read()[-4000:])
        sys.stderr.write(text[-2000:])
        raise SystemExit(f"{' '.join(argv[:3])} failed with exit {code}")
    return seconds, usage.ru_maxrss / 1024.0, text, written


def generate(folder, days, rows, first_day=0, prefix="evt", restated=False):
    """DAYS hive folders of ROWS events each, written by DuckDB; `restated`: the same events,
    with every hundredth one's quantity raised by 0.01."""
    import duckdb

    con = duckdb.connect()
    for day in range(first_day, first_day + days):
        date = f"DATE '2026-01-01' + INTERVAL {day} DAY"
        out = os.path.join(folder, f"day={day:04d}")
        os.makedirs(out, exist_ok=True)
        con.sql(
            f"""COPY (
                SELECT '{prefix}-{day:04d}-' || lpad(i::VARCHAR, 8, '0') AS event_id,
                       'A' || lpad((hash(i * 31 + {day}) % 5000)::VARCHAR, 8, '0') AS account_number,
                       'API_CALL' AS uom,
                       ((hash(i + {day}) % 100000) + {"CASE WHEN i % 100 = 0 THEN 1 ELSE 0 END" if restated else "0"})::DECIMAL(18, 4) / 100 AS quantity,
                       ({date})::TIMESTAMP + to_seconds((i % 86400)::BIGINT) AS event_ts
                FROM range({rows}) t(i)
            ) TO '{out}/part-0.parquet' (FORMAT parquet)"""
        )


def dinmo_project(folder, events):
    os.makedirs(os.path.join(folder, "models"), exist_ok=True)
    with open(os.path.join(folder, "dinmo.yml"), "w") as f:
        f.write(
            f"""name: bench
model-paths: [models]
state: state
target-path: target
sources:
  events:
    location: {events}/
    format: parquet
destinations:
  usage:
    type: zuora_file
    path: out
    layout: active_rating
"""
        )
    with open(os.path.join(folder, "models", "usage.yml"), "w") as f:
        f.write(
            """model: usage
sql: SELECT event_id, account_number, uom, quantity, event_ts FROM events
primary_key: [event_id]
syncs:
  - destination: usage
    mapping:
      AccountNumber: account_number
      UnitOfMeasure: uom
      StartDateTime: event_ts
      Quantity: quantity
"""
        )


DUCKDB_SCRIPT = os.path.join(ROOT, "scripts", "bench-diff-duckdb.py")
LEAN_SCRIPT = os.path.join(ROOT, "scripts", "bench-diff-duckdb-lean.py")


def dinmo_run(project, held=False):
    """(seconds, peak RSS MB, rows sent, MB written), or with `held` the rows held instead of
    sent."""
    # Exit 3 when rows are held, as they are in the restated scenario.
    seconds, rss, out, written = run_measured(
        [DINMO, "run", "--project", project], env=DINMO_ENV, ok=(0, 3) if held else (0,)
    )
    found = re.search(r"(\d+) changed or gone row\(s\) held" if held else r"sent (\d+) row", out)
    return seconds, rss, int(found.group(1)) if found else -1, written


def duckdb_run(events, state, out, three_way=False, script=DUCKDB_SCRIPT):
    """(seconds, peak RSS MB, rows sent, MB written), or with `three_way` the rows changed
    instead of sent."""
    argv = [sys.executable, script, events, state, out] + (["--three-way"] if three_way else [])
    seconds, rss, text, written = run_measured(argv)
    return seconds, rss, int(text.strip().splitlines()[-1]), written


def reset(path):
    shutil.rmtree(path, ignore_errors=True)


def restore(saved, path):
    reset(path)
    if os.path.exists(saved):
        shutil.copytree(saved, path)


def median(values):
    return statistics.median(values)


RESULTS = []


def report(name, d, k, expected, lean=None):
    """One scenario's medians; with `lean`, the lean DuckDB script's too, and the ratio to the
    faster of the two DuckDB scripts."""
    ds, dr, dn, dw = zip(*d)
    ks, kr, kn, kw = zip(*k)
    contestants = [("dinmo", dn), ("duckdb", kn)]
    if lean:
        ls, lr, ln, lw = zip(*lean)
        contestants.append(("duckdb-lean", ln))
    for label, sent in contestants:
        if any(n != expected for n in sent):
            raise SystemExit(f"{name}: {label} sent {sent}, expected {expected} each time")
    row = {
        "scenario": name,
        "rows_sent": expected,
        "dinmo_s": round(median(ds), 2),
        "duckdb_s": round(median(ks), 2),
        "ratio": round(median(ds) / median(ks), 2),
        "dinmo_rss_mb": round(median(dr)),
        "duckdb_rss_mb": round(median(kr)),
        "runs": len(ds),
    }
    if None not in dw + kw:
        row["dinmo_written_mb"] = round(median(dw))
        row["duckdb_written_mb"] = round(median(kw))
        if expected:
            row["dinmo_written_bytes_per_row"] = round(median(dw) * 1e6 / expected, 1)
    if lean:
        row["lean_s"] = round(median(ls), 2)
        row["lean_rss_mb"] = round(median(lr))
        row["ratio_to_faster"] = round(median(ds) / min(median(ks), median(ls)), 2)
        row["ratios_to_faster"] = [round(a / min(b, c), 2) for a, b, c in zip(ds, ks, ls)]
        if None not in lw:
            row["lean_written_mb"] = round(median(lw))
    RESULTS.append(row)
    print(
        f"{name:12} sent {expected:>10,}  dinmo {row['dinmo_s']:7.2f} s  duckdb {row['duckdb_s']:7.2f} s  "
        f"ratio {row['ratio']:5.2f}x  peak RSS {row['dinmo_rss_mb']:>5} / {row['duckdb_rss_mb']:>5} MB"
        + (
            f"  written {row['dinmo_written_mb']:,} / {row['duckdb_written_mb']:,}"
            + (f" / {row['lean_written_mb']:,} (lean)" if "lean_written_mb" in row else "")
            + " MB"
            if "dinmo_written_mb" in row
            else ""
        ),
        flush=True,
    )
    if lean:
        print(
            f"{'':12} lean DuckDB {row['lean_s']:7.2f} s ({row['lean_rss_mb']} MB): dinmo {row['ratio_to_faster']:5.2f}x "
            f"the faster DuckDB script (run by run: {', '.join(f'{r:.2f}' for r in row['ratios_to_faster'])})",
            flush=True,
        )


def main():
    os.makedirs(WORK, exist_ok=True)
    data = os.path.join(WORK, "data")
    marker = os.path.join(data, f"generated-{DAYS}x{ROWS_PER_DAY}")
    if not os.path.exists(marker):
        reset(data)
        t = time.monotonic()
        generate(os.path.join(data, "events"), DAYS, ROWS_PER_DAY)
        generate(os.path.join(data, "extra"), 1, ROWS_PER_DAY, first_day=DAYS)
        open(marker, "w").close()
        print(f"generated {DAYS} x {ROWS_PER_DAY:,} rows (+1 day) with DuckDB in {time.monotonic() - t:.1f} s")
    events = os.path.join(data, "events")
    total = DAYS * ROWS_PER_DAY
    print(f"dinmo: {DINMO}\n{os.cpu_count()} cores; medians of {REPS} alternating runs", flush=True)

    project = os.path.join(WORK, "dinmo")
    dstate = os.path.join(WORK, "duckdb-state")
    dout = os.path.join(WORK, "duckdb-out")
    saved_d = os.path.join(WORK, "saved-dinmo-state")
    saved_k = os.path.join(WORK, "saved-duckdb-state")
    need = set(SCENARIOS)

    # first: an empty snapshot each time.
    lstate = os.path.join(WORK, "lean-state")
    lout = os.path.join(WORK, "lean-out")
    saved_l = os.path.join(WORK, "saved-lean-state")
    d, k, lean = [], [], []
    reps = REPS if "first" in need else 1
    for _ in range(reps):
        reset(project)
        dinmo_project(project, events)
        d.append(dinmo_run(project))
        reset(dstate)
        reset(dout)
        k.append(duckdb_run(events, dstate, dout))
        reset(lstate)
        reset(lout)
        lean.append(duckdb_run(events, lstate, lout, script=LEAN_SCRIPT))
    if "first" in need:
        report("first", d, k, total, lean)
    restore(os.path.join(project, "state"), saved_d)
    restore(dstate, saved_k)
    restore(lstate, saved_l)

    # incremental: the extra day appears in the source.
    extra_src = os.path.join(data, "extra", f"day={DAYS:04d}")
    extra_dst = os.path.join(events, f"day={DAYS:04d}")
    shutil.rmtree(extra_dst, ignore_errors=True)
    shutil.copytree(extra_src, extra_dst)
    try:
        d, k, lean = [], [], []
        for _ in range(REPS if "incremental" in need else 1):
            restore(saved_d, os.path.join(project, "state"))
            reset(os.path.join(project, "out"))
            d.append(dinmo_run(project))
            restore(saved_k, dstate)
            reset(dout)
            k.append(duckdb_run(events, dstate, dout))
            restore(saved_l, lstate)
            reset(lout)
            lean.append(duckdb_run(events, lstate, lout, script=LEAN_SCRIPT))
        if "incremental" in need:
            report("incremental", d, k, ROWS_PER_DAY, lean)

        # noop: everything synced.
        if "noop" in need:
            d, k, lean = [], [], []
            for _ in range(REPS):
                d.append(dinmo_run(project))
                k.append(duckdb_run(events, dstate, dout))
                lean.append(duckdb_run(events, lstate, lout, script=LEAN_SCRIPT))
            report("noop", d, k, 0, lean)
    finally:
        shutil.rmtree(extra_dst, ignore_errors=True)

    if "changed" in need:
        changed(data, events, total, saved_d, saved_k)
    if "history" in need:
        history()
    with open(os.path.join(WORK, "results.json"), "w") as f:
        json.dump(RESULTS, f, indent=2)


def changed(data, events, total, saved_d, saved_k):
    """The first run's state, then the same days with 1 % of the rows restated."""
    restated = os.path.join(data, "restated")
    marker = os.path.join(data, f"restated-{DAYS}x{ROWS_PER_DAY}")
    if not os.path.exists(marker):
        reset(restated)
        generate(restated, DAYS, ROWS_PER_DAY, restated=True)
        open(marker, "w").close()
    project = os.path.join(WORK, "dinmo-restated")
    dstate = os.path.join(WORK, "duckdb-restated-state")
    dout = os.path.join(WORK, "duckdb-restated-out")
    expected = DAYS * ((ROWS_PER_DAY + 99) // 100)
    # The lean script's first run, keeping the values sent (untimed).
    saved_l = os.path.join(WORK, "saved-lean-values-state")
    lstate = os.path.join(WORK, "lean-restated-state")
    lout = os.path.join(WORK, "lean-restated-out")
    reset(saved_l)
    reset(lout)
    first = duckdb_run(events, saved_l, lout, three_way=True, script=LEAN_SCRIPT)
    if first[2] != 0:
        raise SystemExit(f"changed: the lean script's first run found {first[2]} changed rows")
    d, k, lean = [], [], []
    for _ in range(REPS):
        reset(project)
        dinmo_project(project, restated)
        restore(saved_d, os.path.join(project, "state"))
        d.append(dinmo_run(project, held=True))
        restore(saved_k, dstate)
        reset(dout)
        k.append(duckdb_run(restated, dstate, dout, three_way=True))
        restore(saved_l, lstate)
        reset(lout)
        lean.append(duckdb_run(restated, lstate, lout, three_way=True, script=LEAN_SCRIPT))
    report("changed", d, k, expected, lean)


def history():
    """HISTORY_RUNS runs of HISTORY_ROWS rows, then a no-op, against one run of them all."""
    base = os.path.join(WORK, "history")
    days = os.path.join(base, "days")
    if not os.path.exists(os.path.join(base, f"generated-{HISTORY_RUNS}x{HISTORY_ROWS}")):
        reset(base)
        generate(days, HISTORY_RUNS, HISTORY_ROWS, prefix="h")
        open(os.path.join(base, f"generated-{HISTORY_RUNS}x{HISTORY_ROWS}"), "w").close()
    growing = os.path.join(base, "growing")
    many = os.path.join(base, "many")
    one = os.path.join(base, "one")
    kmany, kone = os.path.join(base, "k-many"), os.path.join(base, "k-one")
    lmany, lone = os.path.join(base, "l-many"), os.path.join(base, "l-one")
    for p in (growing, many, one, kmany, kone, lmany, lone):
        reset(p)
    dinmo_project(many, growing)
    t = time.monotonic()
    for day in sorted(os.listdir(days)):
        if not day.startswith("day="):
            continue
        shutil.copytree(os.path.join(days, day), os.path.join(growing, day))
        dinmo_run(many)
        duckdb_run(growing, kmany, os.path.join(base, "k-out"))
        duckdb_run(growing, lmany, os.path.join(base, "l-out"), script=LEAN_SCRIPT)
    print(f"history: {HISTORY_RUNS} runs of {HISTORY_ROWS:,} rows built in {time.monotonic() - t:.0f} s", flush=True)
    dinmo_project(one, growing)
    dinmo_run(one)
    duckdb_run(growing, kone, os.path.join(base, "k-out"))
    duckdb_run(growing, lone, os.path.join(base, "l-out"), script=LEAN_SCRIPT)
    objects = sum(len(files) for _, _, files in os.walk(os.path.join(many, "state")))
    single = sum(len(files) for _, _, files in os.walk(os.path.join(one, "state")))
    dm, do, km, ko, lm, lo = [], [], [], [], [], []
    for _ in range(max(REPS, 5)):
        dm.append(dinmo_run(many))
        do.append(dinmo_run(one))
        km.append(duckdb_run(growing, kmany, os.path.join(base, "k-out")))
        ko.append(duckdb_run(growing, kone, os.path.join(base, "k-out")))
        lm.append(duckdb_run(growing, lmany, os.path.join(base, "l-out"), script=LEAN_SCRIPT))
        lo.append(duckdb_run(growing, lone, os.path.join(base, "l-out"), script=LEAN_SCRIPT))
    report("history", dm, km, 0, lm)
    many_s, one_s = median([x[0] for x in dm]), median([x[0] for x in do])
    kmany_s, kone_s = median([x[0] for x in km]), median([x[0] for x in ko])
    lmany_s, lone_s = median([x[0] for x in lm]), median([x[0] for x in lo])
    row = {
        "scenario": "history-vs-one-run",
        "state_objects_many": objects,
        "state_objects_one": single,
        "dinmo_many_s": round(many_s, 3),
        "dinmo_one_s": round(one_s, 3),
        "dinmo_ratio": round(many_s / one_s, 2),
        "duckdb_many_s": round(kmany_s, 3),
        "duckdb_one_s": round(kone_s, 3),
        "duckdb_ratio": round(kmany_s / kone_s, 2),
        "lean_many_s": round(lmany_s, 3),
        "lean_one_s": round(lone_s, 3),
        "lean_ratio": round(lmany_s / lone_s, 2),
    }
    RESULTS.append(row)
    print(
        f"history     no-op after {HISTORY_RUNS} runs {many_s:.3f} s vs one run {one_s:.3f} s: "
        f"{row['dinmo_ratio']:.2f}x ({objects} vs {single} state objects); "
        f"DuckDB {kmany_s:.3f} s vs {kone_s:.3f} s: {row['duckdb_ratio']:.2f}x; "
        f"lean DuckDB {lmany_s:.3f} s vs {lone_s:.3f} s: {row['lean_ratio']:.2f}x",
        flush=True,
    )


if __name__ == "__main__":
    main()
