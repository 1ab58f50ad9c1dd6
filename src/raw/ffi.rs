//! The C preconditions of every CPython function this crate calls, stated once, and the
//! version shims over the C API: where the CPython version changes which function is
//! called or what its answer means. (The version-specific steps of creating and ending a
//! sub-interpreter stay in `interpreters/sub_interpreter.rs` and
//! `interpreters/interpreter_end.rs`, and `is_attached`'s in `guards/attached.rs`, beside
//! the logic they belong to.)
//!
//! Everything here that takes no pointer is callable at any time, from any thread, whether
//! or not Python is initialized, and so is exposed as a safe function.
//!
//! # C preconditions
//!
//! What CPython requires of each call, so that a call site outside this file can cite it
//! (`// C preconditions: raw::ffi, PyEval_RestoreThread.`) and its `SAFETY` comment only
//! say why the contract holds there. "Attached" means the thread's thread state is current
//! (which, outside free-threaded builds, means it holds that interpreter's GIL); "live"
//! means created and not yet deleted. Every call that attaches also needs the runtime
//! initialized and not finalizing: otherwise CPython ends the thread with `pthread_exit`
//! (3.13 and older) or blocks it for good (3.14+). The crate checks that first
//! (`runtime::check_can_attach`, the shutdown gate).
//!
//! **Attaching and detaching**
//! - `PyEval_RestoreThread(tstate)`: this thread is detached; `tstate` is live, of a live
//!   interpreter, and not attached on any other thread; it is this thread's (made for it,
//!   or detached from it earlier). Attaches `tstate`. Pairs with the `PyEval_SaveThread`
//!   that detached it, or is undone by one.
//! - `PyEval_SaveThread()`: a thread state is attached to this thread (otherwise: "Fatal
//!   Python error: PyEval_SaveThread: the function must be called with the GIL held").
//!   Detaches it and returns it; only `PyEval_RestoreThread` of that state, on this
//!   thread, may bring it back.
//! - `PyThreadState_Swap(tstate)`: makes `tstate` (or nothing, for null) current on this
//!   thread and returns the previous one. From 3.12 it also releases and takes the GILs
//!   involved: with a non-null `tstate` it has the preconditions of `PyEval_RestoreThread`
//!   (after detaching). Before 3.12 it never touches the GIL: the caller holds the GIL of
//!   `tstate`'s interpreter.
//! - `PyGILState_Ensure()`: the runtime is initialized; never for a sub-interpreter (it
//!   only knows the main interpreter, and attaches whatever thread state it binds to this
//!   thread). Returns a state passed to the matching `PyGILState_Release`.
//! - `PyGILState_Release(state)`: pairs with this thread's latest unreleased
//!   `PyGILState_Ensure`, which returned `state`, with that call's thread state attached;
//!   for `PyGILState_UNLOCKED` of a thread state the `Ensure` created, it clears, deletes and
//!   detaches it.
//!
//! **Creating and deleting thread states**
//! - `PyThreadState_New(interp)`: `interp` is live. Needs no attached thread state; the new
//!   state is detached and bound to no thread until attached.
//! - `PyThreadState_Clear(tstate)`: `tstate` is attached to this thread. May run Python code
//!   (finalizers of what it holds), which may attach, detach and push guards meanwhile.
//! - `PyThreadState_DeleteCurrent()`: the attached thread state was cleared. Deletes it
//!   and leaves the thread detached (releasing the GIL).
//! - `PyThreadState_Delete(tstate)`: `tstate` was cleared and is attached nowhere; the
//!   caller holds its interpreter's GIL, so that nothing else walks its list meanwhile.
//!
//! **Reading thread states and interpreters**
//! - `PyThreadState_GetInterpreter(tstate)`, `PyThreadState_GetID(tstate)`: `tstate` is
//!   live. They read immutable fields and need no attached thread state.
//! - `PyInterpreterState_GetID(interp)`: `interp` is live.
//! - `PyInterpreterState_ThreadHead(interp)`, `PyThreadState_Next(tstate)`: `interp` is
//!   live and this thread holds its GIL, so that its list of thread states does not change
//!   during the walk.
//! - `PyThread_get_thread_ident()`, `Py_GetVersion()`, `PyStatus_Exception(status)`: no
//!   precondition.
//!
//! **The runtime and interpreters**
//! - `Py_InitializeEx(0)`: the runtime is neither initialized nor finalizing, and no other
//!   thread initializes it at the same time. Leaves this thread attached to the new main
//!   thread state.
//! - `Py_AtExit(callback)`: the runtime is initialized; before 3.12 the caller holds the
//!   main GIL (the slot table has no lock of its own). Fails (returns -1) when the 32 slots
//!   are taken.
//! - `Py_NewInterpreter()`, `Py_NewInterpreterFromConfig(&tstate, &config)` (3.12+): a
//!   thread state is attached to this thread (its GIL held). On success the new
//!   interpreter's first thread state is attached in its place, and the previous one is
//!   swapped out without being detached properly: the caller brings it back. With
//!   `OWN_GIL`, `config` has `use_main_obmalloc == 0` and
//!   `check_multi_interp_extensions == 1`.
//! - `Py_EndInterpreter(tstate)`: `tstate` is attached and belongs to the interpreter being
//!   ended; it is that interpreter's only thread state (3.13+ aborts with "not the last
//!   thread" otherwise) and runs no frame. Leaves nothing attached.
//!
//! **Objects** (`Py_None`, `Py_INCREF`, `Py_DECREF`, `Py_XDECREF`, `PyImport_ImportModule`,
//! `PyObject_GetAttrString`, `PyObject_Call`, `PyTuple_New`, `PyTuple_Pack`,
//! `PyCFunction_NewEx`, `PyDict_New`, `PyDict_SetItemString`, `PyEval_GetBuiltins`,
//! `PyRun_String`, `PyRun_SimpleString`, `PyErr_WriteUnraisable`): this thread is attached
//! to the interpreter the objects belong to; references are used as the C API documents
//! them (new or borrowed); decrementing a count may run arbitrary Python code.
//!
//! **Critical sections** (`sync::critical_section`): `PyCriticalSection_Begin(section,
//! object)`, `PyCriticalSection2_Begin(section, a, b)`, `PyCriticalSection_BeginMutex(section,
//! mutex)` (3.14+): this thread is attached; the objects (or the mutex) stay alive until the
//! matching `End`; `section` stays at one address from `Begin` to `End`, since the thread
//! state links to it. `PyCriticalSection_End(section)`, `PyCriticalSection2_End(section)`:
//! this thread is attached to the same thread state, and `section` is its newest section not
//! yet ended (CPython pops the top of its list without checking).
//!
//! **Exceptions** (`PyErr_GetRaisedException`, `PyErr_SetRaisedException` (3.12+),
//! `PyErr_Fetch`, `PyErr_NormalizeException`, `PyErr_Restore`, `PyException_SetTraceback`,
//! `PyException_GetTraceback`, `PyErr_SetObject`, `PyErr_Clear`, `PyObject_Str`,
//! `PyUnicode_AsUTF8AndSize`, `PyUnicode_FromStringAndSize`): this thread is attached, to
//! the interpreter the objects belong to. Taking the error indicator hands its references
//! to the caller; restoring or setting it steals them (`PyErr_SetObject` does not steal).
//! `PyObject_Str` runs Python code and must not be called with an exception set. The
//! `PyExc_*` type objects are static, shared by every interpreter, and never freed.
//!
//! **PEP 788** (3.15, `pep788` below): `PyInterpreterView_FromMain()`,
//! `PyInterpreterGuard_FromView(view)` and `PyInterpreterGuard_Close(guard)` need no
//! attached thread state; a view is used only in the runtime it was made in, and a guard is
//! closed once.

#![allow(unsafe_code, reason = "the C layer: every wrapper calls C")]

use pyo3_ffi::{PyInterpreterState, PyThreadState};

#[cfg(not(Py_3_13))]
unsafe extern "C" {
    /// Public as `Py_IsFinalizing` only from 3.13; exported under this name since 3.7.
    fn _Py_IsFinalizing() -> core::ffi::c_int;
}

/// `Py_IsInitialized()`.
#[inline]
pub(crate) fn is_initialized() -> bool {
    // SAFETY: reads a flag of the runtime; documented as callable before initialization.
    unsafe { pyo3_ffi::Py_IsInitialized() != 0 }
}

/// `Py_IsFinalizing()` (3.13+) or `_Py_IsFinalizing()`: true from the moment
/// `Py_FinalizeEx` marks the runtime as finalizing until it is re-initialized.
#[inline]
pub(crate) fn is_finalizing() -> bool {
    // SAFETY: reads `_PyRuntime`'s finalizing pointer; no precondition on any version.
    unsafe {
        #[cfg(Py_3_13)]
        let finalizing = pyo3_ffi::Py_IsFinalizing();
        #[cfg(not(Py_3_13))]
        let finalizing = _Py_IsFinalizing();
        finalizing != 0
    }
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

/// A thread's pending exception, taken out of its error indicator by [`take_error`].
#[cfg(Py_3_12)]
pub(crate) struct SavedError(*mut pyo3_ffi::PyObject);
/// A thread's pending exception, taken out of its error indicator by [`take_error`].
#[cfg(not(Py_3_12))]
pub(crate) struct SavedError([*mut pyo3_ffi::PyObject; 3]);

/// Takes the attached thread's pending exception, if any, out of its error indicator, so
/// that Python code run before [`restore_error`] starts with none (CPython functions must
/// not be called with one set) and cannot lose it. `PyErr_GetRaisedException` from 3.12,
/// `PyErr_Fetch` before.
///
/// # Safety
/// The thread is attached; the result is passed to [`restore_error`] on this thread.
pub(crate) unsafe fn take_error() -> SavedError {
    // SAFETY: attached (caller); takes over the references the indicator held.
    unsafe {
        #[cfg(Py_3_12)]
        let saved = SavedError(pyo3_ffi::PyErr_GetRaisedException());
        #[cfg(not(Py_3_12))]
        let saved = {
            let mut parts = [core::ptr::null_mut(); 3];
            let [kind, value, traceback] = &mut parts;
            pyo3_ffi::PyErr_Fetch(kind, value, traceback);
            SavedError(parts)
        };
        saved
    }
}

/// Puts back what [`take_error`] took, replacing whatever the indicator holds by then.
///
/// # Safety
/// The thread is attached.
pub(crate) unsafe fn restore_error(saved: SavedError) {
    // SAFETY: attached (caller); hands the references back to the indicator (all null
    // clears it).
    unsafe {
        #[cfg(Py_3_12)]
        pyo3_ffi::PyErr_SetRaisedException(saved.0);
        #[cfg(not(Py_3_12))]
        {
            let [kind, value, traceback] = saved.0;
            pyo3_ffi::PyErr_Restore(kind, value, traceback);
        }
    }
}

/// The attached thread's raised exception as one object (a new reference, normalized: an
/// instance carrying its traceback), clearing the error indicator; null if none is set.
/// `PyErr_GetRaisedException` from 3.12; before, `PyErr_Fetch` and
/// `PyErr_NormalizeException`, with the traceback stored on the instance as 3.12 keeps it.
///
/// # Safety
/// The thread is attached.
pub(crate) unsafe fn take_raised_exception() -> *mut pyo3_ffi::PyObject {
    #[cfg(Py_3_12)]
    {
        // SAFETY: attached (caller); hands over the indicator's reference.
        // C preconditions: raw::ffi, PyErr_GetRaisedException.
        unsafe { pyo3_ffi::PyErr_GetRaisedException() }
    }
    #[cfg(not(Py_3_12))]
    {
        let [mut kind, mut value, mut traceback] = [core::ptr::null_mut(); 3];
        // SAFETY: attached (caller). Fetching hands over three new (or null) references and
        // clears the indicator; normalizing replaces them with new references and makes
        // `value` an instance; the instance then takes its own reference to the traceback,
        // and the type and traceback references fetched here are released.
        // C preconditions: raw::ffi, PyErr_Fetch, PyErr_NormalizeException.
        unsafe {
            pyo3_ffi::PyErr_Fetch(&mut kind, &mut value, &mut traceback);
            if kind.is_null() {
                return core::ptr::null_mut();
            }
            pyo3_ffi::PyErr_NormalizeException(&mut kind, &mut value, &mut traceback);
            if !value.is_null() && !traceback.is_null() {
                pyo3_ffi::PyException_SetTraceback(value, traceback);
            }
            pyo3_ffi::Py_XDECREF(traceback);
            pyo3_ffi::Py_XDECREF(kind);
        }
        value
    }
}

/// Sets `exception` (an instance of an exception type, as [`take_raised_exception`] returns
/// it) as the attached thread's raised exception, stealing the reference.
/// `PyErr_SetRaisedException` from 3.12; `PyErr_Restore` of its type, itself and its
/// traceback before.
///
/// # Safety
/// The thread is attached to the interpreter `exception` belongs to; `exception` is a
/// strong reference to an exception instance, given up here.
pub(crate) unsafe fn set_raised_exception(exception: *mut pyo3_ffi::PyObject) {
    #[cfg(Py_3_12)]
    {
        // SAFETY: attached, an exception instance (caller); steals the reference.
        // C preconditions: raw::ffi, PyErr_SetRaisedException.
        unsafe { pyo3_ffi::PyErr_SetRaisedException(exception) };
    }
    #[cfg(not(Py_3_12))]
    {
        // SAFETY: attached, an exception instance (caller). `PyErr_Restore` steals three
        // references: a new one to the type, the caller's to the instance, and the new one
        // `PyException_GetTraceback` returns (or null).
        // C preconditions: raw::ffi, PyErr_Restore, PyException_GetTraceback.
        unsafe {
            let kind = pyo3_ffi::Py_TYPE(exception).cast::<pyo3_ffi::PyObject>();
            pyo3_ffi::Py_INCREF(kind);
            let traceback = pyo3_ffi::PyException_GetTraceback(exception);
            pyo3_ffi::PyErr_Restore(kind, exception, traceback);
        }
    }
}

/// `PythonFinalizationError` (3.13+), a subclass of `RuntimeError`. `pyo3-ffi` 0.30 does not
/// declare it; CPython 3.13 exports it (`Include/cpython/pyerrors.h`).
#[cfg(Py_3_13)]
pub(crate) fn python_finalization_error() -> *mut pyo3_ffi::PyObject {
    unsafe extern "C" {
        static mut PyExc_PythonFinalizationError: *mut pyo3_ffi::PyObject;
    }
    // SAFETY: a static CPython sets once at start-up and never writes again; read by value.
    unsafe { PyExc_PythonFinalizationError }
}

/// CPython's message for a failed `PyStatus`.
#[cfg(Py_3_12)]
pub(crate) fn status_message(status: &pyo3_ffi::PyStatus) -> String {
    let text = |pointer: *const core::ffi::c_char| {
        if pointer.is_null() {
            return None;
        }
        // SAFETY: a non-null string of a `PyStatus` is static and NUL-terminated.
        let text = unsafe { core::ffi::CStr::from_ptr(pointer) };
        Some(text.to_string_lossy().into_owned())
    };
    match (text(status.func), text(status.err_msg)) {
        (Some(func), Some(message)) => format!("{func}: {message}"),
        (None, Some(message)) => message,
        _ => format!("exit status {}", status.exitcode),
    }
}

#[cfg(test)]
mod tests {
    #[cfg(not(Py_3_12))]
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

    #[cfg(Py_3_12)]
    #[test]
    fn status_message_carries_cpythons_text() {
        // SAFETY: builds a status value; needs no runtime.
        let status = unsafe { pyo3_ffi::PyStatus_Error(c"per-interpreter GIL failed".as_ptr()) };
        assert_eq!(super::status_message(&status), "per-interpreter GIL failed");
    }
}

/// PEP 788 (CPython 3.15): finalization guards. `pyo3-ffi` 0.30 does not declare them;
/// these match the declarations of CPython 3.15.2's `pystate.h`, and CI runs them on it.
#[cfg(Py_3_15)]
pub(crate) mod pep788 {
    /// `PyInterpreterGuard`: while one is open, the interpreter does not start finalizing.
    #[repr(C)]
    pub(crate) struct PyInterpreterGuard {
        _opaque: [u8; 0],
    }

    /// `PyInterpreterView`: names an interpreter that may already be gone.
    #[repr(C)]
    pub(crate) struct PyInterpreterView {
        _opaque: [u8; 0],
    }

    unsafe extern "C" {
        /// A view of the main interpreter; null if it has finalized or memory ran out. No
        /// attached thread state needed.
        pub(crate) fn PyInterpreterView_FromMain() -> *mut PyInterpreterView;
        /// A guard through `view`; null, without an exception, if the interpreter is gone or
        /// finalizing. No attached thread state needed.
        pub(crate) fn PyInterpreterGuard_FromView(
            view: *mut PyInterpreterView,
        ) -> *mut PyInterpreterGuard;
        /// Closes (and frees) a guard. No attached thread state needed.
        pub(crate) fn PyInterpreterGuard_Close(guard: *mut PyInterpreterGuard);
    }
}
