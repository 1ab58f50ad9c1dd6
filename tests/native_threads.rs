//! Threads Python did not create: the first acquisition creates a thread state, later ones
//! re-attach it, and it is deleted when the thread exits.

mod common;

use gilguard::{WithGil, is_attached, with_gil, without_gil};

fn attached_thread_state() -> usize {
    with_gil(|| common::current_thread_state() as usize)
}

#[test]
fn native_thread_reuses_one_thread_state() {
    common::python();
    std::thread::spawn(|| {
        let first = attached_thread_state();
        for _ in 0..100 {
            assert_eq!(attached_thread_state(), first);
            assert!(!is_attached());
        }
        // `PyGILState_*` calls made by other code on this thread find and count the same
        // state, and their release does not delete it.
        // SAFETY: initialized; paired on this thread.
        unsafe {
            let state = pyo3_ffi::PyGILState_Ensure();
            assert_eq!(common::current_thread_state() as usize, first);
            pyo3_ffi::PyGILState_Release(state);
        }
        assert!(!is_attached());
        assert_eq!(attached_thread_state(), first);
    })
    .join()
    .unwrap();
}

#[test]
fn thread_states_of_exited_native_threads_are_deleted() {
    common::run_child("child_thread_states_are_deleted");
}

#[test]
#[ignore = "runs in a child process, started by thread_states_of_exited_native_threads_are_deleted"]
fn child_thread_states_are_deleted() {
    common::python();
    let before = with_gil(common::thread_states_here);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(|| {
                for _ in 0..50 {
                    with_gil(|| common::run("x = 1"));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(with_gil(common::thread_states_here), before);
}

#[test]
fn native_threads_keep_their_thread_state_in_a_runtime_started_by_pyo3() {
    common::run_child("child_runtime_started_by_pyo3");
}

#[test]
#[ignore = "runs in a child process, started by native_threads_keep_their_thread_state_in_a_runtime_started_by_pyo3"]
fn child_runtime_started_by_pyo3() {
    // The host started Python, so this crate's `initialize` never ran: the first native
    // thread that attaches registers what it needs to keep and later delete thread states.
    pyo3::Python::initialize();
    assert!(!is_attached());
    assert_eq!(with_gil(|| common::eval_str("6 * 7")), "42");
    let before = with_gil(common::thread_states_here);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                let first = attached_thread_state();
                for _ in 0..20 {
                    assert_eq!(attached_thread_state(), first);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(with_gil(common::thread_states_here), before);
}

unsafe extern "C" fn nested_in_python_thread(
    _module: *mut pyo3_ffi::PyObject,
    _args: *mut pyo3_ffi::PyObject,
) -> *mut pyo3_ffi::PyObject {
    // Called from a `threading.Thread`: attached to that thread's own state.
    let own = common::current_thread_state() as usize;
    assert!(is_attached());
    with_gil(|| assert_eq!(common::current_thread_state() as usize, own));
    without_gil(|| {
        assert!(!is_attached());
        // The thread's own `PyGILState` state is re-attached: no new state is created.
        with_gil(|| assert_eq!(common::current_thread_state() as usize, own));
    });
    assert_eq!(common::current_thread_state() as usize, own);
    common::none()
}

#[test]
fn python_threads_keep_their_own_thread_state() {
    common::python();
    std::thread::spawn(|| {
        with_gil(|| {
            common::define(c"nested_in_python_thread", nested_in_python_thread);
            common::run(
                "import threading\n\
                 worker = threading.Thread(target=nested_in_python_thread)\n\
                 worker.start()\n",
            );
            // Wait with the GIL released so the Python thread can run.
            without_gil(|| std::thread::sleep(std::time::Duration::from_millis(1)));
            common::run("worker.join()");
        })
    })
    .join()
    .unwrap();
}

/// A thread Python did not create keeps one thread state for all its guards, so what Python
/// keeps per thread state lasts from one guard to the next: a `sys.settrace` function set
/// under one `with_gil` is still set under the next, as a debugger or profiler needs (across
/// two `pyo3::Python::attach` calls on such a thread it is lost: `tests/pyo3.rs`).
#[test]
fn a_trace_function_set_under_one_guard_is_set_under_the_next() {
    common::python();
    with_gil(|| common::run("import sys\ndef tracer(*args):\n    return None\n"));
    std::thread::spawn(|| {
        with_gil(|| common::run("sys.settrace(tracer)"));
        assert_eq!(
            with_gil(|| common::eval_str("sys.gettrace() is tracer")),
            "True"
        );
        let _gil = WithGil::acquire();
        assert_eq!(common::eval_str("sys.gettrace() is tracer"), "True");
        common::run("sys.settrace(None)");
    })
    .join()
    .unwrap();
}
