//! The main-interpreter thread state this crate keeps for a thread.
//!
//! `PyGILState_Ensure` on a thread Python did not create makes a thread state and
//! `PyGILState_Release` deletes it again, every time: a callback from a C library that
//! acquires the GIL once per call pays for a full create/destroy pair (about 10x the cost
//! of re-attaching an existing thread state). Instead, the first acquisition on such a
//! thread creates the thread state once (through `PyGILState_Ensure`, so `PyGILState_*`
//! calls made by other code on this thread find and count it), later acquisitions
//! re-attach it with `PyEval_RestoreThread`, and a thread-local destructor deletes it when
//! the thread exits. The same happens on a thread whose `PyGILState` thread state belongs to
//! a sub-interpreter (CPython binds the first thread state created on a thread, and from
//! 3.12 the last one attached, whatever its interpreter).
//!
//! The thread that starts the runtime with [`initialize`](crate::initialize) keeps the
//! runtime's main thread state the same way, borrowed: it is never deleted by this crate,
//! and stays this thread's Python identity (`threading.main_thread()`) even after the
//! thread used a sub-interpreter and CPython moved its `PyGILState` binding.
//!
//! A kept thread state must never be touched once the runtime has begun finalizing, and
//! never at all after it has been finalized (finalization frees every thread state, and a
//! re-initialized runtime does not know the old ones): each one records the runtime's
//! [epoch](crate::raw::epoch) and is forgotten, not used, once that has moved on.

#![allow(
    unsafe_code,
    reason = "creates, attaches and deletes the kept thread states"
)]

use core::ptr;

use crate::context::frame::Owner;
use crate::context::guard_count::ThreadGuards;
use crate::context::thread::{self, kept_thread_state, thread_guards};
use crate::context::{attached, queries};
use crate::error::GilError;
use crate::raw::epoch::epoch;
use crate::raw::ffi::{self, PyThreadState};
use crate::runtime::{finalization, shutdown};

/// How [`attach_new`] attached this thread, which decides how its frame undoes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NewState {
    /// Kept for later acquisitions, and counted for the shutdown gate: undone by detaching.
    Kept,
    /// Made by `PyGILState_Ensure` and not kept: undone by `PyGILState_Release`.
    Ensured,
    /// Made directly and not kept: undone by clearing and deleting it.
    Deleting,
}

/// Deletes the kept thread state when the thread exits: a thread-local of its own, since
/// the context has no destructor. Registered with the first kept state or guard count.
struct DeleteOnExit;

thread_local! {
    static DELETE_ON_EXIT: DeleteOnExit = const { DeleteOnExit };
}

/// The main-interpreter thread state that the newest live release frame of this thread
/// detached, and who owns it (see [`queries::released_main_thread_state`]); none once the
/// runtime is finalizing, which may free the thread states the frames name.
#[inline(always)]
pub(crate) fn released_main_thread_state() -> Option<(*mut PyThreadState, Owner)> {
    if thread::with(|context| context.frames.len()) == 0 {
        return None;
    }
    released_unless_finalizing()
}

#[inline(never)]
fn released_unless_finalizing() -> Option<(*mut PyThreadState, Owner)> {
    finalization::check_not_finalizing().ok()?;
    // SAFETY: not finalizing (checked).
    unsafe { queries::released_main_thread_state() }
}

/// Counts a guard about to attach the kept state (see [`shutdown::admit`]), and returns
/// whether it did: threads without a count (the initializing thread, which keeps a borrowed
/// state, until it makes a handle) are only checked, and their frame must not be uncounted
/// (a [`NewState::Kept`] frame is the counted one).
///
/// # Errors
/// [`GilError::Finalizing`] (or [`GilError::NotInitialized`] for a thread without a count,
/// after finalization) once shutdown has begun.
///
/// `epoch` is the current one, which the caller read.
#[inline(always)]
pub(crate) fn admit_guard(epoch: u64) -> Result<bool, GilError> {
    match thread_guards() {
        Some(guards) => shutdown::admit(guards, epoch)
            .map(|()| true)
            .map_err(|()| GilError::Finalizing),
        // The gate open for this runtime answers in one load.
        None if shutdown::is_open_for(epoch) => Ok(false),
        None => finalization::check_not_finalizing().map(|()| false),
    }
}

/// [`admit_guard`] while the gate is open for `epoch`, in one load; `None` tells nothing
/// about why, and [`admit_guard`] asks again.
#[inline(always)]
pub(crate) fn admit_guard_if_open(epoch: u64) -> Option<bool> {
    match thread_guards() {
        Some(guards) => shutdown::admit_if_open(guards, epoch).then_some(true),
        None => shutdown::is_open_for(epoch).then_some(false),
    }
}

/// Uncounts a guard counted by [`admit_guard`], when its frame is undone.
#[inline]
pub(crate) fn dismiss_guard() {
    if let Some(guards) = thread_guards() {
        shutdown::dismiss(guards);
    }
}

/// Keeps the runtime's main thread state, just created by `Py_InitializeEx` on this
/// thread, as this thread's, borrowed.
pub(crate) fn adopt_main_thread_state(tstate: *mut PyThreadState) {
    thread::with(|context| context.kept.keep(tstate, epoch(), false));
}

/// This thread's count of guards for the shutdown gate, registered on first use; the
/// record is returned when the thread exits (or, if the thread is already tearing down its
/// thread-locals, stays registered with no guard counted).
pub(crate) fn thread_guards_or_register() -> &'static ThreadGuards {
    if let Some(guards) = thread_guards() {
        return guards;
    }
    let guards = shutdown::register_thread();
    thread::with(|context| context.kept.guards.set(Some(guards)));
    // Touching `DELETE_ON_EXIT` registers the destructor that returns the record.
    let _ = DELETE_ON_EXIT.try_with(|_| ());
    guards
}

/// Attaches this thread to a new main-interpreter thread state and keeps that state for
/// later acquisitions. `gilstate` is this thread's `PyGILState` thread state: null, or one
/// of a sub-interpreter.
///
/// # Errors
/// [`GilError::Finalizing`] once shutdown has begun.
///
/// # Safety
/// The runtime is initialized and not finalizing, this thread is detached, and `gilstate`
/// is `PyGILState_GetThisThreadState()`: null, not of the main interpreter, or
/// [stale](crate::context::kept::Kept::is_stale) (it is never dereferenced). The caller installs
/// the runtime's hooks next, attached as it is left.
pub(crate) unsafe fn attach_new(
    gilstate: *mut PyThreadState,
) -> Result<(NewState, *mut PyThreadState), GilError> {
    // Counted before attaching, like every attach of a kept state: once shutdown has begun
    // it refuses here, or it waits for this guard.
    let guards = thread_guards_or_register();
    shutdown::admit(guards, epoch()).map_err(|()| GilError::Finalizing)?;
    // SAFETY: initialized and detached (caller). With no thread state bound to this thread,
    // `PyGILState_Ensure` creates one in the main interpreter, binds it and attaches it.
    // Otherwise `PyGILState_Ensure` would attach the sub-interpreter's, so a state is made
    // directly; creating one needs no GIL.
    let (tstate, ensured) = unsafe {
        if gilstate.is_null() {
            // Returns `UNLOCKED`: the thread was detached.
            ffi::gilstate_ensure();
            (ffi::gilstate_thread_state(), true)
        } else {
            let tstate = ffi::new_thread_state(ffi::main_interpreter());
            ffi::restore_thread(tstate);
            (tstate, false)
        }
    };
    let epoch = epoch();
    // Touching `DELETE_ON_EXIT` registers its destructor; it fails during teardown.
    let kept = finalization::watch_finalization(epoch) && DELETE_ON_EXIT.try_with(|_| ()).is_ok();
    if !kept {
        // Nowhere to keep it (thread teardown, or no `Py_AtExit` slot): the frame deletes
        // it again, as plain `PyGILState_*` use would, and is not counted.
        shutdown::dismiss(guards);
        return Ok((
            if ensured {
                NewState::Ensured
            } else {
                NewState::Deleting
            },
            tstate,
        ));
    }
    thread::with(|context| context.kept.keep(tstate, epoch, true));
    Ok((NewState::Kept, tstate))
}

/// Gives this thread a main-interpreter thread state of its own, made and kept detached, if
/// it has none, before it makes one for a sub-interpreter: so that before 3.12, where
/// `PyGILState` binds the first thread state made on a thread for good, the binding names a
/// main-interpreter one; and so that from 3.12, where it binds the last one attached, there is
/// one to bind again when a region of the sub-interpreter ends. Without a place to keep it
/// (thread teardown), nothing is made.
///
/// The runtime is initialized, watched and not finalizing.
pub(crate) fn keep_one() {
    let epoch = epoch();
    if !kept_thread_state().is_null()
        || !finalization::is_watched(epoch)
        || DELETE_ON_EXIT.try_with(|_| ()).is_err()
    {
        return;
    }
    // SAFETY: the main interpreter lives while the runtime does (initialized, the caller);
    // making a thread state needs no attached one. `DELETE_ON_EXIT` deletes it.
    let tstate = unsafe { ffi::new_thread_state(ffi::main_interpreter()) };
    if tstate.is_null() {
        return;
    }
    thread::with(|context| context.kept.keep(tstate, epoch, true));
}

/// In the child of a fork: keeps this thread's kept state only if it is `survivor`, the one
/// thread state CPython did not delete, now in `epoch`. Returns the thread's counter of
/// guards for the shutdown gate, if it has one.
pub(crate) fn after_fork(
    survivor: *mut PyThreadState,
    epoch: u64,
) -> Option<&'static ThreadGuards> {
    thread::with(|context| {
        let kept = &context.kept;
        if kept.tstate.get() == survivor {
            kept.epoch.set(epoch);
        } else {
            kept.tstate.set(ptr::null_mut());
        }
        kept.guards.get()
    })
}

impl Drop for DeleteOnExit {
    /// Deletes the kept thread state when its thread exits, unless doing so could touch
    /// freed memory or fight with a guard that was leaked on this thread; and returns the
    /// thread's record of guards, so that no shutdown waits for an exited thread.
    fn drop(&mut self) {
        let guards = thread::with(|context| context.kept.guards.take());
        let tstate = kept_thread_state();
        // Finalization frees the state; a leaked guard or foreign code may still use it.
        let deletable = !tstate.is_null()
            && thread::with(|context| context.kept.owned.get())
            && ffi::is_initialized()
            && finalization::check_not_finalizing().is_ok()
            && !queries::holds_any_change()
            && attached::attached_thread_state().is_null();
        // Attaching to delete counts as a guard: shutdown refuses it or waits for it.
        if deletable && guards.is_none_or(|guards| shutdown::admit(guards, epoch()).is_ok()) {
            // SAFETY: `tstate` is this thread's live, detached main-interpreter thread
            // state, made by `attach_new` (same epoch, runtime up, no frame and no
            // attachment on this thread). It is attached, cleared and deleted, which also
            // unbinds it from `PyGILState` if it is bound.
            unsafe {
                ffi::restore_thread(tstate);
                ffi::clear(tstate);
                ffi::delete_current();
            }
            // Destructors of other thread-locals run after this one and may still attach.
            thread::with(|context| context.kept.tstate.set(ptr::null_mut()));
        }
        if let Some(guards) = guards {
            shutdown::unregister_thread(guards);
        }
        thread::with(|context| context.claims.forget_all());
    }
}
