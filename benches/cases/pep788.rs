//! CPython 3.15 only: what attaching a thread Python did not create costs with PEP 788's
//! calls beside the 3.9-3.14 ways (docs/performance-log.md, "PEP 788"). Every case runs on a
//! native thread of its own and attaches and detaches once per step.

use std::hint::black_box;
use std::time::Duration;

use pyo3_ffi as ffi;

use super::{
    Group, Place, raw_gilstate_pair, raw_restore_save_on_kept_state, timed, with_gil_guard,
};

#[repr(C)]
struct PyInterpreterView {
    _opaque: [u8; 0],
}

#[repr(C)]
struct PyInterpreterGuard {
    _opaque: [u8; 0],
}

// The PEP 788 functions as CPython 3.15's `pystate.h` declares them (`pyo3-ffi` 0.30 has
// none); `PyThreadStateToken` is `void`.
unsafe extern "C" {
    fn PyInterpreterView_FromMain() -> *mut PyInterpreterView;
    fn PyInterpreterView_Close(view: *mut PyInterpreterView);
    fn PyInterpreterGuard_FromView(view: *mut PyInterpreterView) -> *mut PyInterpreterGuard;
    fn PyInterpreterGuard_Close(guard: *mut PyInterpreterGuard);
    fn PyThreadState_Ensure(guard: *mut PyInterpreterGuard) -> *mut core::ffi::c_void;
    fn PyThreadState_EnsureFromView(view: *mut PyInterpreterView) -> *mut core::ffi::c_void;
    fn PyThreadState_Release(token: *mut core::ffi::c_void);
}

/// Runs `step` with a view of the main interpreter, made before and closed after the
/// timed steps.
fn with_view(iterations: u64, step: impl Fn(*mut PyInterpreterView)) -> Duration {
    // SAFETY: callable without an attached thread state; closed below.
    let view = unsafe { PyInterpreterView_FromMain() };
    assert!(!view.is_null(), "a view of the running main interpreter");
    let elapsed = timed(iterations, || step(view));
    // SAFETY: made above, no longer used.
    unsafe { PyInterpreterView_Close(view) };
    elapsed
}

/// Runs `f` while this thread has a detached main-interpreter thread state of its own
/// (which `PyThreadState_Ensure*` finds through `PyGILState_GetThisThreadState` and reuses),
/// deleted afterwards.
fn with_own_thread_state<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: a detached native thread of a running runtime; the state is made for this
    // thread (and bound to it), then attached, cleared and deleted while current.
    unsafe {
        let tstate = ffi::PyThreadState_New(ffi::PyInterpreterState_Main());
        let result = f();
        ffi::PyEval_RestoreThread(tstate);
        ffi::PyThreadState_Clear(tstate);
        ffi::PyThreadState_DeleteCurrent();
        result
    }
}

/// The 3.15 group: the raw reuse of a kept thread state (what the guards do on every
/// version) with and without an interpreter guard around it, `PyThreadState_Ensure` and
/// `PyThreadState_EnsureFromView` on a thread that has a thread state and on one that has
/// none, against `WithGil` and `PyGILState_*`.
pub fn group() -> Group {
    Group {
        name: "pep788_native_thread",
        place: Place::NativeThreads,
        raw: "raw_reused_thread_state",
        pyo3: None,
        cases: vec![
            ("raw_reused_thread_state", raw_restore_save_on_kept_state),
            ("raw_guard_around_reused_state", |n| {
                with_own_thread_state(|| {
                    // SAFETY: reads this thread's binding: the state made just before.
                    let tstate = unsafe { ffi::PyGILState_GetThisThreadState() };
                    with_view(n, |view| {
                        // SAFETY: the guard is opened without an attached thread state and
                        // closed after the pair; `tstate` is this thread's, detached.
                        unsafe {
                            let guard = PyInterpreterGuard_FromView(black_box(view));
                            ffi::PyEval_RestoreThread(tstate);
                            ffi::PyEval_SaveThread();
                            PyInterpreterGuard_Close(guard);
                        }
                    })
                })
            }),
            ("raw_ensure_held_guard_reused_state", |n| {
                with_own_thread_state(|| {
                    // SAFETY: one guard held across the steps, closed after them.
                    let guard = unsafe {
                        let view = PyInterpreterView_FromMain();
                        let guard = PyInterpreterGuard_FromView(view);
                        PyInterpreterView_Close(view);
                        guard
                    };
                    let elapsed = timed(n, || {
                        // SAFETY: a balanced pair on a detached thread.
                        unsafe { PyThreadState_Release(PyThreadState_Ensure(black_box(guard))) }
                    });
                    // SAFETY: opened above.
                    unsafe { PyInterpreterGuard_Close(guard) };
                    elapsed
                })
            }),
            ("raw_ensure_from_view_reused_state", |n| {
                with_own_thread_state(|| {
                    with_view(n, |view| {
                        // SAFETY: a balanced pair on a detached thread.
                        unsafe {
                            PyThreadState_Release(PyThreadState_EnsureFromView(black_box(view)))
                        }
                    })
                })
            }),
            ("raw_ensure_from_view_new_state", |n| {
                with_view(n, |view| {
                    // SAFETY: a balanced pair on a detached thread without a thread state:
                    // each Ensure makes one and its Release deletes it.
                    unsafe { PyThreadState_Release(PyThreadState_EnsureFromView(black_box(view))) }
                })
            }),
            ("with_gil_guard", with_gil_guard),
            ("raw_gilstate_pair", raw_gilstate_pair),
        ],
    }
}
