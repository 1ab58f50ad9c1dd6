//! The test binaries run against the `libpython` of the interpreter they were built for,
//! found through the rpath the build script adds: not another copy on the default library
//! path (Debian's own 3.11, for instance), and with no `LD_LIBRARY_PATH`.

#[test]
fn loaded_libpython_is_the_configured_interpreter() {
    // The same rule pyo3's build uses to pick the interpreter.
    let python = std::env::var("PYO3_PYTHON").unwrap_or_else(|_| "python3".into());
    let output = std::process::Command::new(&python)
        .args(["-c", "import sys; print(sys.version)"])
        .output()
        .expect("the configured interpreter runs");
    let expected = String::from_utf8(output.stdout).unwrap();
    // SAFETY: `Py_GetVersion` returns a static string and may be called at any time.
    let loaded = unsafe { std::ffi::CStr::from_ptr(pyo3_ffi::Py_GetVersion()) };
    assert_eq!(loaded.to_str().unwrap(), expected.trim_end(), "{python}");
}
