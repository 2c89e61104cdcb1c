#!/usr/bin/env python3
"""Two builds of dinmo (or any two commands) timed side by side: A and B run in turn, A B A B
..., after one untimed warm-up each, and the ratio A/B is taken pair by pair, so a machine
whose speed drifts during the call still gives a meaningful ratio. Prints the median wall time
and peak RSS of each, and the median (with min and max) of the pairs' ratios.

    scripts/bench-builds.py --runs 10 \\
        --a 'target/release/dinmo run --project /tmp/dinmo-bench/dinmo -q' \\
        --b '/tmp/dinmo-0.1/dinmo run --project /tmp/dinmo-bench-old/dinmo -q'

`--prepare-a` / `--prepare-b` run (untimed, through the shell) before every run of A / B: to
restore a saved state before an incremental run, for instance. Commands are split as a shell
splits words and run without a shell.
"""
import argparse
import os
import shlex
import statistics
import subprocess
import sys
import time


def timed(argv):
    """Wall seconds and peak RSS (MB) of one run of argv; a failing run stops the benchmark."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - start
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 3):
        sys.exit(f"{argv[0]} exited {code}: {proc.stderr.read().decode(errors='replace')[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


def prepare(command):
    if command:
        subprocess.run(command, shell=True, check=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a", required=True, help="the command measured")
    parser.add_argument("--b", required=True, help="the command it is compared with")
    parser.add_argument("--prepare-a", default="")
    parser.add_argument("--prepare-b", default="")
    parser.add_argument("--runs", type=int, default=8)
    args = parser.parse_args()
    a, b = shlex.split(args.a), shlex.split(args.b)
    for command, before in ((a, args.prepare_a), (b, args.prepare_b)):
        prepare(before)
        timed(command)
    results = {"a": [], "b": []}
    for _ in range(args.runs):
        for name, command, before in (("a", a, args.prepare_a), ("b", b, args.prepare_b)):
            prepare(before)
            results[name].append(timed(command))
    ratios = [ra[0] / rb[0] for ra, rb in zip(results["a"], results["b"])]
    for name in ("a", "b"):
        wall = statistics.median(r[0] for r in results[name])
        rss = statistics.median(r[1] for r in results[name])
        print(f"{name.upper()}  wall {wall:6.2f} s  peak RSS {rss:6.0f} MB")
    print(
        f"A/B wall, median of {len(ratios)} pairs: {statistics.median(ratios):.2f}x "
        f"(min {min(ratios):.2f}x, max {max(ratios):.2f}x)"
    )


if __name__ == "__main__":
    main()
