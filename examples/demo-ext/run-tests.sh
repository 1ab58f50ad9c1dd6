#!/usr/bin/env bash
# Builds the example extension modules (gilguard_minimal from examples/minimal-ext,
# gilguard_pyo3 from examples/pyo3-ext, then gilguard_demo) with maturin and runs their
# pytest suites under each CPython given on the command line, or, with none given, under
# every CPython >= 3.9 that pyenv knows. Each version gets a fresh venv and its own cargo
# target dir under target/demo-ext/ (so versions do not rebuild each other's artifacts; the
# modules share it, and so gilguard's build).
# Each step prints what it runs; the first failure stops the script with a non-zero status.
#
# Usage, from anywhere: bash examples/demo-ext/run-tests.sh [PYTHON ...]
# GILGUARD_EXAMPLES ("dir:module ...") picks the modules; examples/minimal-ext/run-tests.sh
# runs this script for gilguard_minimal alone.
#
# An interpreter without `ensurepip` (Debian's CPython unpacked by
# ../shared/tools/sid-python.sh) gets a venv without pip, into which pip is run from its
# wheel, fetched by the `python3` on PATH.
set -euo pipefail

demo=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$demo/../.." && pwd)
work="$root/target/demo-ext"

step() {
    echo
    echo "==> $*"
    "$@"
}

# Fails unless the extension module leaves libpython to the interpreter that loads it.
check_no_libpython() {
    local so=$1
    ldd "$so"
    if ldd "$so" | grep -q libpython; then
        echo "error: $so links libpython; an extension module must not" >&2
        return 1
    fi
}

# Shared across versions: pip's download cache only.
export PIP_DISABLE_PIP_VERSION_CHECK=1

# Makes the venv `$2` for the interpreter `$1`, with maturin and pytest in it.
make_venv() {
    local python=$1 venv=$2
    if "$python" -m ensurepip --version >/dev/null 2>&1; then
        step "$python" -m venv "$venv"
        step "$venv/bin/python" -m pip install --quiet "maturin>=1.9.4,<2" pytest
        return
    fi
    step "$python" -m venv --without-pip "$venv"
    local wheels="$work/pip-wheel"
    if ! ls "$wheels"/pip-*.whl >/dev/null 2>&1; then
        step python3 -m pip download --quiet --no-deps --dest "$wheels" pip
    fi
    local wheel
    wheel=$(ls "$wheels"/pip-*.whl | head -n 1)
    # A wheel is a zip archive, and pip runs from its own (`python pip.whl/pip`): it
    # installs itself into the venv too, for the steps below.
    step "$venv/bin/python" "$wheel/pip" install --quiet pip "maturin>=1.9.4,<2" pytest
}

pythons=("$@")
if [ ${#pythons[@]} -eq 0 ]; then
    pyenv_root=$(pyenv root)
    installed=$(pyenv versions --bare)
    for version in $installed; do
        case "$version" in
            3.9.* | 3.[1-9][0-9].*) ;;
            *) continue ;;
        esac
        python="$pyenv_root/versions/$version/bin/python3"
        [ -x "$python" ] && pythons+=("$python")
    done
fi
if [ ${#pythons[@]} -eq 0 ]; then
    echo "error: no CPython >= 3.9 to test (none given, and pyenv knows none)" >&2
    exit 1
fi

examples=${GILGUARD_EXAMPLES:-minimal-ext:gilguard_minimal pyo3-ext:gilguard_pyo3 demo-ext:gilguard_demo}
modules=$(for example in $examples; do echo -n "${example#*:} "; done)

tested=()
for python in "${pythons[@]}"; do
    version=$("$python" -c 'import platform; print(platform.python_version())')
    echo
    echo "==> CPython $version"
    dir="$work/$version"
    venv="$dir/venv"
    step rm -rf "$venv" "$dir/wheels"
    make_venv "$python" "$venv"
    for example in $examples; do
        package="$root/examples/${example%%:*}"
        module=${example#*:}
        rm -rf "$dir/wheels"
        # maturin sets PYO3_BUILD_EXTENSION_MODULE, so pyo3-ffi does not link libpython;
        # the ldd check below verifies it.
        step env CARGO_TARGET_DIR="$dir/cargo" "$venv/bin/maturin" build --release \
            --manifest-path "$package/Cargo.toml" --interpreter "$venv/bin/python" \
            --out "$dir/wheels"
        step "$venv/bin/python" -m pip install --quiet --force-reinstall --no-deps "$dir"/wheels/*.whl
        # maturin wraps the extension in a package (gilguard_demo/__init__.py re-exports
        # gilguard_demo.gilguard_demo); older versions install the extension alone.
        so=$("$venv/bin/python" -c "import sys, $module
print(sys.modules.get('$module.$module', $module).__file__)")
        step check_no_libpython "$so"
        # From the package directory, so that pytest reads pyproject.toml; nothing (caches,
        # bytecode) is written into the source tree. `timeout` turns a deadlock into a
        # failure.
        (cd "$package" && step env PYTHONDONTWRITEBYTECODE=1 timeout 600 \
            "$venv/bin/python" -m pytest -p no:cacheprovider -v)
    done
    tested+=("$version")
done

echo
echo "==> ${modules}passed on CPython ${tested[*]}"
