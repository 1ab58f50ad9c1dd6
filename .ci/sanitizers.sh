#!/usr/bin/env bash
# The crate's test suite under AddressSanitizer + LeakSanitizer: unit tests, every
# integration test in tests/ (and the child processes they re-exec), and the doctests,
# built with the stable toolchain's -Zsanitizer=address against the default `python3`.
# Needs nothing from the environment; each step prints what it runs. Exits non-zero if a
# test fails or if any instrumented process, children included, reported a memory error
# or a leak.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

step() {
    echo
    echo "==> $*"
    "$@"
}

# -Zsanitizer is unstable; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept it.
# --target is required with it: without it cargo also applies RUSTFLAGS to build scripts
# and proc-macros, which then fail to load/link without the sanitizer runtime.
target=x86_64-unknown-linux-gnu
export RUSTC_BOOTSTRAP=1
export RUSTFLAGS="-Zsanitizer=address"
export RUSTDOCFLAGS="-Zsanitizer=address"
# Own target dir: sanitized artifacts never mix with the normal ones in target/debug.
export CARGO_TARGET_DIR="$root/target/asan"
# CPython's own allocator (pymalloc) carves objects out of mmap'd arenas, which ASan and
# LSan cannot see into; with PYTHONMALLOC=malloc every Python allocation is a malloc that
# ASan intercepts (libpython's malloc/free bind to the ASan runtime linked into the test
# binary, which the dynamic linker finds first).
export PYTHONMALLOC=malloc

reports="$CARGO_TARGET_DIR/sanitizer-reports"
# ASAN_OPTIONS (inherited by every child process the tests start):
#   detect_leaks=1        run LeakSanitizer at exit (the default on x86_64 Linux; explicit
#                         so that a changed default cannot silently turn it off).
#   log_path=...          write each report to $reports/report.<exe>.<pid> instead of
#                         stderr. A child's stderr is only shown when its test fails, and
#                         not every child's exit status is checked the same way; this
#                         script fails if any report file holds an error.
#   log_exe_name=1        put the test binary's name in the report file name.
# Not set: fast_unwind_on_malloc=0. It records allocation/free stacks with the DWARF
# unwinder, which walks through libpython's frames (built without frame pointers; the
# default frame-pointer unwinder may skip or garble them, though it still reaches the
# Rust caller). Measured, it makes the run 7 minutes instead of 2-3 (tests/shutdown.rs,
# 400 child processes that each start Python, 274 s instead of 44-68 s), while no report
# so far needed it. To read libpython frames in a report, rerun that one test binary by
# hand with ASAN_OPTIONS=fast_unwind_on_malloc=0 and PYTHONMALLOC=malloc.
export ASAN_OPTIONS="detect_leaks=1:log_path=$reports/report:log_exe_name=1"
# LSAN_OPTIONS: the suppressions (CPython-internal allocations only; see the file), and the
# list of suppressions that matched, printed into the same report files.
export LSAN_OPTIONS="suppressions=$root/.ci/lsan.supp:print_suppressions=1"

# The test targets, one --test per file in tests/ (the compile-fail test, trybuild, is a package
# of its own in tests/compile-fail/ and runs no code of the crate; `cargo test` in .ci/run
# covers it), except:
# - stress: run on its own below, without a quarantine.
tests=()
for file in tests/*.rs tests/*/main.rs; do
    [ -e "$file" ] || continue
    case "$file" in
        tests/*/main.rs) name=$(basename "$(dirname "$file")") ;;
        *) name=$(basename "$file" .rs) ;;
    esac
    case "$name" in
        # pyo3: needs the `pyo3` feature; run on its own below.
        stress | pyo3) continue ;;
    esac
    tests+=(--test "$name")
done

rm -rf "$reports"
mkdir -p "$reports"

step cargo --version
step python3 --version
stress=()
[ -e tests/stress.rs ] && stress=(--test stress)
step cargo test --target "$target" --lib "${tests[@]}" "${stress[@]}" --no-run

failed=()
step cargo test --target "$target" --no-fail-fast --lib "${tests[@]}" ||
    failed+=("unit and integration tests")
# tests/stress.rs asserts that resident memory grows by less than 2 MiB over a million
# operations, after a warm-up. ASan keeps freed memory in a quarantine before reusing it
# (256 MiB global plus 1 MiB per thread by default), and the warm-up frees too little to
# fill even a 1 MiB one, so resident memory grows by the quarantine size, up to hundreds
# of MiB (measured: 450 MiB by default, 4 MiB with quarantine_size_mb=1). Without a
# quarantine (quarantine_size_mb=0, which also drops the per-thread one; measured: under
# 200 KiB) the check means what it means without ASan. Freed memory stays poisoned until
# it is reused, so use-after-free is still caught until then; the code paths the test
# drives are also run with the full quarantine by the other tests.
if [ "${#stress[@]}" -gt 0 ]; then
    step env ASAN_OPTIONS="$ASAN_OPTIONS:quarantine_size_mb=0" \
        cargo test --target "$target" "${stress[@]}" || failed+=("tests/stress.rs")
fi
step cargo test --target "$target" --doc || failed+=("doctests")
# `pyo3` and this crate on the same threads, through the `pyo3` feature.
if [ -e tests/pyo3.rs ]; then
    step cargo test --target "$target" --features pyo3 --test pyo3 || failed+=("tests/pyo3.rs")
fi

# Every report written by any process, children included.
echo
echo "==> sanitizer reports in ${reports#"$root"/}"
errors=0
for report in "$reports"/*; do
    [ -e "$report" ] || continue
    if grep -qE "ERROR: (AddressSanitizer|LeakSanitizer)" "$report"; then
        errors=$((errors + 1))
        echo "--- $(basename "$report")"
        cat "$report"
    else
        # No error: the table of matched suppressions, or a warning.
        echo "--- $(basename "$report") (no error)"
        cat "$report"
    fi
done
if [ "$errors" -gt 0 ]; then
    failed+=("$errors process(es) with sanitizer errors")
else
    echo "no sanitizer errors"
fi

if [ "${#failed[@]}" -gt 0 ]; then
    echo
    printf '==> FAILED: %s\n' "${failed[@]}"
    exit 1
fi
echo
echo "==> sanitizers: all tests passed, no memory errors, no leaks"
