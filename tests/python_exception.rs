//! What an extension module needs around its native threads: a Python exception raised on
//! a worker thread arrives on the thread that waits for it with its type, object and
//! message intact; one dropped on a detached thread is released (not leaked, no crash); and
//! every `GilError` becomes a Python exception of a fitting type.

mod common;

use std::ptr;
use std::sync::Mutex;

use gilguard::{GilError, PythonException, is_attached, with_gil, without_gil};
use pyo3_ffi as ffi;

/// Runs `code` in `__main__` on this (attached) thread and takes what it raised.
fn raise_in(code: &std::ffi::CStr) -> PythonException {
    assert!(is_attached());
    // SAFETY: attached (asserted); the result, if any, is released.
    unsafe {
        let globals = ffi::PyModule_GetDict(ffi::PyImport_AddModule(c"__main__".as_ptr()));
        let result = ffi::PyRun_String(code.as_ptr(), ffi::Py_file_input, globals, globals);
        assert!(result.is_null(), "the code was meant to raise");
    }
    PythonException::take()
        .expect("attached")
        .expect("an exception is set")
}

/// Runs `code` on a new native thread (attached there by `with_gil`) while this thread
/// waits detached, and returns what it raised.
fn raise_on_worker(code: &'static std::ffi::CStr) -> PythonException {
    without_gil(|| {
        std::thread::spawn(move || with_gil(|| raise_in(code)))
            .join()
            .expect("the worker does not panic")
    })
}

const DEFINE: &str = "
import gc, weakref
class WorkerError(ValueError):
    pass
tracked = {}
def track(name, exception):
    tracked[name] = weakref.ref(exception)
    return exception
";

/// Starts Python, and defines what the tests raise once (the tests run in parallel).
fn python() {
    static DEFINED: std::sync::Once = std::sync::Once::new();
    common::python();
    DEFINED.call_once(|| with_gil(|| common::run(DEFINE)));
}

/// The exception `reraise()` raises in Python.
static CARRIED: Mutex<Option<PythonException>> = Mutex::new(None);

extern "C" fn reraise(
    _module: *mut ffi::PyObject,
    _args: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let exception = CARRIED
        .lock()
        .unwrap()
        .take()
        .expect("an exception to raise");
    exception
        .restore()
        .expect("attached to the main interpreter");
    ptr::null_mut()
}

#[test]
fn an_exception_from_a_worker_is_raised_again_on_the_caller() {
    python();
    with_gil(|| {
        let exception = raise_on_worker(
            c"raised = WorkerError('from the worker')\nraise track('carried', raised)",
        );
        assert_eq!(exception.type_name(), "WorkerError");
        assert_eq!(exception.message(), "from the worker");
        assert_eq!(exception.to_string(), "WorkerError: from the worker");
        assert!(format!("{exception:?}").contains("from the worker"));
        *CARRIED.lock().unwrap() = Some(exception);
        common::define(c"reraise", reraise);
        // The same object, of the same type, with the worker's frame in its traceback.
        common::run(
            "
try:
    reraise()
except WorkerError as caught:
    assert caught is raised, caught
    assert str(caught) == 'from the worker'
    import traceback
    assert any('<string>' in line for line in traceback.format_tb(caught.__traceback__))
else:
    raise AssertionError('reraise() did not raise')
del raised
",
        );
    });
}

#[test]
fn a_captured_exception_dropped_on_a_detached_thread_is_released() {
    python();
    let exception = with_gil(|| raise_on_worker(c"raise track('dropped', WorkerError('dropped'))"));
    assert!(!is_attached());
    std::thread::spawn(move || {
        assert!(!is_attached());
        drop(exception);
        assert!(!is_attached(), "the drop leaves the thread as it was");
    })
    .join()
    .unwrap();
    with_gil(|| {
        common::run("gc.collect()");
        assert_eq!(common::eval_str("tracked['dropped']() is None"), "True");
    });
}

#[test]
fn take_and_restore_need_an_attached_thread() {
    python();
    assert!(matches!(
        PythonException::take(),
        Err(GilError::NotAttached)
    ));
    let exception = with_gil(|| {
        assert!(PythonException::take().unwrap().is_none(), "nothing is set");
        raise_in(c"raise WorkerError('kept')")
    });
    assert_eq!(exception.restore(), Err(GilError::NotAttached));
}

#[test]
fn a_captured_exception_outliving_its_runtime_is_leaked() {
    common::run_child("child_exception_outliving_its_runtime");
}

#[test]
#[ignore = "runs in a child process, started by a_captured_exception_outliving_its_runtime_is_leaked"]
fn child_exception_outliving_its_runtime() {
    python();
    let (kept, restored) = with_gil(|| {
        (
            raise_on_worker(c"raise WorkerError('kept across finalization')"),
            raise_on_worker(c"raise WorkerError('restored after finalization')"),
        )
    });
    // SAFETY: initialized; this thread attaches to the main interpreter and finalizes it.
    // Nothing of this crate is alive on this thread.
    unsafe {
        ffi::PyGILState_Ensure();
        assert_eq!(ffi::Py_FinalizeEx(), 0);
    }
    // Printing needs no runtime; dropping must not touch the freed object.
    assert_eq!(kept.to_string(), "WorkerError: kept across finalization");
    std::thread::spawn(move || drop(kept)).join().unwrap();
    // A new runtime: the old exception is not its to raise.
    gilguard::initialize().expect("the runtime starts again");
    with_gil(|| {
        assert_eq!(restored.restore(), Err(GilError::NotInitialized));
        assert!(PythonException::take().unwrap().is_none());
    });
}

#[test]
fn gil_errors_become_python_exceptions() {
    python();
    assert_eq!(
        GilError::NothingToRestore.raise_in_python(),
        Err(GilError::NotAttached)
    );
    with_gil(|| {
        let new_enough = common::eval_str("__import__('sys').version_info >= (3, 13)") == "True";
        let finalizing = if new_enough {
            "PythonFinalizationError"
        } else {
            "RuntimeError"
        };
        let cases = [
            (GilError::NotInitialized, "RuntimeError"),
            (GilError::Finalizing, finalizing),
            (GilError::NotAttached, "RuntimeError"),
            (GilError::NothingToRestore, "RuntimeError"),
            (GilError::AttachedElsewhere, "RuntimeError"),
            (GilError::InterpreterInUse, "RuntimeError"),
            (GilError::InterpreterEnded, "RuntimeError"),
            (GilError::ThreadStateExists, "RuntimeError"),
            (GilError::InvalidConfig("a rule"), "ValueError"),
            (GilError::Unsupported("a feature"), "RuntimeError"),
            (GilError::CreationFailed("no memory".into()), "RuntimeError"),
        ];
        for (error, kind) in cases {
            error.raise_in_python().unwrap();
            let raised = PythonException::take().unwrap().expect("set");
            assert_eq!(raised.type_name(), kind, "{error:?}");
            assert_eq!(raised.message(), error.to_string());
        }
        // `except RuntimeError` catches the finalization error on every version.
        common::define(c"refuse", refuse);
        common::run(
            "try:\n    refuse()\nexcept RuntimeError as e:\n    assert 'finalizing' in str(e)",
        );
    });
}

extern "C" fn refuse(_module: *mut ffi::PyObject, _args: *mut ffi::PyObject) -> *mut ffi::PyObject {
    GilError::Finalizing.raise_in_python().unwrap();
    ptr::null_mut()
}
