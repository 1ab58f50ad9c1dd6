#!/usr/bin/env python3
"""Compares git revisions of this crate on one group of the `guards` bench, in turn.

Nanosecond benches move with code layout and with the machine's state, so two revisions
measured minutes apart, or in separate reports, cannot be compared to a few percent. This
builds each revision in its own worktree (under target/compare/), then runs the group once
per revision per round, alternating, and prints each bench's median time and its ratio to
the group's raw C API case (median and spread over the rounds).

With --paired, each round runs one process of `benches/paired.rs` instead (1000 interleaved
rounds of the group's cases, about 2 s), which gives ratios that repeat to about 1% on
virtual machines where criterion's move by tens of percent (docs/performance-log.md); the
ratio cells are then the paired bench's own, per process.

Usage: python3 benches/compare.py [--paired] GROUP ROUNDS REV [REV ...]
  e.g. python3 benches/compare.py nested_acquire 3 HEAD~1 HEAD
A REV of "." is the working tree as it is. PYO3_PYTHON picks the CPython, as for cargo;
each CPython gets its own target directory inside each worktree.
"""

import json
import os
import pathlib
import statistics
import subprocess
import sys

from report import BASELINES  # the groups and their raw cases, as in the report

ROOT = pathlib.Path(__file__).resolve().parent.parent
WORKTREES = ROOT / "target" / "compare"


def checkout(rev):
    """A directory holding `rev` (the working tree itself for ".")."""
    if rev == ".":
        return ROOT
    commit = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=ROOT, check=True,
        capture_output=True, text=True,
    ).stdout.strip()
    tree = WORKTREES / commit
    if not tree.exists():
        WORKTREES.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(tree), commit], cwd=ROOT,
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    return tree


def python_version():
    python = os.environ.get("PYO3_PYTHON", "python3")
    return subprocess.run(
        [python, "-c", "import sys; print(sys.version.split()[0])"], check=True,
        capture_output=True, text=True,
    ).stdout.strip()


# Asked once: every build and run of this invocation uses the same CPython.
PYTHON_VERSION = python_version()


def target_dir(tree):
    return tree / "target" / f"compare-python-{PYTHON_VERSION}"


def bench_command(tree, bench):
    """`cargo bench` of `bench` in `tree`: in the `gilguard-benches` package where the benches
    are one (benches/Cargo.toml), in the crate itself in older revisions."""
    package = ["-p", "gilguard-benches"] if (tree / "benches" / "Cargo.toml").exists() else []
    return ["cargo", "bench", *package, "--bench", bench]


def run_paired(tree, group):
    """Runs one process of the paired bench for `group` in `tree`; returns
    {bench: (ns per step, ratio to the raw case)}."""
    env = dict(os.environ, CARGO_TARGET_DIR=str(target_dir(tree)))
    lines = subprocess.run(
        [*bench_command(tree, "paired"), "--", "--one-run", group], cwd=tree, env=env,
        check=True, capture_output=True, text=True,
    ).stdout.splitlines()
    figures = {}
    for line in lines:  # "group case ns-per-step ratio-to-raw ratio-to-pyo3"
        fields = line.split()
        if len(fields) == 5 and fields[0] == group:
            figures[fields[1]] = (float(fields[2]), float(fields[3]))
    return figures


def run_group(tree, group):
    """Runs `group` once in `tree`; returns {bench: median ns}."""
    env = dict(os.environ, CARGO_TARGET_DIR=str(target_dir(tree)))
    subprocess.run(
        [*bench_command(tree, "guards"), "--", f"^{group}/"], cwd=tree, env=env,
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    figures = {}
    for estimates in (target_dir(tree) / "criterion" / group).glob("*/new/estimates.json"):
        figures[estimates.parent.parent.name] = json.loads(estimates.read_text())[
            "median"
        ]["point_estimate"]
    return figures


def main():
    args = sys.argv[1:]
    paired = args[:1] == ["--paired"]
    if paired:
        args = args[1:]
    if len(args) < 3 or args[0] not in BASELINES:
        sys.exit(__doc__)
    group, rounds, revs = args[0], int(args[1]), args[2:]
    bench = "paired" if paired else "guards"
    trees = {rev: checkout(rev) for rev in revs}
    for rev, tree in trees.items():
        print(f"building {rev}", file=sys.stderr)
        env = dict(os.environ, CARGO_TARGET_DIR=str(target_dir(tree)))
        subprocess.run(
            [*bench_command(tree, bench), "--no-run"], cwd=tree, env=env,
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    raw = BASELINES[group][0]
    results = {rev: [] for rev in revs}
    for round_ in range(rounds):
        for rev, tree in trees.items():
            print(f"round {round_ + 1} of {rounds}: {rev}", file=sys.stderr)
            if paired:
                results[rev].append(run_paired(tree, group))
            else:
                medians = run_group(tree, group)
                results[rev].append(
                    {case: (ns, ns / medians[raw]) for case, ns in medians.items()}
                )
    print(f"{group}, {rounds} rounds; ratio cells: median (lowest-highest round)\n")
    print("| revision | bench | ns/op | vs raw |")
    print("|---|---|---|---|")
    for rev in revs:
        for bench in sorted(results[rev][0]):
            times = [figures[bench][0] for figures in results[rev]]
            ratios = [figures[bench][1] for figures in results[rev]]
            print(
                f"| {rev} | {bench} | {statistics.median(times):.2f} "
                f"| {statistics.median(ratios):.3f}x ({min(ratios):.3f}-{max(ratios):.3f}) |"
            )


if __name__ == "__main__":
    main()
