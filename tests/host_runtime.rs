//! A runtime the host started (here with `pyo3`'s `Python::initialize`), in which this
//! crate registers its Python callbacks (`atexit`, after fork) lazily, from whatever context
//! first needs them. Each scenario runs in a child process, with a runtime of its own.

mod common;

use gilguard::{Interpreter, with_gil};

#[test]
fn the_first_handle_keeps_a_pending_exception() {
    common::run_child("child_first_handle_with_a_pending_exception");
}

#[test]
#[ignore = "runs in a child process, started by the_first_handle_keeps_a_pending_exception"]
fn child_first_handle_with_a_pending_exception() {
    pyo3::Python::initialize();
    with_gil(|| {
        let callbacks = || common::eval_str("__import__('atexit')._ncallbacks()");
        let before: u32 = callbacks().parse().unwrap();
        // SAFETY: attached; sets the error indicator, as a failing C call would.
        unsafe {
            pyo3_ffi::PyErr_SetString(pyo3_ffi::PyExc_ValueError, c"pending".as_ptr());
        }
        // Registering the callbacks runs Python code; the caller's exception must survive
        // it, and must not make the registration fail.
        let main = Interpreter::main().unwrap();
        // SAFETY: the main interpreter outlives the handle.
        let handle = unsafe { main.thread_state() }.unwrap();
        // SAFETY: attached; reads and clears the error indicator.
        let pending = unsafe {
            let matches = pyo3_ffi::PyErr_ExceptionMatches(pyo3_ffi::PyExc_ValueError) == 1;
            pyo3_ffi::PyErr_Clear();
            matches
        };
        assert!(pending, "the caller's exception was lost");
        drop(handle);
        // The shutdown callback was registered (`os.register_at_fork` keeps its callbacks
        // out of reach; `tests/fork.rs` checks that one).
        assert_eq!(callbacks(), (before + 1).to_string());
    });
}
