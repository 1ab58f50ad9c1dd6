#!/usr/bin/env bash
# Instructions per acquire/release pair, counted by callgrind, for each guard beside the raw
# C API calls it replaces. Counts repeat exactly where timings do not.
#
# Each figure is (count at 20000 iterations - count at 10000) / 10000, counting only inside
# the scenario loop, so start-up and one-time costs cancel out.
#
# Usage: bash benches/instructions.sh [CARGO ARGS]   (needs valgrind; PYO3_PYTHON picks the
# CPython, as for any cargo command; e.g. `--features stats` counts the guards with the
# feature on)
set -euo pipefail
cd "$(dirname "$0")/.."

binary=$(cargo bench -p gilguard-benches --bench instructions --no-run --message-format=json "$@" 2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    if message.get("executable") and message["target"]["name"] == "instructions":
        print(message["executable"])')

count() {
    valgrind --tool=callgrind --toggle-collect='*measured*' --callgrind-out-file=/dev/null \
        "$binary" "$1" "$2" 2>&1 | sed -n 's/.*refs: *//p' | tr -d ,
}

per_pair() {
    local short long
    short=$(count "$1" 10000)
    long=$(count "$1" 20000)
    echo $(((long - short) / 10000))
}

row() { # guard scenario, raw scenario, description
    local guard raw
    guard=$(per_pair "$1")
    raw=$(per_pair "$2")
    printf '| %s | %s %d | %s %d | %+d |\n' "$3" "\`$1\`" "$guard" "\`$2\`" "$raw" $((guard - raw))
}

"${PYO3_PYTHON:-python3}" -c 'import sys; print("CPython", sys.version.split()[0])' 2>/dev/null || true
echo '| case | guard | raw | extra per pair |'
echo '|---|---|---|---|'
row with_gil raw_gilstate_pair 'detached main thread'
row nested_with_gil raw_nested_gilstate_pair 'nested'
row nested_with_gil_closure raw_nested_gilstate_pair 'nested, closure'
row without_gil raw_save_restore 'release and restore'
row native_with_gil native_raw_reused_thread_state 'native thread'
row native_with_gil native_raw_gilstate_pair 'native thread, vs `PyGILState_*`'
row native_handle_attach native_raw_reused_thread_state 'handle on a native thread'
