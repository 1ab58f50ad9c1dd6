//! Exposes the `Py_3_*` / `Py_GIL_DISABLED` cfgs of the configured interpreter to this crate,
//! and gives this package's own binaries (tests, examples, benches) an rpath to the
//! `libpython` they were linked against, so they start without `LD_LIBRARY_PATH` and never
//! pick up another copy of the library (Debian's system Python, for instance).
//!
//! It also refuses, with one clear error, the builds this crate cannot support: the stable ABI
//! (`abi3`, the limited API) and implementations other than CPython. Without this check they
//! fail with a dozen `E0425` errors about thread-state functions that `pyo3-ffi` does not
//! declare there.

use pyo3_build_config::{InterpreterConfig, PythonAbiKind, PythonImplementation};

fn main() {
    let config = pyo3_build_config::get();
    if let Some(reason) = unsupported(config) {
        // `cargo::error` (Cargo 1.84+, below this crate's MSRV) fails the build with this line.
        println!(
            "cargo::error=gilguard needs CPython's full (non-limited) C API, but {reason}. \
             gilguard calls CPython thread-state and interpreter-state functions that neither the \
             limited API nor other implementations provide (PyThreadState_DeleteCurrent, \
             PyThreadState_Next, PyInterpreterState_Main, ...); build it for a CPython 3.9+ \
             without the stable ABI (README.md, \"Supported Pythons\")."
        );
        return;
    }
    pyo3_build_config::use_pyo3_cfgs();
    pyo3_build_config::add_libpython_rpath_link_args();
}

/// Why `config` (the interpreter `pyo3-ffi` was configured for) cannot build this crate.
fn unsupported(config: &InterpreterConfig) -> Option<String> {
    let abi = config.target_abi();
    let implementation = abi.implementation();
    if implementation != PythonImplementation::CPython {
        return Some(format!(
            "pyo3-ffi is configured for {implementation} {}",
            abi.version()
        ));
    }
    if let PythonAbiKind::Stable(stable) = abi.kind() {
        return Some(format!(
            "pyo3-ffi is built for the stable ABI ({stable}, the limited API), which an `abi3*` \
             feature of pyo3 or pyo3-ffi enables for the whole build"
        ));
    }
    None
}
