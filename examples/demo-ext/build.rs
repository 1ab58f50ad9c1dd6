//! Exposes the `Py_3_12` / `Py_3_13` cfgs of the interpreter the module is built for.
//!
//! Nothing here links `libpython`: an extension module takes the symbols from the
//! interpreter that loads it. `maturin` tells `pyo3-ffi` so (`PYO3_BUILD_EXTENSION_MODULE`).
fn main() {
    pyo3_build_config::use_pyo3_cfgs();
}
