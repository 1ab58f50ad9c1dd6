//! A runtime the host started (here with `pyo3`'s `Python::initialize`), in which this
//! crate registers its Python callbacks (`atexit`, after fork) lazily, from whatever context
//! first needs them. Each scenario runs in a child process, with a runtime of its own.

mod common;

use gilguard::sync::InterpreterOnceLock;
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

/// A runtime the host finalizes and starts again is another runtime: a value cached for its
/// main interpreter (whose address repeats from 3.12) is not returned in the next one, even
/// when this crate was used only through `with_gil` nested in the host's own attachment.
#[test]
fn a_per_interpreter_value_does_not_survive_the_hosts_reinitialization() {
    common::run_child("child_per_interpreter_value_across_reinitialization");
}

#[test]
#[ignore = "runs in a child process, started by a_per_interpreter_value_does_not_survive_the_hosts_reinitialization"]
fn child_per_interpreter_value_across_reinitialization() {
    static CACHE: InterpreterOnceLock<u32> = InterpreterOnceLock::new();
    // SAFETY: a host that starts Python on this thread and stays attached.
    unsafe { pyo3_ffi::Py_InitializeEx(0) };
    with_gil(|| assert_eq!(*CACHE.get_or_init(|| 1), 1));
    // SAFETY: the host finalizes and starts again, attached throughout; nothing of this
    // crate is alive on this thread.
    unsafe {
        assert_eq!(pyo3_ffi::Py_FinalizeEx(), 0);
        pyo3_ffi::Py_InitializeEx(0);
    }
    with_gil(|| {
        assert_eq!(
            CACHE.get(),
            None,
            "a value of the finalized runtime was returned"
        );
        assert_eq!(*CACHE.get_or_init(|| 2), 2);
    });
}

/// An exception taken in a sub-interpreter that Python (here: the host, with the raw C API)
/// made is never restored into a later runtime, where sub-interpreter ids start again at 1
/// (it was freed with its runtime). Needs 3.12+, where this crate recognizes a thread state
/// it did not attach as this thread's.
#[cfg(Py_3_12)]
#[test]
fn an_exception_of_a_finalized_runtime_is_not_restored() {
    common::run_child("child_exception_across_reinitialization");
}

#[cfg(Py_3_12)]
#[test]
#[ignore = "runs in a child process, started by an_exception_of_a_finalized_runtime_is_not_restored"]
fn child_exception_across_reinitialization() {
    use gilguard::{GilError, PythonException};

    /// The host makes a sub-interpreter and attaches its first thread state (the main one
    /// is swapped out); returns the id.
    fn new_sub() -> (*mut pyo3_ffi::PyThreadState, i64) {
        // SAFETY: attached to the main interpreter, as `Py_NewInterpreter` needs.
        unsafe {
            let sub = pyo3_ffi::Py_NewInterpreter();
            assert!(!sub.is_null());
            (
                sub,
                pyo3_ffi::PyInterpreterState_GetID(pyo3_ffi::PyThreadState_GetInterpreter(sub)),
            )
        }
    }

    // SAFETY: a host that starts Python on this thread and stays attached.
    let main = unsafe {
        pyo3_ffi::Py_InitializeEx(0);
        pyo3_ffi::PyThreadState_Get()
    };
    let (sub, id) = new_sub();
    // SAFETY: attached to the sub-interpreter; the type is static, the message a literal.
    unsafe { pyo3_ffi::PyErr_SetString(pyo3_ffi::PyExc_ValueError, c"in runtime 1".as_ptr()) };
    let exception = PythonException::take().unwrap().expect("taken");
    // SAFETY: the host ends its sub-interpreter and goes back to the main one, finalizes
    // and starts again, and makes a new sub-interpreter, attached to it.
    let (again, same_id) = unsafe {
        pyo3_ffi::Py_EndInterpreter(sub);
        pyo3_ffi::PyThreadState_Swap(main);
        assert_eq!(pyo3_ffi::Py_FinalizeEx(), 0);
        pyo3_ffi::Py_InitializeEx(0);
        new_sub()
    };
    assert_eq!(
        same_id, id,
        "the new runtime's sub-interpreter has the old one's id"
    );
    assert_eq!(exception.restore(), Err(GilError::NotInitialized));
    // SAFETY: nothing is set; the host ends the sub-interpreter.
    unsafe {
        assert!(pyo3_ffi::PyErr_Occurred().is_null());
        pyo3_ffi::Py_EndInterpreter(again);
    }
}
