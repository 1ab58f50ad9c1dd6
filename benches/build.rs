//! The configured interpreter's `Py_3_*` cfgs for the benches, and an rpath to the `libpython`
//! they link, as the crate's own build script gives its tests and examples.

fn main() {
    pyo3_build_config::use_pyo3_cfgs();
    pyo3_build_config::add_libpython_rpath_link_args();
}
