//! Exposes the `Py_3_*` / `Py_GIL_DISABLED` cfgs of the configured interpreter to this crate,
//! and gives this package's own binaries (tests, examples, benches) an rpath to the
//! `libpython` they were linked against, so they start without `LD_LIBRARY_PATH` and never
//! pick up another copy of the library (Debian's system Python, for instance).
fn main() {
    pyo3_build_config::use_pyo3_cfgs();
    pyo3_build_config::add_libpython_rpath_link_args();
}
