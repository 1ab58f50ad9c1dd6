#!/usr/bin/env bash
# Builds gilguard_minimal with maturin and runs its pytest suite under each CPython given on
# the command line (or every CPython >= 3.9 that pyenv knows): the demo's script, for this
# module alone. CI runs both modules through examples/demo-ext/run-tests.sh.
#
# Usage, from anywhere: bash examples/minimal-ext/run-tests.sh [PYTHON ...]
set -euo pipefail
GILGUARD_EXAMPLES=minimal-ext:gilguard_minimal \
    exec bash "$(dirname "$0")/../demo-ext/run-tests.sh" "$@"
