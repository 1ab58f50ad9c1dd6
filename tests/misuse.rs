//! Misuse is answered with a `GilError` or a panic with a message, never with a
//! `Fatal Python error`.

mod common;

use gilguard::{GilError, GilGuard, WithGil, WithoutGil, is_attached, with_gil, without_gil};

#[test]
fn releasing_while_detached_is_refused() {
    common::python();
    std::thread::spawn(|| {
        // SAFETY: the guard is never created.
        let refused = unsafe { WithoutGil::new() };
        assert_eq!(refused.unwrap_err(), GilError::NotAttached);
        let mut guard = GilGuard::new();
        // SAFETY: nothing is pushed.
        assert_eq!(unsafe { guard.release() }, Err(GilError::NotAttached));
        assert_eq!(guard.depth(), 0);
        // The closure form has nothing to release and just runs.
        assert_eq!(without_gil(|| 7), 7);
        assert!(!is_attached());
    })
    .join()
    .unwrap();
}

#[test]
fn restoring_an_empty_guard_is_refused() {
    common::python();
    std::thread::spawn(|| {
        let mut guard = GilGuard::new();
        assert_eq!(guard.restore(), Err(GilError::NothingToRestore));
        guard.acquire();
        assert_eq!(guard.restore(), Ok(()));
        assert_eq!(guard.restore(), Err(GilError::NothingToRestore));
        assert!(!is_attached());
    })
    .join()
    .unwrap();
}

/// A guard created inside someone else's detach (pyo3's `py.detach`, Cython's `nogil`,
/// raw FFI) must really acquire, although the frame stack's top says "attached".
#[test]
fn guard_inside_foreign_detach_really_acquires() {
    common::python();
    std::thread::spawn(|| {
        let _outer = WithGil::acquire();
        // SAFETY: attached; restored below on this thread before `_outer` is dropped.
        let saved = unsafe { pyo3_ffi::PyEval_SaveThread() };
        assert!(!is_attached());
        {
            let _inner = WithGil::acquire();
            assert!(is_attached());
            common::run("x = 1 + 1");
            let mut guard = GilGuard::new();
            guard.acquire();
            assert!(guard.owns_gil());
        }
        assert!(!is_attached());
        // SAFETY: pairs with the save above.
        unsafe { pyo3_ffi::PyEval_RestoreThread(saved) };
        assert!(is_attached());
    })
    .join()
    .unwrap();
}

/// Releasing inside someone else's detach is refused, although the frame stack's top says
/// "attached": `PyEval_SaveThread` there would abort the process.
#[test]
fn releasing_inside_foreign_detach_is_refused() {
    common::python();
    std::thread::spawn(|| {
        let _outer = WithGil::acquire();
        // SAFETY: attached; restored below on this thread before `_outer` is dropped.
        let saved = unsafe { pyo3_ffi::PyEval_SaveThread() };
        // SAFETY: the guard is never created.
        let refused = unsafe { WithoutGil::new() };
        assert_eq!(refused.unwrap_err(), GilError::NotAttached);
        assert_eq!(without_gil(|| 7), 7);
        assert!(!is_attached());
        // SAFETY: pairs with the save above.
        unsafe { pyo3_ffi::PyEval_RestoreThread(saved) };
        assert!(is_attached());
    })
    .join()
    .unwrap();
}

/// A thread state that foreign code attached in place of the one the frame stack knows is
/// the one released, and the one restored afterwards. (Before 3.12 CPython only knows which
/// thread state holds the GIL, and this crate cannot tell such a state from another
/// thread's: `is_attached` is false there, guide §2.5.)
#[cfg(Py_3_12)]
#[test]
fn releasing_a_thread_state_foreign_code_swapped_in() {
    common::python();
    std::thread::spawn(|| {
        let _outer = WithGil::acquire();
        let ours = common::current_thread_state();
        // SAFETY: attached to `ours`, which is detached here and re-attached at the end;
        // `theirs` is a new thread state of the main interpreter, attached in its place
        // and deleted again before that.
        let theirs = unsafe {
            pyo3_ffi::PyEval_SaveThread();
            let theirs = pyo3_ffi::PyThreadState_New(pyo3_ffi::PyInterpreterState_Main());
            pyo3_ffi::PyEval_RestoreThread(theirs);
            theirs
        };
        assert!(!without_gil(is_attached));
        assert_eq!(common::current_thread_state(), theirs);
        {
            // SAFETY: dropped at once, with nothing run meanwhile.
            let released = unsafe { WithoutGil::new() }.unwrap();
            assert!(!is_attached());
            drop(released);
        }
        assert_eq!(common::current_thread_state(), theirs);
        // SAFETY: `theirs` is attached to this thread and no frame uses it any more.
        unsafe {
            pyo3_ffi::PyThreadState_Clear(theirs);
            pyo3_ffi::PyThreadState_DeleteCurrent();
            pyo3_ffi::PyEval_RestoreThread(ours);
        }
        assert_eq!(common::current_thread_state(), ours);
    })
    .join()
    .unwrap();
}

/// Foreign code that attached the thread (a C library's `PyGILState_Ensure` before calling
/// back into Rust) is recognized: no second attach, and releasing works.
#[test]
fn guards_inside_foreign_attach() {
    common::python();
    std::thread::spawn(|| {
        // SAFETY: initialized; released below after all guards are gone.
        let state = unsafe { pyo3_ffi::PyGILState_Ensure() };
        let before = common::current_thread_state();
        with_gil(|| assert_eq!(common::current_thread_state(), before));
        let released = without_gil(is_attached);
        assert!(!released);
        assert!(is_attached());
        // SAFETY: pairs with the ensure above.
        unsafe { pyo3_ffi::PyGILState_Release(state) };
        assert!(!is_attached());
    })
    .join()
    .unwrap();
}

#[test]
fn guards_before_initialization_are_refused() {
    common::run_child("child_before_initialization");
}

#[test]
#[ignore = "runs in a child process, started by guards_before_initialization_are_refused"]
fn child_before_initialization() {
    assert!(!gilguard::is_initialized());
    assert!(!is_attached());
    assert_eq!(
        WithGil::try_acquire().unwrap_err(),
        GilError::NotInitialized
    );
    assert_eq!(gilguard::try_with_gil(|| ()), Err(GilError::NotInitialized));
    let mut guard = GilGuard::new();
    assert_eq!(guard.try_acquire(), Err(GilError::NotInitialized));
    assert_eq!(guard.depth(), 0);
    let panic = std::panic::catch_unwind(|| drop(WithGil::acquire())).unwrap_err();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(message.contains("not initialized") && message.contains("try_acquire"));
    // And the crate works once the runtime is started.
    gilguard::initialize().unwrap();
    with_gil(|| assert!(is_attached()));
}

/// A guard created inside a closure form that outlives it (leaked, or kept somewhere) is
/// ended when the closure returns: the closure's caller gets back exactly the state it
/// had, and the guard's own drop, if it ever comes, does nothing.
#[test]
fn a_closure_form_ends_the_guards_that_outlive_it() {
    common::python();
    std::thread::spawn(|| {
        with_gil(|| {
            let before = common::current_thread_state();
            with_gil(|| {
                // SAFETY: deliberately broken (the guard is leaked); the closure ends it.
                std::mem::forget(unsafe { WithoutGil::new() }.unwrap());
            });
            assert_eq!(common::current_thread_state(), before);
            // A safe leak that would leave the caller attached to another thread state.
            without_gil(|| std::mem::forget(WithGil::acquire()));
            assert_eq!(common::current_thread_state(), before);
            common::run("x = 1");
            // A guard moved out of the closure: ended with it, and harmless to drop later.
            let escaped = with_gil(WithGil::acquire);
            assert_eq!(common::current_thread_state(), before);
            let released = without_gil(is_attached);
            assert!(!released);
            drop(escaped);
            assert!(is_attached());
        });
        assert!(!is_attached());
        // The thread keeps working.
        with_gil(|| common::run("y = 2"));
        assert!(!is_attached());
    })
    .join()
    .unwrap();
}

/// A leaked guard that leaves the state the caller expects changes nothing for the caller,
/// and does not outlive the closure that made it: the GIL is not held for good.
#[test]
fn leaking_a_compatible_guard_inside_a_closure_is_harmless() {
    common::python();
    std::thread::spawn(|| {
        with_gil(|| {
            with_gil(|| std::mem::forget(WithGil::acquire()));
            assert!(is_attached());
        });
        assert!(!is_attached());
        // And outside any closure, a leaked guard keeps the thread attached, like a leaked
        // `MutexGuard` keeps a lock.
        std::mem::forget(WithGil::acquire());
        assert!(is_attached());
        // SAFETY: the leaked guard above attached this thread, and nothing else of this
        // thread uses Python again: the thread ends here.
        unsafe { pyo3_ffi::PyEval_SaveThread() };
    })
    .join()
    .unwrap();
}
