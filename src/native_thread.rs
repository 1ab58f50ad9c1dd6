//! The main-interpreter thread state this crate keeps for a thread Python did not create.
//!
//! `PyGILState_Ensure` on such a thread creates a thread state and `PyGILState_Release`
//! deletes it again, every time: a callback from a C library that acquires the GIL once per
//! call pays for a full create/destroy pair (about 10x the cost of re-attaching an existing
//! thread state). Instead, the first acquisition on the thread creates the thread state once
//! (through `PyGILState_Ensure`, so `PyGILState_*` calls made by other code on this thread
//! find and count it), later acquisitions re-attach it with `PyEval_RestoreThread`, and a
//! thread-local destructor deletes it when the thread exits.
//!
//! A kept thread state must never be touched once the runtime has begun finalizing, and
//! never at all after it has been finalized (finalization frees every thread state, and a
//! re-initialized runtime does not know the old ones): each one records the runtime's
//! [epoch](crate::runtime::epoch) and is forgotten, not used, once that has moved on.

use core::cell::Cell;
use core::ptr;
use core::sync::atomic::AtomicUsize;

use pyo3_ffi::PyThreadState;

use crate::error::GilError;
use crate::ffi;
use crate::runtime::{self, epoch};
use crate::shutdown;
use crate::stack::Entry;

struct Kept {
    tstate: Cell<*mut PyThreadState>,
    epoch: Cell<u64>,
    /// Guards this thread holds on the kept state, for the shutdown gate.
    held: Cell<Option<&'static AtomicUsize>>,
}

/// Deletes the kept thread state when the thread exits; registered with the first one.
struct DeleteOnExit;

thread_local! {
    /// No destructor, so reading it on every acquisition costs a couple of instructions
    /// and works at any point of the thread's teardown.
    static KEPT: Kept = const {
        Kept { tstate: Cell::new(ptr::null_mut()), epoch: Cell::new(0), held: Cell::new(None) }
    };
    static DELETE_ON_EXIT: DeleteOnExit = const { DeleteOnExit };
}

/// This thread's kept thread state, or null if there is none or it belongs to a runtime that
/// has since been finalized.
#[inline]
pub(crate) fn kept_thread_state() -> *mut PyThreadState {
    KEPT.with(|kept| {
        if kept.epoch.get() == epoch() {
            kept.tstate.get()
        } else {
            ptr::null_mut()
        }
    })
}

/// Counts a guard about to be taken on the kept state (see [`shutdown::enter`]).
///
/// # Errors
/// [`GilError::Finalizing`] once shutdown has begun.
#[inline]
pub(crate) fn count_guard() -> Result<(), GilError> {
    match KEPT.with(|kept| kept.held.get()) {
        Some(held) => shutdown::enter(held).map_err(|()| GilError::Finalizing),
        None => Ok(()),
    }
}

/// Uncounts a guard counted with [`count_guard`], when its frame is undone.
#[inline]
pub(crate) fn uncount_guard() {
    if let Some(held) = KEPT.with(|kept| kept.held.get()) {
        shutdown::leave(held);
    }
}

/// Attaches this thread, which has no `PyGILState` thread state, to a new main-interpreter
/// thread state and keeps that state for later acquisitions.
///
/// # Safety
/// The runtime is initialized and not finalizing, this thread is detached, and
/// `PyGILState_GetThisThreadState()` is null.
pub(crate) unsafe fn attach_new() -> (Entry, *mut PyThreadState) {
    // SAFETY: initialized and detached (caller). With no thread state bound to this thread,
    // `PyGILState_Ensure` creates one in the main interpreter, binds it and attaches it.
    let state = unsafe { pyo3_ffi::PyGILState_Ensure() };
    let tstate = ffi::gilstate_thread_state();
    let epoch = epoch();
    // SAFETY: attached to the main interpreter just above.
    unsafe { runtime::install_hooks() };
    // Touching `DELETE_ON_EXIT` registers its destructor; it fails during teardown.
    let kept = runtime::watch_finalization(epoch) && DELETE_ON_EXIT.try_with(|_| ()).is_ok();
    if kept {
        KEPT.with(|kept| {
            kept.tstate.set(tstate);
            kept.epoch.set(epoch);
            let held = kept.held.get().unwrap_or_else(shutdown::register_thread);
            kept.held.set(Some(held));
            // This first guard counts too. The gate was open a moment ago (the caller
            // checked), and shutdown cannot begin while this thread holds the GIL.
            shutdown::count(held);
        });
        // Detach on undo and keep the state: the gilstate counter stays at 1 for us.
        (Entry::Kept, tstate)
    } else {
        // Nowhere to keep it (thread teardown, or no `Py_AtExit` slot): the matching
        // `PyGILState_Release` deletes it, as plain `PyGILState_*` use would.
        (Entry::Ensured(state), tstate)
    }
}

/// In the child of a fork: keeps this thread's kept state only if it is `survivor`, the one
/// thread state CPython did not delete, now in `epoch`. Returns the thread's counter of
/// guards for the shutdown gate, if it has one.
pub(crate) fn after_fork(survivor: *mut PyThreadState, epoch: u64) -> Option<&'static AtomicUsize> {
    KEPT.with(|kept| {
        if kept.tstate.get() == survivor {
            kept.epoch.set(epoch);
        } else {
            kept.tstate.set(ptr::null_mut());
        }
        kept.held.get()
    })
}

impl Drop for DeleteOnExit {
    /// Deletes the kept thread state when its thread exits, unless doing so could touch
    /// freed memory or fight with a guard that was leaked on this thread.
    fn drop(&mut self) {
        let tstate = kept_thread_state();
        if tstate.is_null()
            || !ffi::is_initialized()
            || runtime::check_not_finalizing().is_err()
            || crate::stack::top().is_some()
            || !runtime::attached_thread_state().is_null()
        {
            // Finalization frees the state; a leaked guard or foreign code may still use it.
            return;
        }
        // SAFETY: `tstate` is this thread's live, detached main-interpreter thread state
        // (same epoch, runtime up, no frame and no attachment on this thread). Re-attaching
        // it and releasing the gilstate count that `attach_new` kept for it makes CPython
        // clear and delete it (`PyThreadState_Clear` + `PyThreadState_DeleteCurrent`).
        unsafe {
            pyo3_ffi::PyEval_RestoreThread(tstate);
            pyo3_ffi::PyGILState_Release(pyo3_ffi::PyGILState_STATE::PyGILState_UNLOCKED);
        }
        // Destructors of other thread-locals run after this one and may still attach.
        KEPT.with(|kept| kept.tstate.set(ptr::null_mut()));
        if let Some(held) = KEPT.with(|kept| kept.held.take()) {
            shutdown::unregister_thread(held);
        }
    }
}
