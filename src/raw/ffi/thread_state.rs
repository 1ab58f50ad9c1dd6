//! Thread states: attaching and detaching them, making and deleting them, and telling
//! whose they are. "Attached" means current on this thread (outside free-threaded builds:
//! holding its interpreter's GIL); "live" means made and not yet deleted. Every call that
//! attaches also needs the runtime initialized and not finalizing, which callers check first
//! (CPython otherwise ends the thread with `pthread_exit` up to 3.13, or blocks it for good).

#![allow(unsafe_code, reason = "the C layer: every wrapper calls C")]

pub(crate) use pyo3_ffi::{PyGILState_STATE, PyInterpreterState, PyThreadState};

/// `PyEval_RestoreThread(tstate)`: attaches `tstate`, taking its interpreter's GIL.
///
/// # Safety
/// This thread is detached; `tstate` is live, of a live interpreter, attached to no other
/// thread, and this thread's (made for it, or detached from it earlier); the runtime is not
/// finalizing.
#[inline(always)]
pub(crate) unsafe fn restore_thread(tstate: *mut PyThreadState) {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::PyEval_RestoreThread(tstate) }
}

/// `PyEval_SaveThread()`: detaches the attached thread state and returns it; only
/// [`restore_thread`] of it, on this thread, brings it back.
///
/// # Safety
/// A thread state is attached to this thread (CPython aborts otherwise: "PyEval_SaveThread:
/// the function must be called with the GIL held").
#[inline(always)]
pub(crate) unsafe fn save_thread() -> *mut PyThreadState {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::PyEval_SaveThread() }
}

/// `PyThreadState_Swap(tstate)`: makes `tstate` (or nothing) current and returns the
/// previous one. From 3.12 it also releases and takes the GILs involved.
///
/// # Safety
/// From 3.12, with a non-null `tstate`: as [`restore_thread`] after detaching. Before 3.12
/// the caller holds the GIL of `tstate`'s interpreter (swapping never touches it).
#[inline(always)]
pub(crate) unsafe fn swap(tstate: *mut PyThreadState) -> *mut PyThreadState {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::PyThreadState_Swap(tstate) }
}

/// `PyGILState_Ensure()` on a detached thread: attaches the thread state `PyGILState` binds
/// to this thread, made (and bound) now if there is none.
///
/// # Safety
/// The runtime is initialized and not finalizing, this thread is detached, and its binding
/// is null or a main-interpreter thread state (it is never used for a sub-interpreter).
#[inline]
pub(crate) unsafe fn gilstate_ensure() -> PyGILState_STATE {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::PyGILState_Ensure() }
}

/// `PyGILState_Release(PyGILState_UNLOCKED)`: for the thread state an [`gilstate_ensure`]
/// made, clears, deletes and detaches it.
///
/// # Safety
/// Pairs with this thread's latest unreleased [`gilstate_ensure`], which returned
/// `PyGILState_UNLOCKED` and whose thread state is attached.
#[inline]
pub(crate) unsafe fn gilstate_release_unlocked() {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::PyGILState_Release(PyGILState_STATE::PyGILState_UNLOCKED) }
}

/// `PyThreadState_New(interp)`: a new thread state, detached, bound to this thread (and to
/// `PyGILState` if it binds none); null if out of memory.
///
/// # Safety
/// `interp` is live.
#[inline]
pub(crate) unsafe fn new_thread_state(interp: *mut PyInterpreterState) -> *mut PyThreadState {
    // SAFETY: the caller's; needs no attached thread state.
    unsafe { pyo3_ffi::PyThreadState_New(interp) }
}

/// `PyThreadState_Clear(tstate)`: releases what the thread state holds, which may run Python
/// code (finalizers) that attaches, detaches and pushes guards meanwhile.
///
/// # Safety
/// `tstate` is attached to this thread, or (as CPython does when it ends an interpreter) it
/// is detached, of the interpreter whose GIL this thread holds, and unused.
#[inline]
pub(crate) unsafe fn clear(tstate: *mut PyThreadState) {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::PyThreadState_Clear(tstate) }
}

/// `PyThreadState_DeleteCurrent()`: deletes the attached thread state, and leaves the
/// thread detached (releasing the GIL).
///
/// # Safety
/// The attached thread state was [`clear`]ed.
#[inline]
pub(crate) unsafe fn delete_current() {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::PyThreadState_DeleteCurrent() }
}

/// `PyThreadState_Delete(tstate)`.
///
/// # Safety
/// `tstate` was cleared and is attached nowhere; this thread holds its interpreter's GIL.
#[inline]
pub(crate) unsafe fn delete(tstate: *mut PyThreadState) {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::PyThreadState_Delete(tstate) }
}

/// `PyThreadState_GetInterpreter(tstate)`.
///
/// # Safety
/// `tstate` is live (it reads an immutable field, and needs no attached thread state).
#[inline]
pub(crate) unsafe fn interpreter_of(tstate: *mut PyThreadState) -> *mut PyInterpreterState {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::PyThreadState_GetInterpreter(tstate) }
}

/// `PyInterpreterState_GetID(interp)`; the main interpreter's is 0.
///
/// # Safety
/// `interp` is live.
#[inline]
pub(crate) unsafe fn interpreter_id(interp: *mut PyInterpreterState) -> i64 {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::PyInterpreterState_GetID(interp) }
}

/// `PyInterpreterState_ThreadHead(interp)` and, with [`next_thread_state`], the walk over an
/// interpreter's thread states.
///
/// # Safety
/// `interp` is live and this thread holds its GIL, so that the list does not change.
#[inline]
pub(crate) unsafe fn thread_head(interp: *mut PyInterpreterState) -> *mut PyThreadState {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::PyInterpreterState_ThreadHead(interp) }
}

/// `PyThreadState_Next(tstate)`.
///
/// # Safety
/// As [`thread_head`], for `tstate`'s interpreter.
#[inline]
pub(crate) unsafe fn next_thread_state(tstate: *mut PyThreadState) -> *mut PyThreadState {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::PyThreadState_Next(tstate) }
}

/// The thread state CPython considers current, without the fatal error
/// `PyThreadState_Get` raises when there is none.
///
/// On 3.12+ this is exactly "the thread state attached to *this* thread" (a thread-local).
/// On 3.9–3.11 it is the thread state of whichever thread holds the one GIL, so a non-null
/// answer only means "this thread is attached" when the pointer is known to belong to this
/// thread; see `guards::attached::is_attached`.
#[inline]
pub(crate) fn current_thread_state() -> *mut PyThreadState {
    // SAFETY: `PyThreadState_GetUnchecked` (3.13, `_PyThreadState_UncheckedGet` before) only
    // loads a pointer and never fails; before initialization it returns null.
    unsafe { pyo3_ffi::compat::PyThreadState_GetUnchecked() }
}

/// Detaches this thread (releasing its GIL, as `PyEval_SaveThread` does) if `expected` is
/// the thread state CPython considers current and `confirm` accepts it, and returns whether
/// it did; otherwise changes nothing. The release path's confirmation and release in one
/// step where the C API allows it.
///
/// From 3.12 `PyThreadState_Swap(NULL)` detaches whatever is attached to this thread (the
/// current thread state is a thread-local, and swapping releases the GIL), returns it, and
/// does nothing when nothing is attached, where `PyEval_SaveThread` would abort: one call
/// instead of a confirming read plus `PyEval_SaveThread`, each of which reads that
/// thread-local through `__tls_get_addr`. Before 3.12 swapping never touches the GIL, and
/// the current thread state may be another thread's: confirm, then save.
///
/// `confirm` is asked only when the pointers match, with the thread state still attached;
/// it tells a thread state from a later one at the same address (a frame's stamp, `guards::stack::Frame`).
///
/// # Safety
/// If it is current and confirmed, `expected` is a thread state this thread may detach, and
/// a `true` answer is paired with `PyEval_RestoreThread(expected)` or left detached for good.
/// Before 3.12, `confirm` must also establish that `expected` belongs to this thread (the
/// current thread state is then process-wide) unless the caller knows it does.
///
#[inline]
pub(crate) unsafe fn detach_if_current(
    expected: *mut PyThreadState,
    confirm: impl FnOnce(*mut PyThreadState) -> bool,
) -> bool {
    #[cfg(Py_3_12)]
    {
        // SAFETY: detaches the thread state attached to this thread, if any (the caller
        // pairs `expected` with a restore); a null argument attaches nothing.
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
        // SAFETY: `expected` holds the GIL and is this thread's (the caller's knowledge or
        // `confirm`); the caller pairs this with `PyEval_RestoreThread(expected)`.
        unsafe { pyo3_ffi::PyEval_SaveThread() };
        true
    }
}

/// `PyThread_get_thread_ident()`: this OS thread's identifier, unique among live threads.
#[inline]
pub(crate) fn thread_ident() -> core::ffi::c_ulong {
    // SAFETY: no precondition; reads the calling thread's identifier.
    unsafe { pyo3_ffi::PyThread_get_thread_ident() }
}

/// `PyThreadState_GetID(tstate)`: a number unique among the thread states its interpreter
/// ever had, so that a thread state can be told from a later one at the same address.
///
/// # Safety
/// `tstate` is live (current on this thread, or known to exist).
#[inline]
pub(crate) unsafe fn thread_state_id(tstate: *mut PyThreadState) -> u64 {
    // SAFETY: live (caller); reads an immutable field, no GIL needed.
    unsafe { pyo3_ffi::PyThreadState_GetID(tstate) as u64 }
}

/// Whether `current`, CPython's current thread state, is attached to *this* thread. From
/// 3.12 the current thread state is a thread-local, so any non-null one is; before, it
/// names whichever thread holds the single GIL, and it is this thread's only when it is
/// the thread state `PyGILState` binds to this thread (one gilguard owns is recognized by
/// the caller).
#[inline]
pub(crate) fn is_this_threads(current: *mut PyThreadState) -> bool {
    #[cfg(Py_3_12)]
    return !current.is_null();
    #[cfg(not(Py_3_12))]
    return !current.is_null() && current == gilstate_thread_state();
}

/// Before 3.12: whether `tstate` was created on this thread, from its `thread_id` field.
/// Where the current thread state may be another thread's, this tells this thread's apart
/// while the crate itself runs Python code that attaches thread states it cannot name
/// beforehand (the first thread state of a new sub-interpreter).
///
/// # Safety
/// `tstate` is live.
#[cfg(not(Py_3_12))]
pub(crate) unsafe fn created_on_this_thread(tstate: *mut PyThreadState) -> bool {
    // SAFETY: live (caller); `thread_id` is written when the thread state is created and
    // never after.
    unsafe { (*tstate.cast::<layout::ThreadStateHead>()).thread_id == thread_ident() }
}

/// The start of `struct _ts` (`Include/cpython/pystate.h`) up to `thread_id`, which no
/// function returns before 3.12. Public headers, stable within a minor version, without
/// conditional fields; `tests::thread_id_is_read_where_cpython_keeps_it` checks it on
/// each version.
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

/// `PyGILState_GetThisThreadState()`: the thread state the `PyGILState_*` API associates
/// with this thread (it may belong to a sub-interpreter), or null.
#[inline]
pub(crate) fn gilstate_thread_state() -> *mut PyThreadState {
    // SAFETY: a thread-specific-storage read guarded by CPython itself against an
    // uninitialized runtime (it returns null then).
    unsafe { pyo3_ffi::PyGILState_GetThisThreadState() }
}

/// `PyInterpreterState_Main()`, null before initialization.
#[inline]
pub(crate) fn main_interpreter() -> *mut PyInterpreterState {
    // SAFETY: returns a field of `_PyRuntime`; no precondition.
    unsafe { pyo3_ffi::PyInterpreterState_Main() }
}

/// Whether `tstate` belongs to the main interpreter.
///
/// # Safety
/// `tstate` must be a live thread state (not yet deleted).
#[inline]
pub(crate) unsafe fn is_main_interpreter_state(tstate: *mut PyThreadState) -> bool {
    // SAFETY: the caller guarantees `tstate` is live; `PyThreadState_GetInterpreter` only
    // reads its `interp` field and needs no GIL.
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
            // A thread state made on another thread is not this one's.
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
