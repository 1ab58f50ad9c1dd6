//! Attaching this thread to the main interpreter and recording it on the frame stack, for
//! [`WithGil`](crate::WithGil), [`with_gil`](crate::with_gil) and
//! [`GilGuard::acquire`](crate::GilGuard::acquire). Fast paths first: nested on the top
//! frame, then re-attaching the thread's own thread state, then finding or making one.

#![allow(unsafe_code, reason = "attaches the thread to the main interpreter")]

use core::ptr;

use crate::context::attached::{attached_thread_state, owns};
use crate::context::frame::{Entry, Frame, FrameIndex, Owner};
use crate::context::thread;
use crate::error::GilError;
use crate::guards::stack;
use crate::raw::epoch::epoch;
use crate::raw::ffi::{self, PyThreadState};
use crate::runtime::native_thread::{self, NewState};
use crate::runtime::{self, hooks};
#[cfg(feature = "stats")]
use crate::stats::{AttachKind, interp::InterpKey, record as stats};

/// Whether an attach may detach another interpreter's thread state first (and re-attach
/// it when undone): only closure forms may, since a guard could be leaked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Suspend {
    Allowed,
    Refused,
}

/// How a main-interpreter thread state was attached, which one, and who owns it.
type Attached = (Entry, *mut PyThreadState, Owner);

/// Attaches this thread to the main interpreter (or notes that it already is) and pushes
/// the frame that records it, linked to `below_in_guard`.
#[inline(always)]
pub(crate) fn attach_main(
    suspend: Suspend,
    below_in_guard: Option<FrameIndex>,
) -> Result<FrameIndex, GilError> {
    let current = ffi::current_thread_state();
    if let Some(index) = stack::push_nested(current, |top| top.main, below_in_guard) {
        #[cfg(feature = "stats")]
        stats::nested_main();
        return Ok(index);
    }
    let reattached = if current.is_null() {
        // SAFETY: detached (CPython just answered that nothing is current).
        unsafe { reattach_kept_first(below_in_guard) }
    } else {
        None
    };
    match reattached {
        Some(index) => Ok(index),
        None => attach_main_otherwise(current, suspend, below_in_guard),
    }
}

/// [`attach_main`] when neither fast path applies: nested on a foreign top frame, the
/// thread's released or kept thread state re-attached with frames below, else the slow path.
/// Cold, so that the fast paths are laid out straight.
#[cold]
#[inline(never)]
fn attach_main_otherwise(
    current: *mut PyThreadState,
    suspend: Suspend,
    below_in_guard: Option<FrameIndex>,
) -> Result<FrameIndex, GilError> {
    let index = if current.is_null() {
        // SAFETY: detached (CPython just answered that nothing is current).
        unsafe { reattach_own(ptr::null_mut(), below_in_guard) }
    } else {
        let nested = stack::push_nested_foreign(current, |top| top.main, below_in_guard);
        #[cfg(feature = "stats")]
        if nested.is_some() {
            stats::nested_main();
        }
        nested
    };
    match index {
        Some(index) => Ok(index),
        None => attach_main_slow(suspend, below_in_guard),
    }
}

/// The detached fast path of a thread without frames: re-attaches its kept thread state
/// (counted for the shutdown gate if the thread has a count) and pushes the first frame,
/// before the C call, so that nothing lives across it (nothing reads the stack meanwhile).
/// `None`, having changed nothing, sends the caller on to [`reattach_own`]. Out of line and
/// on its own, so that it saves no register it does not use.
///
/// # Safety
/// This thread is detached.
#[inline(never)]
unsafe fn reattach_kept_first(below_in_guard: Option<FrameIndex>) -> Option<FrameIndex> {
    let epoch = epoch();
    let kept = thread::with(|context| {
        let kept = context.kept.tstate.get();
        if kept.is_null() || context.kept.epoch.get() != epoch || context.frames.len() != 0 {
            return None;
        }
        let entry = match native_thread::admit_guard_if_open(epoch)? {
            true => Entry::Kept,
            false => Entry::Restored,
        };
        // SAFETY: owned by the crate, so no identity is read.
        let frame = unsafe { Frame::main(entry, kept, Owner::Crate) };
        context.frames.push_first(Frame {
            below_in_guard,
            ..frame
        });
        Some(kept)
    })?;
    #[cfg(feature = "stats")]
    let waiting = stats::before_attach(InterpKey::main());
    // SAFETY: detached (caller); the current runtime's kept state is a live, detached
    // main-interpreter state of this thread. Both entries undo this by detaching it.
    unsafe { ffi::restore_thread(kept) };
    #[cfg(feature = "stats")]
    stats::attached(waiting, kind_of_frame(FrameIndex::new(0)));
    Some(FrameIndex::new(0))
}

/// [`attach_main`] when the fast paths do not apply.
#[cold]
#[inline(never)]
fn attach_main_slow(
    suspend: Suspend,
    below_in_guard: Option<FrameIndex>,
) -> Result<FrameIndex, GilError> {
    // Before 3.12 a non-null current thread state may be another thread's holding the GIL.
    let current = attached_thread_state();
    let mut suspended = ptr::null_mut();
    if !current.is_null() {
        // SAFETY: a thread state attached to this thread is live.
        if unsafe { ffi::is_main_interpreter_state(current) } {
            let owner = if owns(current) {
                Owner::Crate
            } else {
                Owner::Foreign
            };
            #[cfg(feature = "stats")]
            stats::nested_main();
            // SAFETY: `current` is attached to this thread.
            return Ok(unsafe { push((Entry::Nested, current, owner), suspended, below_in_guard) });
        }
        if suspend == Suspend::Refused {
            return Err(GilError::AttachedElsewhere);
        }
        runtime::check_can_attach()?;
        #[cfg(feature = "stats")]
        let detaching = stats::detaching();
        // SAFETY: `current`, a sub-interpreter's, is attached to this thread; restored when
        // the frame is undone (`Frame::suspended`), or below on failure.
        suspended = unsafe { ffi::save_thread() };
        // SAFETY: `suspended` is live: it is re-attached below or when the frame is undone.
        #[cfg(feature = "stats")]
        stats::released(detaching, || unsafe { InterpKey::of(suspended) });
    }
    // SAFETY: detached (or just detached).
    if let Some(index) = unsafe { reattach_own(suspended, below_in_guard) } {
        return Ok(index);
    }
    // SAFETY: detached.
    match unsafe { attach_gilstate_or_new() } {
        // SAFETY: attached just now.
        Ok(attached) => Ok(unsafe { push(attached, suspended, below_in_guard) }),
        Err(error) => {
            if !suspended.is_null() {
                #[cfg(feature = "stats")]
                let waiting = stats::before_restore();
                // SAFETY: still detached; puts back what was suspended above.
                unsafe { ffi::restore_thread(suspended) };
                #[cfg(feature = "stats")]
                stats::restored(waiting);
            }
            Err(error)
        }
    }
}

/// Re-attaches the thread's own main-interpreter thread state (the one the newest live
/// release frame detached, else the kept one) and pushes its frame, before the C call as in
/// [`reattach_kept_first`]; the frame re-attaches `suspended` when undone. `None`, having
/// changed nothing, if there is none or attaching is refused.
///
/// # Safety
/// This thread is detached.
#[inline(never)]
unsafe fn reattach_own(
    suspended: *mut PyThreadState,
    below_in_guard: Option<FrameIndex>,
) -> Option<FrameIndex> {
    let epoch = epoch();
    let (mut entry, own, owner) = match native_thread::released_main_thread_state() {
        Some((released, owner)) => (Entry::Restored, released, owner),
        None => (Entry::Kept, thread::kept_thread_state(), Owner::Crate),
    };
    if own.is_null() {
        return None;
    }
    // Refused once shutdown has begun (`released_main_thread_state` finds nothing then); a
    // thread without a count is only checked, and gets an uncounted `Restored` frame.
    if entry == Entry::Kept && !native_thread::admit_guard(epoch).ok()? {
        entry = Entry::Restored;
    }
    // SAFETY: `own` is live (a live release frame's, by the scope rule, or the kept one of
    // the current runtime); it is attached just below.
    let index = unsafe { push((entry, own, owner), suspended, below_in_guard) };
    #[cfg(feature = "stats")]
    let waiting = stats::before_attach(InterpKey::main());
    // SAFETY: `own` is a live, detached main-interpreter state of this thread, and the
    // thread is detached. Both entries undo this by detaching it.
    unsafe { ffi::restore_thread(own) };
    #[cfg(feature = "stats")]
    stats::attached(waiting, kind_of_frame(index));
    Some(index)
}

/// Attaches a detached thread the crate knows no main-interpreter thread state of: the
/// thread's `PyGILState` one if it belongs to the main interpreter, else a new one, kept.
///
/// # Safety
/// This thread is detached.
unsafe fn attach_gilstate_or_new() -> Result<Attached, GilError> {
    runtime::check_can_attach()?;
    let gilstate = ffi::gilstate_thread_state();
    // CPython 3.15 leaves this binding on the thread state that finalization freed, into the
    // next runtime (3.9-3.14 answer null): never dereferenced; the new state made below
    // replaces it.
    let stale = thread::with(|context| context.kept.is_stale(gilstate));
    // SAFETY: a thread state `PyGILState` binds to this thread is live unless it is stale.
    if !gilstate.is_null() && !stale && unsafe { ffi::is_main_interpreter_state(gilstate) } {
        #[cfg(feature = "stats")]
        let waiting = stats::before_attach(InterpKey::main());
        // Re-attaching it directly is what `PyGILState_Ensure` would do, minus its counter.
        // SAFETY: this thread's own, detached main-interpreter state; the thread is
        // detached. `Entry::Restored` undoes this by detaching it.
        unsafe { ffi::restore_thread(gilstate) };
        #[cfg(feature = "stats")]
        stats::attached(waiting, AttachKind::Detached);
        return Ok((Entry::Restored, gilstate, Owner::Foreign));
    }
    #[cfg(feature = "stats")]
    let waiting = stats::before_attach(InterpKey::main());
    // SAFETY: initialized, not finalizing, detached; `gilstate` is null, a
    // sub-interpreter's (`PyGILState_Ensure` would attach *that* interpreter) or stale.
    let new = unsafe { native_thread::attach_new(gilstate) };
    #[cfg(feature = "stats")]
    match new {
        Ok(_) => stats::attached(waiting, AttachKind::Native),
        Err(_) => stats::not_attached(waiting),
    }
    let (state, tstate) = new?;
    // SAFETY: attached to the main interpreter just above.
    unsafe { install_hooks() };
    let entry = match state {
        NewState::Kept => Entry::Kept,
        NewState::Ensured => Entry::Ensured,
        NewState::Deleting => Entry::Deleting,
    };
    Ok((entry, tstate, Owner::Crate))
}

/// [`hooks::install_hooks`], inside a frame that lets the Python code it runs call back
/// into Rust.
///
/// # Safety
/// The thread is attached to the main interpreter.
pub(crate) unsafe fn install_hooks() {
    // SAFETY: the caller's.
    stack::calling_python(|| unsafe { hooks::install_hooks() });
}

/// Pushes a main-interpreter frame for `attached`.
///
/// # Safety
/// The thread state of `attached` is live (attached to this thread, typically).
#[inline(always)]
unsafe fn push(
    (entry, tstate, owner): Attached,
    suspended: *mut PyThreadState,
    below_in_guard: Option<FrameIndex>,
) -> FrameIndex {
    // SAFETY: live (caller).
    let frame = unsafe { Frame::main(entry, tstate, owner) };
    stack::push(Frame {
        suspended,
        below_in_guard,
        ..frame
    })
}

/// The kind of attach the main-interpreter frame at `index` made: a thread state the crate
/// keeps for a thread Python did not create, or one of the thread's own.
#[cfg(feature = "stats")]
fn kind_of_frame(index: FrameIndex) -> AttachKind {
    match stack::frame(index).map(|frame| frame.entry) {
        Some(Entry::Kept | Entry::Ensured | Entry::Deleting) => AttachKind::Native,
        _ => AttachKind::Detached,
    }
}
