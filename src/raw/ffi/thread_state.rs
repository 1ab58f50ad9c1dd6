//! Thread states. "Attached": current on this thread (outside free-threaded builds: holding
//! its interpreter's GIL); "live": made and not yet deleted. Every call that attaches also
//! needs the runtime initialized and not finalizing, which callers check first (CPython
//! otherwise ends the thread with `pthread_exit` up to 3.13, or blocks it for good).

#![allow(unsafe_code, reason = "the C layer: every wrapper calls C")]

pub(crate) use pyo3_ffi::{PyGILState_STATE, PyInterpreterState, PyThreadState};

/// # Safety
/// This thread is detached; `tstate` is live, of a live interpreter, attached to no other
/// thread, and this thread's (made for it, or detached from it earlier); the runtime is not
/// finalizing.
#[inline(always)]
pub(crate) unsafe fn restore_thread(tstate: *mut PyThreadState) {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::PyEval_RestoreThread(tstate) }
}

/// Detaches the attached thread state and returns it; only [`restore_thread`] of it, on this
/// thread, brings it back.
///
/// # Safety
/// A thread state is attached to this thread (CPython aborts otherwise).
#[inline(always)]
pub(crate) unsafe fn save_thread() -> *mut PyThreadState {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::PyEval_SaveThread() }
}

/// Makes `tstate` (or nothing) current and returns the previous one, leaving the GIL alone
/// (before 3.12; from 3.12 swapping also takes and releases GILs, and nothing here uses it).
///
/// # Safety
/// The caller holds the GIL of `tstate`'s interpreter.
#[cfg(not(Py_3_12))]
#[inline(always)]
pub(crate) unsafe fn swap(tstate: *mut PyThreadState) -> *mut PyThreadState {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::PyThreadState_Swap(tstate) }
}

/// # Safety
/// The runtime is initialized and not finalizing, this thread is detached, and its binding
/// is null or a main-interpreter thread state (it is never used for a sub-interpreter).
#[inline]
pub(crate) unsafe fn gilstate_ensure() -> PyGILState_STATE {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::PyGILState_Ensure() }
}

/// # Safety
/// Pairs with this thread's latest unreleased [`gilstate_ensure`], which returned
/// `PyGILState_UNLOCKED` and whose thread state is attached.
#[inline]
pub(crate) unsafe fn gilstate_release_unlocked() {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::PyGILState_Release(PyGILState_STATE::PyGILState_UNLOCKED) }
}

/// A new thread state, detached, bound to this thread (and to `PyGILState` if it binds
/// none); null if out of memory.
///
/// # Safety
/// `interp` is live.
#[inline]
pub(crate) unsafe fn new_thread_state(interp: *mut PyInterpreterState) -> *mut PyThreadState {
    // SAFETY: the caller's; needs no attached thread state.
    unsafe { pyo3_ffi::PyThreadState_New(interp) }
}

/// Releases what `tstate` holds, which may run Python code (finalizers) that attaches,
/// detaches and pushes guards meanwhile.
///
/// # Safety
/// `tstate` is attached to this thread, or (as CPython does when it ends an interpreter) it
/// is detached, of the interpreter whose GIL this thread holds, and unused.
#[inline]
pub(crate) unsafe fn clear(tstate: *mut PyThreadState) {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::PyThreadState_Clear(tstate) }
}

/// # Safety
/// The attached thread state was [`clear`]ed.
#[inline]
pub(crate) unsafe fn delete_current() {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::PyThreadState_DeleteCurrent() }
}

/// # Safety
/// `tstate` was cleared and is attached nowhere; this thread holds its interpreter's GIL.
#[inline]
pub(crate) unsafe fn delete(tstate: *mut PyThreadState) {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::PyThreadState_Delete(tstate) }
}

/// # Safety
/// `tstate` is live (it reads an immutable field, and needs no attached thread state).
#[inline]
pub(crate) unsafe fn interpreter_of(tstate: *mut PyThreadState) -> *mut PyInterpreterState {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::PyThreadState_GetInterpreter(tstate) }
}

/// # Safety
/// `interp` is live.
#[inline]
pub(crate) unsafe fn interpreter_id(interp: *mut PyInterpreterState) -> i64 {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::PyInterpreterState_GetID(interp) }
}

/// # Safety
/// `interp` is live and this thread holds its GIL, so that the list does not change.
#[inline]
pub(crate) unsafe fn thread_head(interp: *mut PyInterpreterState) -> *mut PyThreadState {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::PyInterpreterState_ThreadHead(interp) }
}

/// # Safety
/// As [`thread_head`], for `tstate`'s interpreter.
#[inline]
pub(crate) unsafe fn next_thread_state(tstate: *mut PyThreadState) -> *mut PyThreadState {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::PyThreadState_Next(tstate) }
}

/// The thread state CPython considers current, without `PyThreadState_Get`'s fatal error
/// when there is none. From 3.12 that is the one attached to this thread (a thread-local);
/// before, that of whichever thread holds the one GIL (see [`is_this_threads`]).
#[inline]
pub(crate) fn current_thread_state() -> *mut PyThreadState {
    // SAFETY: only loads a pointer (null before initialization); no precondition.
    unsafe { pyo3_ffi::compat::PyThreadState_GetUnchecked() }
}

/// Detaches this thread (releasing its GIL) if `expected` is the current thread state and
/// `confirm` accepts it, and returns whether it did; otherwise changes nothing. `confirm`
/// runs only when the pointers match, with `expected` still attached; it tells a thread
/// state from a later one at the same address (`Frame::foreign_id`).
///
/// From 3.12 one `PyThreadState_Swap(NULL)` detaches whatever is attached (nothing if
/// nothing is), where a confirming read and `PyEval_SaveThread` would read the thread-local
/// twice. Before 3.12 swapping never touches the GIL, and the current thread state may be
/// another thread's: confirm, then save.
///
/// # Safety
/// If current and confirmed, `expected` is a thread state this thread may detach, and a
/// `true` answer is paired with `PyEval_RestoreThread(expected)` or left detached for good.
/// Before 3.12 `confirm` must also establish that it is this thread's, unless the caller knows.
#[inline]
pub(crate) unsafe fn detach_if_current(
    expected: *mut PyThreadState,
    confirm: impl FnOnce(*mut PyThreadState) -> bool,
) -> bool {
    #[cfg(Py_3_12)]
    {
        // SAFETY: attaches nothing; what it detaches is restored below, or paired by the caller.
        let detached = unsafe { pyo3_ffi::PyThreadState_Swap(core::ptr::null_mut()) };
        if detached == expected && confirm(detached) {
            return true;
        }
        if !detached.is_null() {
            // SAFETY: `detached` was attached to this thread just above: put it back.
            unsafe { pyo3_ffi::PyEval_RestoreThread(detached) };
        }
        false
    }
    #[cfg(not(Py_3_12))]
    {
        if current_thread_state() != expected || !confirm(expected) {
            return false;
        }
        // SAFETY: `expected` is current and this thread's (`confirm`, or the caller); the
        // caller pairs this with a restore.
        unsafe { pyo3_ffi::PyEval_SaveThread() };
        true
    }
}

/// This OS thread's identifier, unique among live threads.
#[inline]
pub(crate) fn thread_ident() -> core::ffi::c_ulong {
    // SAFETY: no precondition.
    unsafe { pyo3_ffi::PyThread_get_thread_ident() }
}

/// Unique among the thread states its interpreter ever had: tells a thread state from a
/// later one at the same address.
///
/// # Safety
/// `tstate` is live.
#[inline]
pub(crate) unsafe fn thread_state_id(tstate: *mut PyThreadState) -> u64 {
    // SAFETY: live (caller); reads an immutable field, no GIL needed.
    unsafe { pyo3_ffi::PyThreadState_GetID(tstate) as u64 }
}

/// Whether `current`, CPython's current thread state, is attached to *this* thread: from
/// 3.12 any non-null one is; before, only the one `PyGILState` binds to this thread (the
/// caller recognizes those the crate owns).
#[inline]
pub(crate) fn is_this_threads(current: *mut PyThreadState) -> bool {
    #[cfg(Py_3_12)]
    return !current.is_null();
    #[cfg(not(Py_3_12))]
    return !current.is_null() && current == gilstate_thread_state();
}

/// Before 3.12: whether `tstate` was created on this thread (its `thread_id`), for thread
/// states the crate cannot name beforehand (a new sub-interpreter's first one).
///
/// # Safety
/// `tstate` is live.
#[cfg(not(Py_3_12))]
pub(crate) unsafe fn created_on_this_thread(tstate: *mut PyThreadState) -> bool {
    // SAFETY: live (caller); `thread_id` is written at creation and never after.
    unsafe { (*tstate.cast::<layout::ThreadStateHead>()).thread_id == thread_ident() }
}

/// The start of `struct _ts` (`Include/cpython/pystate.h`) up to `thread_id`, which no
/// function returns before 3.12: a public header, stable within a minor version, without
/// conditional fields; checked on each by `tests::thread_id_is_read_where_cpython_keeps_it`.
#[cfg(not(Py_3_12))]
mod layout {
    use core::ffi::{c_int, c_ulong, c_void};

    type Pointer = *mut c_void;

    #[cfg(not(Py_3_10))]
    #[repr(C)]
    pub(super) struct ThreadStateHead {
        links: [Pointer; 4], // prev, next, interp, frame
        recursion_depth: c_int,
        flags: [core::ffi::c_char; 2], // overflowed, recursion_critical
        counters: [c_int; 3],          // stackcheck_counter, tracing, use_tracing
        tracing: [Pointer; 4],
        raised: [Pointer; 3],
        exc_state: [Pointer; 4],
        rest: [Pointer; 2], // exc_info, dict
        gilstate_counter: c_int,
        async_exc: Pointer,
        pub(super) thread_id: c_ulong,
    }

    #[cfg(all(Py_3_10, not(Py_3_11)))]
    #[repr(C)]
    pub(super) struct ThreadStateHead {
        links: [Pointer; 4],  // prev, next, interp, frame
        counters: [c_int; 4], // recursion_depth, recursion_headroom, stackcheck_counter, tracing
        cframe: Pointer,
        tracing: [Pointer; 4],
        raised: [Pointer; 3],
        exc_state: [Pointer; 4],
        rest: [Pointer; 2], // exc_info, dict
        gilstate_counter: c_int,
        async_exc: Pointer,
        pub(super) thread_id: c_ulong,
    }

    #[cfg(Py_3_11)]
    #[repr(C)]
    pub(super) struct ThreadStateHead {
        links: [Pointer; 3], // prev, next, interp
        // _initialized, _static, recursion_remaining, recursion_limit, recursion_headroom,
        // tracing, tracing_what
        counters: [c_int; 7],
        cframe: Pointer,
        tracing: [Pointer; 4],
        raised: [Pointer; 3],
        rest: [Pointer; 2], // exc_info, dict
        gilstate_counter: c_int,
        async_exc: Pointer,
        pub(super) thread_id: c_ulong,
    }
}

/// The thread state `PyGILState` binds to this thread (maybe a sub-interpreter's), or null.
#[inline]
pub(crate) fn gilstate_thread_state() -> *mut PyThreadState {
    // SAFETY: no precondition; null before initialization.
    unsafe { pyo3_ffi::PyGILState_GetThisThreadState() }
}

/// Null before initialization.
#[inline]
pub(crate) fn main_interpreter() -> *mut PyInterpreterState {
    // SAFETY: returns a field of `_PyRuntime`; no precondition.
    unsafe { pyo3_ffi::PyInterpreterState_Main() }
}

/// # Safety
/// `tstate` is live.
#[inline]
pub(crate) unsafe fn is_main_interpreter_state(tstate: *mut PyThreadState) -> bool {
    // SAFETY: live (caller); reads an immutable field, no GIL needed.
    unsafe { pyo3_ffi::PyThreadState_GetInterpreter(tstate) == main_interpreter() }
}

#[cfg(all(test, not(Py_3_12)))]
mod tests {
    #[test]
    fn thread_id_is_read_where_cpython_keeps_it() {
        // SAFETY: the runtime is started here, once, for this test binary's threads; the
        // thread states read are live (made and attached here, deleted after).
        unsafe {
            if pyo3_ffi::Py_IsInitialized() == 0 {
                pyo3_ffi::Py_InitializeEx(0);
                pyo3_ffi::PyEval_SaveThread();
            }
            let on_this_thread = || {
                let tstate = pyo3_ffi::PyThreadState_New(super::main_interpreter());
                let mine = super::created_on_this_thread(tstate);
                pyo3_ffi::PyEval_RestoreThread(tstate);
                pyo3_ffi::PyThreadState_Clear(tstate);
                pyo3_ffi::PyThreadState_DeleteCurrent();
                mine
            };
            assert!(on_this_thread());
            assert!(std::thread::spawn(on_this_thread).join().unwrap());
            let theirs = std::thread::spawn(|| {
                pyo3_ffi::PyThreadState_New(super::main_interpreter()) as usize
            })
            .join()
            .unwrap() as *mut pyo3_ffi::PyThreadState;
            assert!(!super::created_on_this_thread(theirs));
            pyo3_ffi::PyEval_RestoreThread(theirs);
            pyo3_ffi::PyThreadState_Clear(theirs);
            pyo3_ffi::PyThreadState_DeleteCurrent();
        }
    }
}
