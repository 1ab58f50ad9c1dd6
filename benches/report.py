#!/usr/bin/env python3
"""Runs the `guards` criterion bench several times and prints the criterion tables of
docs/performance-log.md: time per operation and the ratio to the raw C API calls and to pyo3.

Each run's figure for a bench is criterion's median; the table gives the median of the runs
and the spread (lowest and highest run) of each ratio. Ratios are taken within one run, so
that drift of the machine between runs cancels out.

A virtual machine's neighbours slow it down in bursts shorter than one bench, which moved
the ratio of two benches' medians by up to 1.7x from one run to the next on a 2-vCPU VM. The last column
therefore also gives each ratio of the lower deciles of criterion's samples (the time per
iteration that 10 of its 100 samples beat), which the bursts reach only when they cover
nearly the whole bench.

Usage: python3 benches/report.py [RUNS]    (default 7; about 100 s per run)
Extra cargo arguments can be given with the CARGO_BENCH_ARGS environment variable.
"""

import json
import os
import pathlib
import shlex
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Absolute: criterion resolves CARGO_TARGET_DIR from the bench package's folder (benches/).
TARGET = ROOT / os.environ.get("CARGO_TARGET_DIR", "target")
CRITERION = TARGET / "criterion"

# Per group: the raw C API case the guards are measured against, and the pyo3 case.
BASELINES = {
    "detached_acquire": ("raw_gilstate_pair", "pyo3_attach"),
    "nested_acquire": ("raw_gilstate_pair", "pyo3_attach"),
    "nested_acquire_foreign": ("raw_gilstate_pair", "pyo3_attach"),
    "release_restore": ("raw_save_restore", "pyo3_detach"),
    "gil_guard_sequence": ("single_guards", None),
    "native_thread_callback": ("raw_reused_thread_state", "pyo3_attach"),
    "thread_state_handle": ("raw_restore_save", None),
    "once_get": ("std_once_lock_get", "pyo3_once_lock_get"),
    "lock_detached": ("std_mutex_lock", "pyo3_lock_py_attached"),
}


def one_run():
    """Runs the bench once; returns {group: {bench: (median ns, lower-decile ns)}}."""
    extra = shlex.split(os.environ.get("CARGO_BENCH_ARGS", ""))
    started = time.time()
    subprocess.run(
        ["cargo", "bench", "-p", "gilguard-benches", "--bench", "guards", *extra],
        cwd=ROOT,
        env=dict(os.environ, CARGO_TARGET_DIR=str(TARGET)),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    figures = {}
    for group in BASELINES:
        for estimates in (CRITERION / group).glob("*/new/estimates.json"):
            if estimates.stat().st_mtime < started:
                continue  # a bench that no longer exists
            bench = estimates.parent.parent.name
            median = json.loads(estimates.read_text())["median"]["point_estimate"]
            samples = json.loads((estimates.parent / "sample.json").read_text())
            per_iteration = [t / n for t, n in zip(samples["times"], samples["iters"])]
            lower_decile = statistics.quantiles(per_iteration, n=10)[0]
            figures.setdefault(group, {})[bench] = (median, lower_decile)
    return figures


MEDIAN, LOWER_DECILE = 0, 1  # the two figures one_run gives per bench


def ratios(results, group, bench, baseline, statistic):
    """The ratio of `bench` to `baseline` in each run, by one of the two figures."""
    return [
        result[group][bench][statistic] / result[group][baseline][statistic]
        for result in results
    ]


def ratio_cell(values):
    middle = statistics.median(values)
    return f"{middle:.2f}x ({min(values):.2f}-{max(values):.2f})"


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    results = []
    for run in range(runs):
        print(f"run {run + 1} of {runs}", file=sys.stderr)
        results.append(one_run())
    print(f"{runs} runs; ratio cells: median (lowest-highest run)\n")
    print("| group | bench | ns/op | vs raw | vs pyo3 | vs raw, lower deciles |")
    print("|---|---|---|---|---|---|")
    for group, (raw, pyo3) in BASELINES.items():
        benches = sorted(results[0].get(group, {}))
        for bench in benches:
            times = [result[group][bench][MEDIAN] for result in results]
            to_pyo3 = (
                ratio_cell(ratios(results, group, bench, pyo3, MEDIAN)) if pyo3 else "-"
            )
            print(
                f"| {group} | {bench} | {statistics.median(times):.1f} "
                f"| {ratio_cell(ratios(results, group, bench, raw, MEDIAN))} | {to_pyo3} "
                f"| {ratio_cell(ratios(results, group, bench, raw, LOWER_DECILE))} |"
            )


if __name__ == "__main__":
    main()
