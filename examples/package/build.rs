//! The configured interpreter's `Py_3_*` cfgs for the examples (`cfg!(Py_3_12)` picks
//! per-interpreter GILs), and an rpath to the `libpython` they link, so that they start
//! without `LD_LIBRARY_PATH`, as the crate's own build script gives its tests.

fn main() {
    pyo3_build_config::use_pyo3_cfgs();
    pyo3_build_config::add_libpython_rpath_link_args();
}
