//! The main-interpreter thread state this crate keeps for a thread.
//!
//! On a thread Python did not create, `PyGILState_Ensure` makes a thread state and
//! `PyGILState_Release` deletes it, every time: a C library's callback that acquires the GIL
//! per call pays a full create/destroy pair, far more than a re-attach. Instead, the first
//! acquisition creates one (through `PyGILState_Ensure`, so that other code's `PyGILState_*`
//! calls find and count it), later ones re-attach it, and a thread-local destructor deletes
//! it when the thread exits. Likewise on a thread whose `PyGILState` thread state is a
//! sub-interpreter's (CPython binds the first one made on a thread, from 3.12 the last one
//! attached).
//!
//! The thread that starts the runtime ([`initialize`](crate::initialize)) keeps the main
//! thread state, borrowed: never deleted here, and its Python identity
//! (`threading.main_thread()`) even after CPython moved its `PyGILState` binding.
//!
//! A kept thread state is not touched once finalization has begun, and is forgotten once
//! the runtime's [epoch](crate::raw::epoch) moves on (finalization frees it).

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

/// [`queries::released_main_thread_state`], or none once the runtime is finalizing (which
/// may free the thread states the frames name).
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

/// Counts a guard about to attach the kept state ([`shutdown::admit`]; `epoch` is the
/// current one), and returns whether it did: a thread without a count (the initializing
/// thread, until it makes a handle) is only checked, and its frame uncounts nothing.
///
/// # Errors
/// [`GilError::Finalizing`] once shutdown has begun ([`GilError::NotInitialized`] after
/// finalization, for a thread without a count).
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
    // SAFETY: initialized and detached (caller). `PyGILState_Ensure` only with no binding (it
    // would attach a sub-interpreter's); else a state is made (needing no GIL) and attached.
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

/// Makes and keeps (detached) a main-interpreter thread state for this thread, if it has
/// none, before it makes one for a sub-interpreter: before 3.12 `PyGILState` binds the first
/// thread state made on a thread for good, so that must be this one; from 3.12 it binds the
/// last one attached, and this is the one to bind again when a sub-interpreter's region
/// ends. Nothing is made during thread teardown. The runtime is initialized, watched and not
/// finalizing.
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
            // SAFETY: this thread's kept state, live and detached (checked above: owned, of this
            // runtime, not finalizing, no frame, nothing attached). Deleting it unbinds it.
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
