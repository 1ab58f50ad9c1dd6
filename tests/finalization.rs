//! What happens to guards around `Py_FinalizeEx`. Finalization cannot be undone, so every
//! scenario runs in a child process.

mod common;

use std::sync::mpsc;
use std::sync::{Mutex, PoisonError};

use gilguard::{GilError, Interpreter, WithGil, is_attached, with_gil};

/// Finalizes the runtime from this thread, which must be detached.
fn finalize() {
    // SAFETY: initialized; this thread attaches to the main interpreter and finalizes it.
    // Nothing of this crate is alive on this thread.
    unsafe {
        pyo3_ffi::PyGILState_Ensure();
        assert_eq!(pyo3_ffi::Py_FinalizeEx(), 0);
    }
}

#[test]
fn native_thread_is_refused_after_finalization() {
    common::run_child("child_native_thread_after_finalization");
}

#[test]
#[ignore = "runs in a child process, started by native_thread_is_refused_after_finalization"]
fn child_native_thread_after_finalization() {
    common::python();
    let (go, wait) = mpsc::channel::<()>();
    let (done, finished) = mpsc::channel();
    let native = std::thread::spawn(move || {
        // Creates and keeps this thread's thread state.
        with_gil(|| common::run("x = 1"));
        done.send(()).unwrap();
        wait.recv().unwrap();
        // The kept thread state was freed by finalization: it must not be used.
        let refused = WithGil::try_acquire().unwrap_err();
        assert!(
            matches!(refused, GilError::NotInitialized | GilError::Finalizing),
            "{refused}"
        );
        assert!(!is_attached());
        // The thread-local destructor must not touch the freed state either.
    });
    finished.recv().unwrap();
    finalize();
    assert!(!gilguard::is_initialized());
    go.send(()).unwrap();
    native.join().unwrap();
}

#[test]
fn native_thread_gets_a_new_thread_state_after_reinitialization() {
    common::run_child("child_reinitialization");
}

#[test]
#[ignore = "runs in a child process, started by native_thread_gets_a_new_thread_state_after_reinitialization"]
fn child_reinitialization() {
    common::python();
    let (go, wait) = mpsc::channel::<()>();
    let (done, finished) = mpsc::channel();
    let native = std::thread::spawn(move || {
        with_gil(|| common::run("x = 1"));
        done.send(()).unwrap();
        wait.recv().unwrap();
        // A new runtime: the state kept from the old one must be forgotten, not reused.
        with_gil(|| {
            common::run("y = 2");
            assert_eq!(common::eval_str("y"), "2");
        });
        assert!(!is_attached());
    });
    // A thread state handle of the first runtime, kept across it.
    let main = Interpreter::main().unwrap();
    // SAFETY: the main interpreter outlives the handle's use: the handle refuses once the
    // runtime it was made in is gone, which is what this test checks.
    let stale = unsafe { main.thread_state() }.unwrap();
    finished.recv().unwrap();
    finalize();
    gilguard::initialize().expect("the runtime starts again");
    go.send(()).unwrap();
    native.join().unwrap();
    with_gil(|| assert_eq!(common::eval_str("1 + 1"), "2"));
    assert_eq!(stale.attach().err(), Some(GilError::InterpreterEnded));
    assert_eq!(main.id(), 0);
    drop(stale); // must not touch the freed thread state
}

/// Makes `function` run while the runtime finalizes: from the `__del__` of a module global,
/// which finalization collects after the `atexit` phase, with CPython's flag set.
fn call_while_finalizing(function: pyo3_ffi::PyCFunction) {
    with_gil(|| {
        common::define(c"call_while_finalizing", function);
        common::run(
            "class Probe:\n    def __del__(self, probe=call_while_finalizing):\n        probe()\n\
             probe_instance = Probe()\n",
        );
    });
}

/// What a native thread got when it tried to attach from inside finalization.
static DURING_FINALIZATION: Mutex<Option<Result<(), GilError>>> = Mutex::new(None);

/// Called by a `__del__` that runs while the runtime finalizes: asks a native thread to
/// attach and waits for its answer (holding the GIL, which is fine: it must not block).
unsafe extern "C" fn attach_from_native_thread(
    _module: *mut pyo3_ffi::PyObject,
    _args: *mut pyo3_ffi::PyObject,
) -> *mut pyo3_ffi::PyObject {
    let finalizing = gilguard::is_finalizing();
    let outcome = std::thread::spawn(|| WithGil::try_acquire().map(drop))
        .join()
        .unwrap();
    assert!(finalizing, "the __del__ ran before finalization started");
    // Starting the runtime again now would race with the shutdown.
    assert_eq!(gilguard::initialize(), Err(GilError::Finalizing));
    *DURING_FINALIZATION
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = Some(outcome);
    common::none()
}

#[test]
fn native_thread_is_refused_during_finalization() {
    common::run_child("child_during_finalization");
}

#[test]
#[ignore = "runs in a child process, started by native_thread_is_refused_during_finalization"]
fn child_during_finalization() {
    common::python();
    call_while_finalizing(attach_from_native_thread);
    finalize();
    let outcome = DURING_FINALIZATION.lock().unwrap().take();
    assert_eq!(outcome, Some(Err(GilError::Finalizing)));
}

#[test]
fn native_thread_is_refused_during_finalization_of_a_runtime_started_by_pyo3() {
    common::run_child("child_during_finalization_started_by_pyo3");
}

#[test]
#[ignore = "runs in a child process, started by native_thread_is_refused_during_finalization_of_a_runtime_started_by_pyo3"]
fn child_during_finalization_started_by_pyo3() {
    // The host started Python, and no thread Python did not create has attached through this
    // crate before finalization: the shutdown gate was never installed, so CPython's flag is
    // all that tells the native thread to stay out.
    pyo3::Python::initialize();
    call_while_finalizing(attach_from_native_thread);
    finalize();
    let outcome = DURING_FINALIZATION.lock().unwrap().take();
    assert_eq!(outcome, Some(Err(GilError::Finalizing)));
}

/// The native thread that holds a thread state handle, waiting to be told to attach it:
/// where to tell it, and where it answers.
type HandleThread = (mpsc::Sender<()>, mpsc::Receiver<Result<(), GilError>>);
static HANDLE_THREAD: Mutex<Option<HandleThread>> = Mutex::new(None);
/// What that thread got when it tried to attach while the runtime finalized.
static HANDLE_DURING_FINALIZATION: Mutex<Option<Result<(), GilError>>> = Mutex::new(None);

/// Called by a `__del__` that runs while the runtime finalizes: asks the handle's thread to
/// attach it, and waits for the answer.
unsafe extern "C" fn attach_handle_on_its_thread(
    _module: *mut pyo3_ffi::PyObject,
    _args: *mut pyo3_ffi::PyObject,
) -> *mut pyo3_ffi::PyObject {
    let finalizing = gilguard::is_finalizing();
    let (go, answer) = HANDLE_THREAD
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .expect("the handle's thread is waiting");
    go.send(()).unwrap();
    let outcome = answer.recv().unwrap();
    assert!(finalizing, "the __del__ ran before finalization started");
    *HANDLE_DURING_FINALIZATION
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = Some(outcome);
    common::none()
}

#[test]
fn a_thread_state_handle_is_refused_during_finalization() {
    common::run_child("child_handle_during_finalization");
}

#[test]
#[ignore = "runs in a child process, started by a_thread_state_handle_is_refused_during_finalization"]
fn child_handle_during_finalization() {
    common::python();
    let (go, wait_go) = mpsc::channel();
    let (answer, answered) = mpsc::channel();
    let (ready, wait_ready) = mpsc::channel();
    std::thread::spawn(move || {
        let main = Interpreter::main().unwrap();
        // SAFETY: the main interpreter outlives the handle's use: the handle refuses once
        // the runtime finalizes, which is what this test checks.
        let handle = unsafe { main.thread_state() }.unwrap();
        handle.run(|| ()).unwrap();
        ready.send(()).unwrap();
        wait_go.recv().unwrap();
        // The fast path must not attach: the GIL is held by the finalizing thread, which
        // waits for this answer. (From 3.12 only the closed gate stops it; before, CPython
        // names the GIL holder's thread state as current, which sends it to the slow path.)
        answer.send(handle.attach().map(drop)).unwrap();
    });
    wait_ready.recv().unwrap();
    *HANDLE_THREAD.lock().unwrap() = Some((go, answered));
    call_while_finalizing(attach_handle_on_its_thread);
    finalize();
    let outcome = HANDLE_DURING_FINALIZATION.lock().unwrap().take();
    assert_eq!(outcome, Some(Err(GilError::Finalizing)));
}

#[test]
fn a_thread_state_handle_is_refused_after_finalization_without_the_atexit_callback() {
    common::run_child("child_handle_after_finalization_without_atexit");
}

#[test]
#[ignore = "runs in a child process, started by a_thread_state_handle_is_refused_after_finalization_without_the_atexit_callback"]
fn child_handle_after_finalization_without_atexit() {
    common::python();
    let main = Interpreter::main().unwrap();
    // SAFETY: the main interpreter outlives the handle's use: the handle refuses once the
    // runtime it was made in is gone, which is what this test checks.
    let stale = unsafe { main.thread_state() }.unwrap();
    stale.run(|| ()).unwrap();
    // Clearing `atexit` removes this crate's shutdown callback too: finalization must still
    // withdraw the handle's fast path, since its thread state is freed.
    with_gil(|| common::run("import atexit\natexit._clear()"));
    finalize();
    assert_eq!(stale.attach().err(), Some(GilError::InterpreterEnded));
    drop(stale); // must not touch the freed thread state
}

/// Also: the exit does not wait for such a thread longer than the shutdown timeout. On
/// CPython 3.15 the thread holds a PEP 788 guard, which the crate closes when the timeout
/// passes; left open, CPython would wait for it forever, and this child would hang.
#[test]
fn a_thread_released_across_finalization_and_reinitialization_is_parked() {
    let output = common::run_child("child_released_across_reinitialization");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("parked for good"), "{stderr}");
}

#[test]
#[ignore = "runs in a child process, started by a_thread_released_across_finalization_and_reinitialization_is_parked"]
fn child_released_across_reinitialization() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    common::python();
    // The native thread holds a guard throughout: shutdown gives up waiting for it soon.
    gilguard::set_shutdown_timeout(Duration::from_millis(100));
    let (released, wait_released) = mpsc::channel();
    let (go, wait_go) = mpsc::channel::<()>();
    let returned = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&returned);
    std::thread::spawn(move || {
        with_gil(|| {
            gilguard::without_gil(move || {
                released.send(()).unwrap();
                wait_go.recv().unwrap();
            });
            // Never reached: the thread state this would re-attach was freed.
            flag.store(true, Ordering::SeqCst);
        });
    });
    wait_released.recv().unwrap();
    finalize();
    gilguard::initialize().unwrap();
    go.send(()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(!returned.load(Ordering::SeqCst));
    // The new runtime is unaffected.
    with_gil(|| common::run("x = 1"));
}

#[test]
fn finalization_does_not_wait_for_native_threads_that_have_exited() {
    common::run_child("child_native_thread_exited_before_finalization");
}

#[test]
#[ignore = "runs in a child process, started by finalization_does_not_wait_for_native_threads_that_have_exited"]
fn child_native_thread_exited_before_finalization() {
    use std::time::{Duration, Instant};

    common::python();
    // The thread deletes its kept thread state as it exits (counted as a guard for the
    // shutdown gate, and on 3.15 under a PEP 788 guard): nothing of it may be left for
    // finalization to wait for.
    std::thread::spawn(|| with_gil(|| common::run("x = 1")))
        .join()
        .unwrap();
    let started = Instant::now();
    finalize();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "finalization waited {:?} for a thread that had exited",
        started.elapsed()
    );
}

/// The native thread that keeps a thread state, waiting to be told to attach again: where to
/// tell it, and where it answers.
#[cfg(Py_3_15)]
static KEPT_STATE_THREAD: Mutex<Option<HandleThread>> = Mutex::new(None);

/// Called by a `__del__` that runs while the runtime finalizes: asks the native thread that
/// keeps a thread state to attach it again, and waits for the answer.
#[cfg(Py_3_15)]
unsafe extern "C" fn attach_kept_state_on_its_thread(
    _module: *mut pyo3_ffi::PyObject,
    _args: *mut pyo3_ffi::PyObject,
) -> *mut pyo3_ffi::PyObject {
    // SAFETY: reads a flag of the runtime.
    let finalizing = unsafe { pyo3_ffi::Py_IsFinalizing() } != 0;
    let (go, answer) = KEPT_STATE_THREAD
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .expect("the native thread is waiting");
    go.send(()).unwrap();
    let outcome = answer.recv().unwrap();
    assert!(finalizing, "the __del__ ran before finalization started");
    *DURING_FINALIZATION
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = Some(outcome);
    common::none()
}

/// CPython 3.15 (PEP 788): with the `atexit` callbacks cleared, the crate's gate is
/// installed but never closes, so the fast path of a native thread that re-attaches the
/// thread state kept for it asks nothing else of the crate; on 3.9-3.14 it then attaches
/// while the runtime finalizes and blocks forever (docs/reliability.md). From 3.15 it first
/// opens an interpreter guard, which CPython refuses once finalization has begun, and so the
/// attach is refused cleanly, with a `GilError`. With the guard calls stubbed out,
/// the thread blocks and this child is killed after 60 s.
#[cfg(Py_3_15)]
#[test]
fn native_thread_is_refused_during_finalization_by_pep_788_without_the_atexit_callback() {
    common::run_child("child_during_finalization_without_atexit");
}

#[cfg(Py_3_15)]
#[test]
#[ignore = "runs in a child process, started by native_thread_is_refused_during_finalization_by_pep_788_without_the_atexit_callback"]
fn child_during_finalization_without_atexit() {
    common::python();
    let (go, wait_go) = mpsc::channel();
    let (answer, answered) = mpsc::channel();
    let (ready, wait_ready) = mpsc::channel();
    std::thread::spawn(move || {
        // Creates and keeps this thread's thread state (and installs the gate).
        with_gil(|| ());
        ready.send(()).unwrap();
        wait_go.recv().unwrap();
        answer.send(WithGil::try_acquire().map(drop)).unwrap();
    });
    wait_ready.recv().unwrap();
    *KEPT_STATE_THREAD.lock().unwrap() = Some((go, answered));
    call_while_finalizing(attach_kept_state_on_its_thread);
    with_gil(|| common::run("import atexit\natexit._clear()"));
    finalize();
    // Refused by the interpreter guard; the slow path then names the reason from CPython's
    // flags, and `Py_IsInitialized` is already 0 while modules are finalized.
    let outcome = DURING_FINALIZATION.lock().unwrap().take();
    assert!(
        matches!(
            outcome,
            Some(Err(GilError::Finalizing | GilError::NotInitialized))
        ),
        "{outcome:?}"
    );
}

/// CPython 3.15 (PEP 788): with the `atexit` callbacks cleared, nothing of the crate waits
/// for a native thread that holds a guard across the exit, but the PEP 788 guard it holds
/// does: CPython starts finalizing only once the thread dropped it, so the thread
/// re-attaches and finishes its Python work normally (on 3.9-3.14 it would block forever
/// when it re-attaches). With the guard stubbed out, the thread never finishes.
#[cfg(Py_3_15)]
#[test]
fn finalization_waits_for_a_pep_788_guard_without_the_atexit_callback() {
    common::run_child("child_guard_across_exit_without_atexit");
}

#[cfg(Py_3_15)]
#[test]
#[ignore = "runs in a child process, started by finalization_waits_for_a_pep_788_guard_without_the_atexit_callback"]
fn child_guard_across_exit_without_atexit() {
    use std::time::{Duration, Instant};

    common::python();
    let (released, wait_released) = mpsc::channel();
    let (finished, wait_finished) = mpsc::channel();
    std::thread::spawn(move || {
        with_gil(|| {
            gilguard::without_gil(move || {
                released.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(500));
            });
            // Attached again: Python still works, the runtime has not started finalizing.
            common::run("after = 'the exit'");
            assert_eq!(common::eval_str("after"), "the exit");
        });
        finished.send(()).unwrap();
    });
    wait_released.recv().unwrap();
    with_gil(|| common::run("import atexit\natexit._clear()"));
    let started = Instant::now();
    finalize();
    let waited = started.elapsed();
    assert!(
        wait_finished.recv_timeout(Duration::from_secs(5)).is_ok(),
        "the native thread did not finish: it re-attached after finalization began"
    );
    assert!(
        waited >= Duration::from_millis(300),
        "finalization did not wait for the guard ({waited:?})"
    );
}

/// The runtime is finalized by a thread that still uses a sub-interpreter's handle (a live
/// attach guard, suspended by the `with_gil` that finalizes). The shutdown ends the
/// sub-interpreter and deletes the handle's thread state (CPython would abort on it, or
/// free it itself), and the thread's frames forget it: the guards' drops afterwards touch
/// nothing, where they would re-attach freed memory.
#[test]
fn finalizing_while_this_thread_uses_a_handle_forgets_it() {
    common::run_child("child_finalizing_while_using_a_handle");
}

#[test]
#[ignore = "runs in a child process, started by finalizing_while_this_thread_uses_a_handle_forgets_it"]
fn child_finalizing_while_using_a_handle() {
    common::python();
    let interpreter = gilguard::SubInterpreter::new().unwrap();
    let handle = interpreter.thread_state().unwrap();
    let attached = handle.attach().unwrap();
    with_gil(|| {
        // SAFETY: attached to the main interpreter (`with_gil`), as finalizing requires.
        assert_eq!(unsafe { pyo3_ffi::Py_FinalizeEx() }, 0);
    });
    assert!(!is_attached());
    drop(attached);
    drop(handle);
    assert!(!is_attached());
    assert_eq!(
        interpreter.thread_state().unwrap_err(),
        GilError::InterpreterEnded
    );
    drop(interpreter); // ended by the shutdown: nothing left to do
}
