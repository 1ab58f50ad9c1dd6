//! `pyo3` and this crate on the same threads (the `pyo3` feature): `pyo3` counts its own
//! attachment and trusts the count, so every nesting of the two must leave `pyo3`'s count
//! and CPython's state in agreement, or be refused before any C call. Where `pyo3` exposes
//! nothing that would let this crate tell, the rule users must follow is shown at its
//! boundary (see the guide, "Other owners of a thread's state").

mod common;

use gilguard::{GilError, WithGil, is_attached, with_gil, with_python, without_gil};
use pyo3::prelude::*;

/// `pyo3`'s answer from inside: evaluates an expression with a token `pyo3` hands out.
fn pyo3_sum() -> i64 {
    Python::attach(|py| {
        assert!(
            !common::current_thread_state().is_null(),
            "pyo3 handed out a token to a detached thread"
        );
        py.eval(c"20 + 22", None, None).unwrap().extract().unwrap()
    })
}

/// P1: `without_gil` inside `Python::attach`, and `Python::attach` inside that: `pyo3` sees
/// the release, so the inner attach really attaches.
#[test]
fn python_attach_inside_without_gil_inside_python_attach_really_attaches() {
    common::python();
    let on_a_thread = |name| {
        std::thread::Builder::new()
            .name(name)
            .spawn(|| {
                Python::attach(|_| {
                    let inner = without_gil(|| {
                        assert!(!is_attached());
                        pyo3_sum()
                    });
                    assert_eq!(inner, 42);
                    assert!(is_attached());
                });
                assert!(!is_attached());
            })
            .unwrap()
            .join()
            .unwrap();
    };
    on_a_thread("native".into());
    // The same from gilguard's side of the thread: a `with_gil` outside.
    std::thread::spawn(|| {
        with_gil(|| Python::attach(|_| assert_eq!(without_gil(pyo3_sum), 42)));
    })
    .join()
    .unwrap();
}

/// P4: a guard moved out of the `Python::attach` it nested in outlives `pyo3`'s thread
/// state: it no longer hands out tokens, and dropping it touches nothing.
#[test]
fn a_guard_that_outlived_python_attach_hands_out_no_token() {
    common::python();
    std::thread::spawn(|| {
        let gil = Python::attach(|_| WithGil::acquire());
        assert!(!is_attached());
        assert_eq!(gil.try_python().err(), Some(GilError::NotAttached));
        // A new attach on this thread is not fooled by the guard's stale frame.
        assert_eq!(
            with_python(|py| py.eval(c"1 + 1", None, None)?.extract::<i64>()).unwrap(),
            2
        );
        drop(gil);
        assert!(!is_attached());
    })
    .join()
    .unwrap();
}

/// Tokens from guards and closures, nested every way with `pyo3`'s own.
#[test]
fn tokens_from_guards_nest_with_pyo3s_own() {
    common::python();
    std::thread::spawn(|| {
        let gil = WithGil::acquire();
        let py = gil.python();
        assert_eq!(
            py.eval(c"2 * 3", None, None)
                .unwrap()
                .extract::<i64>()
                .unwrap(),
            6
        );
        assert_eq!(pyo3_sum(), 42);
        // `pyo3`'s own release inside a guard: a guard inside really attaches.
        let from_inside = py.detach(|| with_python(|py| py.version_info().major));
        assert_eq!(from_inside, 3);
        assert!(gil.try_python().is_ok());
        drop(gil);
        assert!(!is_attached());
        // A guard made and dropped inside `Python::attach`.
        Python::attach(|py| {
            let inner = WithGil::acquire();
            assert!(inner.try_python().is_ok());
            drop(inner);
            assert_eq!(
                py.eval(c"1", None, None).unwrap().extract::<i64>().unwrap(),
                1
            );
        });
        // A guard alive across a whole `Python::attach`.
        let outer = WithGil::acquire();
        assert_eq!(pyo3_sum(), 42);
        drop(outer);
        assert!(!is_attached());
    })
    .join()
    .unwrap();
}

/// Inside a closure form that switched the thread to a sub-interpreter, a main-interpreter
/// guard hands out no token.
#[test]
fn no_token_while_a_sub_interpreter_is_attached() {
    common::python();
    std::thread::spawn(|| {
        let interpreter = gilguard::SubInterpreter::new().unwrap();
        let handle = interpreter.thread_state().unwrap();
        let gil = WithGil::acquire();
        // `run` takes only `Send` closures; safe code reaches this with the guard in a
        // thread-local.
        let same = common::SameThread(&gil);
        let inside = handle
            .run(move || same.get().try_python().map(|_| ()))
            .unwrap();
        assert_eq!(inside, Err(GilError::NotAttached));
        assert!(gil.try_python().is_ok());
    })
    .join()
    .unwrap();
}

/// P2 and P3, the rule's boundary: a guard must be dropped (a `GilGuard` restored) outside
/// every `Python::attach` that began after it. Inside one, `pyo3` relies on the thread
/// staying attached, and `pyo3` exposes nothing this crate could check: dropping the guard
/// there detaches the thread under `pyo3`'s token (and `pyo3`'s release then aborts the
/// process). The child shows the thread detached under the token, then exits before
/// `pyo3`'s release.
#[test]
fn dropping_a_guard_inside_a_later_python_attach_breaks_pyo3s_token() {
    // The child exits on its own (before `pyo3` aborts it), so it never reports a passed
    // test: its output is what is checked.
    // With a time limit, like every child process of the tests.
    let output = common::child_output_within(
        "child_drop_inside_python_attach",
        std::time::Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("detached under a live pyo3 token"),
        "{stdout}{stderr}"
    );
}

#[test]
#[ignore = "runs in a child process, started by dropping_a_guard_inside_a_later_python_attach_breaks_pyo3s_token"]
fn child_drop_inside_python_attach() {
    common::python();
    std::thread::spawn(|| {
        // Allowed: the guard's whole life inside the `Python::attach`, or around it.
        Python::attach(|_| drop(WithGil::acquire()));
        let mut guard = gilguard::GilGuard::new();
        guard.acquire();
        Python::attach(|_| ());
        guard.restore().unwrap();
        assert!(!is_attached());
        // Broken: dropped inside an attach that began after it.
        let gil = WithGil::acquire();
        Python::attach(move |_py| {
            drop(gil);
            if !is_attached() {
                println!("detached under a live pyo3 token");
            }
            // `_py` must not be used now; `pyo3`'s release would abort the process.
            std::process::exit(0);
        });
    })
    .join()
    .unwrap();
}

// ---------------------------------------------------------------------------------------
// `pyo3` knows one interpreter. While another is attached through this crate, `pyo3` must
// count the thread detached, release only main-interpreter references in the main
// interpreter, and find the main interpreter through `PyGILState` afterwards.

/// The interpreter a `pyo3` token from `Python::attach` is for, by id.
fn pyo3_interpreter() -> i64 {
    Python::attach(|_py| {
        // SAFETY: attached (`pyo3`'s token), so the current thread state and its interpreter
        // are live.
        unsafe {
            pyo3_ffi::PyInterpreterState_GetID(pyo3_ffi::PyThreadState_GetInterpreter(
                pyo3_ffi::PyThreadState_Get(),
            ))
        }
    })
}

/// The reference count of `object`, read without the GIL of its interpreter: only the test
/// itself touches the object.
fn refcount(object: usize) -> isize {
    // SAFETY: the object is alive (the test holds a reference) and nothing else uses it.
    unsafe { pyo3_ffi::Py_REFCNT(object as *mut pyo3_ffi::PyObject) }
}

/// A `Py<T>` of the main interpreter moved into `run` (allowed: it is `Send`) and dropped
/// there: `pyo3` must not release it in the sub-interpreter. Inside `Python::attach`, `run`
/// detaches the main interpreter through `pyo3`, which then defers the release and performs
/// it once the main interpreter is back.
#[test]
fn a_main_reference_dropped_in_a_sub_interpreter_is_released_in_the_main_one() {
    common::run_child("child_main_reference_dropped_in_a_sub_interpreter");
}

#[test]
#[ignore = "runs in a child process, started by a_main_reference_dropped_in_a_sub_interpreter_is_released_in_the_main_one"]
fn child_main_reference_dropped_in_a_sub_interpreter() {
    common::python();
    let interpreter = gilguard::SubInterpreter::new().unwrap();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let handle = interpreter.thread_state().unwrap();
            Python::attach(|py| {
                let list = pyo3::types::PyList::empty(py).unbind();
                let object = list.as_ptr() as usize;
                let moved = list.clone_ref(py);
                assert_eq!(refcount(object), 2);
                let inside = handle
                    .run(move || {
                        drop(moved);
                        refcount(object)
                    })
                    .unwrap();
                assert_eq!(inside, 2, "released while the sub-interpreter was attached");
                assert_eq!(
                    refcount(object),
                    1,
                    "not released when the main one came back"
                );
            });
        });
    });
}

/// A main-interpreter reference that `pyo3` deferred (dropped on a detached thread) is not
/// released by a `without_gil` inside `run`, whose re-attach would drain `pyo3`'s queue in
/// the sub-interpreter; the next `pyo3` attach of the main interpreter releases it.
#[test]
fn pyo3s_deferred_releases_are_not_drained_in_a_sub_interpreter() {
    common::run_child("child_deferred_releases_and_a_sub_interpreter");
}

#[test]
#[ignore = "runs in a child process, started by pyo3s_deferred_releases_are_not_drained_in_a_sub_interpreter"]
fn child_deferred_releases_and_a_sub_interpreter() {
    common::python();
    let interpreter = gilguard::SubInterpreter::new().unwrap();
    let (kept, list, object) = Python::attach(|py| {
        let list = pyo3::types::PyList::empty(py).unbind();
        let object = list.as_ptr() as usize;
        let other = list.clone_ref(py);
        (list, other, object)
    });
    assert_eq!(refcount(object), 2);
    std::thread::spawn(move || drop(list)).join().unwrap(); // deferred: detached there
    assert_eq!(refcount(object), 2);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let handle = interpreter.thread_state().unwrap();
            let inside = handle
                .run(|| {
                    without_gil(|| ());
                    refcount(object)
                })
                .unwrap();
            assert_eq!(inside, 2, "pyo3's queue was drained in the sub-interpreter");
        });
    });
    Python::attach(|_| ());
    assert_eq!(refcount(object), 1);
    drop(kept);
}

/// After a region of a sub-interpreter ends, `pyo3`'s `Python::attach` (through
/// `PyGILState_Ensure`) attaches the main interpreter again: on a thread Python did not
/// create, whether it used the main interpreter first or not, and after the handle is gone.
#[test]
fn pyo3_attaches_the_main_interpreter_after_a_sub_interpreter_region() {
    common::python();
    let interpreter = &gilguard::SubInterpreter::new().unwrap();
    std::thread::scope(|scope| {
        for main_first in [false, true] {
            scope.spawn(move || {
                if main_first {
                    with_gil(|| ());
                }
                let handle = interpreter.thread_state().unwrap();
                handle.run(|| ()).unwrap();
                assert_eq!(pyo3_interpreter(), 0, "after run");
                drop(handle.attach().unwrap());
                assert_eq!(pyo3_interpreter(), 0, "after an attach guard");
                with_python(|_| handle.run(|| ()).unwrap());
                assert_eq!(pyo3_interpreter(), 0, "after run from the main interpreter");
                drop(handle);
                assert_eq!(pyo3_interpreter(), 0, "after the handle was deleted");
            });
        }
    });
}

/// The contrast to `tests/native_threads.rs`'s trace function: on a thread Python did not
/// create, each `Python::attach` makes and deletes a thread state, and a `sys.settrace`
/// function set under one is gone under the next (PyO3 #2495). With a gilguard guard first,
/// the thread keeps a thread state that `Python::attach` finds too, and the function stays.
#[test]
fn a_trace_function_is_lost_between_two_pyo3_attaches_unless_the_thread_keeps_its_state() {
    common::python();
    with_gil(|| common::run("import sys\ndef tracer(*args):\n    return None\n"));
    let traced_twice = |keep: bool| {
        std::thread::spawn(move || {
            if keep {
                with_gil(|| ());
            }
            Python::attach(|py| py.run(c"sys.settrace(tracer)", None, None).unwrap());
            let still = Python::attach(|py| {
                py.eval(c"sys.gettrace() is tracer", None, None)
                    .unwrap()
                    .extract::<bool>()
                    .unwrap()
            });
            Python::attach(|py| py.run(c"sys.settrace(None)", None, None).unwrap());
            still
        })
        .join()
        .unwrap()
    };
    assert!(
        !traced_twice(false),
        "pyo3 kept the thread state: the contrast is gone"
    );
    assert!(traced_twice(true));
}
