//! What changed in CPython 3.14 (and still holds in 3.15) that the crate relies on or must
//! work with: a thread that attaches while the runtime finalizes now blocks forever instead
//! of being ended with `pthread_exit`, and Python code can make sub-interpreters of its own
//! (`concurrent.interpreters`), which native threads must be able to enter.
//!
//! Built for CPython 3.14 and later only; on older versions this binary has no test.
#![cfg(Py_3_14)]

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Mutex, PoisonError, mpsc};
use std::time::Duration;

use common::Attachment;
use gilguard::{Interpreter, is_attached, with_gil};

/// What the raw threads did while the runtime finalized: whether each call returned, and
/// whether each thread had ended, 300 ms after they were told to attach.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Late {
    ensure_returned: bool,
    ensure_thread_ended: bool,
    restore_returned: bool,
    restore_thread_ended: bool,
}

static LATE: Mutex<Option<Late>> = Mutex::new(None);
static ENSURE_RETURNED: AtomicBool = AtomicBool::new(false);
static RESTORE_RETURNED: AtomicBool = AtomicBool::new(false);
/// The thread that made its thread state before finalization, waiting to be told to
/// re-attach it.
static RESTORING_THREAD: Mutex<Option<(mpsc::Sender<()>, std::thread::JoinHandle<()>)>> =
    Mutex::new(None);

/// Called by a `__del__` while the runtime finalizes, on the finalizing thread: tells the
/// thread whose thread state exists since before finalization to re-attach it
/// (`PyEval_RestoreThread`), starts a thread that calls `PyGILState_Ensure` without one,
/// gives both 300 ms with the GIL released, and records what they did.
unsafe extern "C" fn attach_raw_while_finalizing(
    _module: *mut pyo3_ffi::PyObject,
    _args: *mut pyo3_ffi::PyObject,
) -> *mut pyo3_ffi::PyObject {
    let (go, restore) = RESTORING_THREAD
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .expect("the thread is waiting");
    go.send(()).unwrap();
    let ensure = std::thread::spawn(|| {
        // SAFETY: the raw call under test, on a thread without a thread state; released
        // at once if it returns.
        unsafe {
            let state = pyo3_ffi::PyGILState_Ensure();
            ENSURE_RETURNED.store(true, SeqCst);
            pyo3_ffi::PyGILState_Release(state);
        }
    });
    // SAFETY: the finalizing thread may detach and re-attach: the GIL is free for the
    // other threads meanwhile, so only CPython's finalization can keep them out.
    unsafe {
        let saved = pyo3_ffi::PyEval_SaveThread();
        std::thread::sleep(Duration::from_millis(300));
        pyo3_ffi::PyEval_RestoreThread(saved);
    }
    *LATE.lock().unwrap_or_else(PoisonError::into_inner) = Some(Late {
        ensure_returned: ENSURE_RETURNED.load(SeqCst),
        ensure_thread_ended: ensure.is_finished(),
        restore_returned: RESTORE_RETURNED.load(SeqCst),
        restore_thread_ended: restore.is_finished(),
    });
    // Never joined: a blocked thread stays blocked until the process exits.
    common::none()
}

/// Since 3.14 a thread whose thread state existed when finalization began, and that
/// re-attaches it (`PyEval_RestoreThread`) while the runtime finalizes, blocks forever; up
/// to 3.13 it was ended with `pthread_exit`, undefined behaviour under Rust frames. The
/// process still exits. `PyGILState_Ensure` on a thread that has no thread state makes a
/// new one, and that one was not stopped on 3.14.10: the call returned and the thread ran
/// attached inside a finalizing runtime; on 3.15.2 it blocks too. Both are why the crate
/// refuses to attach once shutdown has begun (`tests/finalization.rs`).
#[test]
fn raw_attaches_during_finalization_block_or_slip_in() {
    common::run_child("child_raw_attaches_during_finalization");
}

#[test]
#[ignore = "runs in a child process, started by raw_attaches_during_finalization_block_or_slip_in"]
fn child_raw_attaches_during_finalization() {
    common::python();
    let (go, wait_go) = mpsc::channel();
    let (ready, wait_ready) = mpsc::channel();
    let restore = std::thread::spawn(move || {
        // SAFETY: a thread state of the main interpreter made for this thread, left
        // detached; re-attached on `go`, which is the raw call under test.
        unsafe {
            let tstate = pyo3_ffi::PyThreadState_New(pyo3_ffi::PyInterpreterState_Main());
            ready.send(()).unwrap();
            wait_go.recv().unwrap();
            pyo3_ffi::PyEval_RestoreThread(tstate);
        }
        RESTORE_RETURNED.store(true, SeqCst);
    });
    wait_ready.recv().unwrap();
    *RESTORING_THREAD.lock().unwrap() = Some((go, restore));
    with_gil(|| {
        common::define(c"attach_raw_while_finalizing", attach_raw_while_finalizing);
        common::run(
            "class Probe:\n    def __del__(self, probe=attach_raw_while_finalizing):\n        probe()\n\
             probe_instance = Probe()\n",
        );
    });
    // SAFETY: initialized; this thread attaches to the main interpreter and finalizes it.
    unsafe {
        pyo3_ffi::PyGILState_Ensure();
        assert_eq!(pyo3_ffi::Py_FinalizeEx(), 0);
    }
    let late = LATE.lock().unwrap().take();
    let slipped_in = cfg!(not(Py_3_15));
    assert_eq!(
        late,
        Some(Late {
            ensure_returned: slipped_in,
            ensure_thread_ended: slipped_in,
            restore_returned: false,
            restore_thread_ended: false,
        })
    );
}

/// The `PyInterpreterState` whose id is `id`. The caller is attached to the main
/// interpreter, and the interpreter is kept alive by the Python object that made it.
fn interpreter_by_id(id: i64) -> *mut pyo3_ffi::PyInterpreterState {
    // SAFETY: attached; the list of interpreters only changes under the GIL of the main
    // interpreter or with the runtime's lock, and none is created or ended meanwhile.
    unsafe {
        let mut interp = pyo3_ffi::PyInterpreterState_Head();
        while !interp.is_null() {
            if pyo3_ffi::PyInterpreterState_GetID(interp) == id {
                return interp;
            }
            interp = pyo3_ffi::PyInterpreterState_Next(interp);
        }
    }
    panic!("no interpreter with id {id}");
}

/// Python code makes a sub-interpreter with `concurrent.interpreters` (new in 3.14; its own
/// GIL by default), which the crate did not make. Code called inside it names it with
/// `Interpreter::current`, as an extension module imported there would; a native thread
/// then attaches to it with a `ThreadStateHandle`, runs Python there, switches to the main
/// interpreter and back; `is_attached` stays exact throughout (`PyGILState_Check` answers 1
/// for good once a sub-interpreter exists); and Python sees what the thread did and closes
/// the interpreter once the handle is gone.
#[test]
fn a_native_thread_enters_an_interpreter_made_by_concurrent_interpreters() {
    common::python();
    let id: i64 = with_gil(|| {
        common::run(
            "from concurrent import interpreters\n\
             made = interpreters.create()\n\
             made_id = made.id\n",
        );
        common::eval_str("made_id").parse().unwrap()
    });
    assert!(id > 0);
    assert!(!is_attached());
    let interp = with_gil(|| interpreter_by_id(id)) as usize;
    // What code running inside the interpreter sees: attached there by a plain thread state
    // (made, attached, cleared and deleted by hand on a thread of its own).
    let named = std::thread::spawn(move || {
        // SAFETY: the interpreter is alive (Python holds it); the thread state is made for
        // this detached thread, attached, and deleted while current.
        unsafe {
            let tstate = pyo3_ffi::PyThreadState_New(interp as *mut _);
            pyo3_ffi::PyEval_RestoreThread(tstate);
            let here = Interpreter::current();
            pyo3_ffi::PyThreadState_Clear(tstate);
            pyo3_ffi::PyThreadState_DeleteCurrent();
            here
        }
    })
    .join()
    .unwrap()
    .expect("attached to the interpreter");
    assert_eq!(named.id(), id);
    assert!(!named.is_main());
    std::thread::spawn(move || {
        assert!(!is_attached());
        // SAFETY: the interpreter outlives the handle: Python closes it only after this
        // thread has been joined.
        let handle = unsafe { named.thread_state() }.unwrap();
        handle
            .run(|| {
                assert!(is_attached());
                assert_eq!(common::attachment(), Attachment::Sub(id));
                common::run("from_rust = 6 * 7");
                with_gil(|| assert_eq!(common::attachment(), Attachment::Main));
                assert_eq!(common::attachment(), Attachment::Sub(id));
            })
            .unwrap();
        assert!(!is_attached());
        drop(handle);
        assert!(!is_attached());
    })
    .join()
    .unwrap();
    with_gil(|| {
        assert_eq!(common::attachment(), Attachment::Main);
        common::run("made.exec('assert from_rust == 42')\nmade.close()\n");
    });
    assert!(!is_attached());
}
