#!/usr/bin/env python3
"""What the `stats` feature costs the guards: the paired bench built without and with it,
run in turn.

Both builds come from this tree, in target dirs of their own (target/stats-overhead/off and
.../on). Each round runs one process of each build (`paired --one-run GROUP...`, 1000
interleaved rounds of each group's cases); every case's ratio to its group's raw C API case is
taken within its own process, where the raw case is the same code in both builds. The overhead
of a case is its median ratio with the feature on over its median ratio with it off (and the
same over its median ns/op, which moves with the machine more).

Usage: python3 benches/stats_overhead.py ROUNDS [GROUP ...]
  default groups: detached_acquire nested_acquire release_restore native_thread_callback
  thread_state_handle. PYO3_PYTHON picks the CPython, as for cargo.
"""

import json
import os
import pathlib
import statistics
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
GROUPS = [
    "detached_acquire",
    "nested_acquire",
    "release_restore",
    "native_thread_callback",
    "thread_state_handle",
]
# The cases whose limits the issue sets (the rest are printed too).
LIMITS = {"detached_acquire": 1.5, "release_restore": 1.5, "nested_acquire": 2.0}


def build(features):
    """Builds the paired bench; returns the path of its executable."""
    name = "on" if features else "off"
    env = dict(os.environ, CARGO_TARGET_DIR=str(ROOT / "target" / "stats-overhead" / name))
    command = ["cargo", "bench", "-p", "gilguard-benches", "--bench", "paired", "--no-run",
               "--message-format=json", *features]
    output = subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True,
                            text=True).stdout
    for line in output.splitlines():
        message = json.loads(line)
        if message.get("executable") and message["target"]["name"] == "paired":
            return message["executable"]
    sys.exit(f"no paired bench built by {command}")


def run(binary, groups):
    """One process: {(group, case): (ns per step, ratio to raw)}."""
    lines = subprocess.run([binary, "--one-run", *groups], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.splitlines()
    figures = {}
    for line in lines:  # "group case ns-per-step ratio-to-raw ratio-to-pyo3"
        fields = line.split()
        if len(fields) == 5 and fields[0] in groups:
            figures[(fields[0], fields[1])] = (float(fields[2]), float(fields[3]))
    return figures


def main():
    args = sys.argv[1:]
    if not args or not args[0].isdigit():
        sys.exit(__doc__)
    rounds, groups = int(args[0]), args[1:] or GROUPS
    binaries = {"off": build([]), "on": build(["--features", "stats"])}
    results = {build_: [] for build_ in binaries}
    for round_ in range(rounds):
        for build_, binary in binaries.items():
            print(f"round {round_ + 1} of {rounds}: stats {build_}", file=sys.stderr)
            results[build_].append(run(binary, groups))
    print(f"{rounds} rounds, one process of each build per round\n")
    print("| group | case | off ns | on ns | off vs raw | on vs raw | on / off | limit |")
    print("|---|---|---|---|---|---|---|---|")
    for key in sorted(results["off"][0]):
        group, case = key
        med = {build_: [statistics.median(f[key][i] for f in results[build_]) for i in (0, 1)]
               for build_ in binaries}
        if med["off"][1] == 1.0 and med["on"][1] == 1.0:
            continue  # the raw case itself
        overhead = med["on"][1] / med["off"][1]
        limit = LIMITS.get(group)
        print(f"| {group} | {case} | {med['off'][0]:.2f} | {med['on'][0]:.2f} "
              f"| {med['off'][1]:.3f}x | {med['on'][1]:.3f}x | {overhead:.3f}x "
              f"| {f'{limit}x' if limit else '-'} |")


if __name__ == "__main__":
    main()
