//! Attaching this thread to the main interpreter and recording it on the frame stack: the
//! machinery of [`WithGil`](crate::WithGil), [`with_gil`](crate::with_gil) and
//! [`GilGuard::acquire`](crate::GilGuard::acquire), fast paths first.

#![allow(unsafe_code, reason = "attaches the thread to the main interpreter")]

use core::ptr;

use crate::raw::ffi::PyThreadState;

use crate::error::GilError;
use crate::guards::stack::{self, Entry, Frame};
use crate::guards::{attached, start};
use crate::raw::ffi;
use crate::runtime::native_thread::NewState;
use crate::runtime::{self, native_thread};

/// Attaches this thread to the main interpreter (or notes that it already is) and pushes
/// the frame that records it, linked to `below_in_guard`. `suspend` allows detaching a
/// sub-interpreter first, which only closure forms may do.
#[inline]
pub(crate) fn enter(suspend: bool, below_in_guard: u32) -> Result<u32, GilError> {
    // The stack is a cache: `push_nested` checks that the top frame's thread state is still
    // the one CPython considers current before trusting it.
    let current = ffi::current_thread_state();
    if let Some(index) = stack::push_nested(current, |top| top.main, below_in_guard) {
        return Ok(index);
    }
    match reattach_fast(current, below_in_guard) {
        Some(index) => Ok(index),
        None => enter_slow(suspend, below_in_guard),
    }
}

/// [`enter`]'s next step when the thread is detached or the top frame's thread state is
/// not the crate's.
#[inline(never)]
fn reattach_fast(current: *mut PyThreadState, below_in_guard: u32) -> Option<u32> {
    if !current.is_null() {
        return stack::push_nested_foreign(current, |top| top.main, below_in_guard);
    }
    reattach_detached(below_in_guard)
}

/// How a main-interpreter thread state was attached, which one, and whether the crate owns
/// it (see [`Frame::owned`]).
type Attached = (Entry, *mut PyThreadState, bool);

/// The detached fast path: a detached thread (CPython just answered that nothing is
/// current) that already has a main-interpreter thread state re-attaches it. Returns
/// `None`, having changed nothing, in every other case: the slow path then finds out what
/// to do (and what error to report) without hurry.
#[inline(always)]
fn reattach_detached(below_in_guard: u32) -> Option<u32> {
    // SAFETY: detached (the caller).
    let attached = unsafe { reattach_own() }?;
    // SAFETY: attached just now.
    Some(unsafe { push(attached, ptr::null_mut(), below_in_guard) })
}

/// [`enter`] when the fast paths do not apply.
#[cold]
#[inline(never)]
fn enter_slow(suspend: bool, below_in_guard: u32) -> Result<u32, GilError> {
    if ffi::current_thread_state().is_null() {
        // Nothing attached (before 3.12: no thread holds the GIL at all).
        // SAFETY: detached.
        return unsafe { enter_detached(below_in_guard) };
    }
    let current = attached::attached_thread_state();
    if current.is_null() {
        // Another thread holds the GIL (before 3.12); this one is detached.
        // SAFETY: detached.
        return unsafe { enter_detached(below_in_guard) };
    }
    // SAFETY: a thread state attached to this thread is live.
    if unsafe { ffi::is_main_interpreter_state(current) } {
        let owned = attached::owns(current);
        // SAFETY: `current` is attached to this thread.
        return Ok(unsafe {
            push(
                (Entry::Nested, current, owned),
                ptr::null_mut(),
                below_in_guard,
            )
        });
    }
    if !suspend {
        return Err(GilError::AttachedElsewhere);
    }
    runtime::check_can_attach()?;
    // Attached to a sub-interpreter: suspend it for as long as the frame lives.
    // SAFETY: `current` is attached to this thread. Pairs with the `PyEval_RestoreThread`
    // of `Frame::suspended` when the frame is undone.
    let suspended = unsafe { ffi::save_thread() };
    // SAFETY: detached just now.
    match unsafe { attach_detached() } {
        // SAFETY: attached just now.
        Ok(attached) => Ok(unsafe { push(attached, suspended, below_in_guard) }),
        Err(error) => {
            // SAFETY: still detached; puts back what was suspended above.
            unsafe { ffi::restore_thread(suspended) };
            Err(error)
        }
    }
}

/// [`enter`] on a detached thread.
///
/// # Safety
/// This thread is detached.
unsafe fn enter_detached(below_in_guard: u32) -> Result<u32, GilError> {
    // SAFETY: requirements upheld by the caller.
    let attached = unsafe { attach_detached() }?;
    // SAFETY: attached just now.
    Ok(unsafe { push(attached, ptr::null_mut(), below_in_guard) })
}

/// Attaches this detached thread to a main-interpreter thread state: its own one if it has
/// one (see [`reattach_own`]), else the thread's `PyGILState` one, or a new one. Returns
/// how, and which.
///
/// # Safety
/// This thread is detached.
unsafe fn attach_detached() -> Result<Attached, GilError> {
    // SAFETY: requirements upheld by the caller.
    if let Some(attached) = unsafe { reattach_own() } {
        return Ok(attached);
    }
    // Either the thread has no own state, or attaching was refused: then the runtime is
    // finalizing, and `attach_other` says so before it tries anything.
    // SAFETY: requirements upheld by the caller.
    unsafe { attach_other() }
}

/// Re-attaches the thread's Python identity, if it has one in the main interpreter: the
/// state the newest live release frame detached, or else the one kept for this thread.
/// Returns `None`, having changed nothing, if there is none or attaching is refused.
///
/// # Safety
/// This thread is detached.
#[inline(always)]
unsafe fn reattach_own() -> Option<Attached> {
    let (mut entry, own, owned) = match stack::released_main_thread_state() {
        Some((released, owned)) => (Entry::Restored, released, owned),
        None => (Entry::Kept, native_thread::kept_thread_state(), true),
    };
    if own.is_null() {
        return None;
    }
    // Refused once finalization has begun: `released_main_thread_state` finds nothing then,
    // and a kept state learns it as its guard is counted for the shutdown gate (if this
    // thread has a count; if not, its frame is not a counted one).
    if entry == Entry::Kept && !native_thread::admit_guard().ok()? {
        entry = Entry::Restored;
    }
    // SAFETY: `own` is a live, detached main-interpreter state of this thread (one that a
    // live frame of ours released: the scope rule; or the one kept for this thread in the
    // current runtime), and the thread is detached. Both entries undo this by detaching it.
    unsafe { ffi::restore_thread(own) };
    Some((entry, own, owned))
}

/// [`attach_detached`] when the crate knows no thread state of this thread: use the
/// thread's `PyGILState` state if it belongs to the main interpreter, else create one and
/// keep it.
///
/// # Safety
/// This thread is detached.
unsafe fn attach_other() -> Result<Attached, GilError> {
    runtime::check_can_attach()?;
    let gilstate = ffi::gilstate_thread_state();
    // CPython 3.15 leaves this binding on the thread state that finalization freed, into
    // the next runtime (3.9-3.14 answer null there): that one is never dereferenced, and a
    // new state is made below, which attaching binds in its place.
    let stale = native_thread::is_stale(gilstate);
    // SAFETY: a thread state `PyGILState` binds to this thread is live unless it is stale.
    if !gilstate.is_null() && !stale && unsafe { ffi::is_main_interpreter_state(gilstate) } {
        // Re-attaching it directly is what `PyGILState_Ensure` would do, minus its counter.
        // SAFETY: this thread's own, detached main-interpreter state; the thread is
        // detached. `Entry::Restored` undoes this by detaching it.
        unsafe { ffi::restore_thread(gilstate) };
        return Ok((Entry::Restored, gilstate, false));
    }
    // SAFETY: initialized, not finalizing, detached; `gilstate` is null, a
    // sub-interpreter's (`PyGILState_Ensure` would attach *that* interpreter) or stale.
    let (state, tstate) = unsafe { native_thread::attach_new(gilstate, start::install_hooks) }?;
    let entry = match state {
        NewState::Kept => Entry::Kept,
        NewState::Ensured => Entry::Ensured,
        NewState::Deleting => Entry::Deleting,
    };
    Ok((entry, tstate, true))
}

/// Pushes a main-interpreter frame for `attached`.
///
/// # Safety
/// The thread state of `attached` is attached to this thread (so it is live).
#[inline]
unsafe fn push(
    (entry, tstate, owned): Attached,
    suspended: *mut PyThreadState,
    below_in_guard: u32,
) -> u32 {
    // SAFETY: attached (caller), so live.
    let mut frame = unsafe { Frame::new(entry, tstate, true, owned).stamped() };
    frame.suspended = suspended;
    frame.below_in_guard = below_in_guard;
    stack::push(frame)
}
