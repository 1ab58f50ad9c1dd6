//! Pushing frames: the nested and release fast paths, and [`push`] for a change already
//! made.

#![allow(unsafe_code, reason = "the release fast path detaches the thread")]

use crate::context::frame::{Entry, Frame, FrameIndex, Owner};
use crate::context::frames::NextSlot;
use crate::context::thread;
use crate::raw::ffi::{self, PyThreadState};
#[cfg(feature = "stats")]
use crate::stats::{interp::InterpKey, record as stats};

/// The nested fast path: if the top frame attached a thread state the crate owns, that
/// `accept` approves of and that is still `current` (CPython's answer, asked by the caller
/// before the stack is read, so that nothing read from it is kept across the call), pushes
/// a [`Entry::Nested`] frame on it. `None` sends the caller to [`push_nested_foreign`] or
/// its slow path.
#[inline(always)]
pub(crate) fn push_nested(
    current: *mut PyThreadState,
    accept: impl FnOnce(&Frame) -> bool,
    below_in_guard: Option<FrameIndex>,
) -> Option<FrameIndex> {
    thread::with(|context| {
        let (top, next) = context.frames.inline_top()?;
        let top = top.get();
        // An attaching frame names a thread state, so `current` is not null either.
        if top.tstate != current
            || !top.entry.attaches()
            || top.owner != Owner::Crate
            || !accept(&top)
        {
            return None;
        }
        Some(context.frames.push_inline(next, top.nested(below_in_guard)))
    })
}

/// [`push_nested`] for a top frame on a thread state the crate does not own (Rust called
/// from a Python thread, or from a C library's `PyGILState_Ensure`): its owner may have
/// deleted it and a later thread state may have its address, so CPython must also confirm
/// it is the same object ([`Frame::is_current`]).
#[inline(never)]
pub(crate) fn push_nested_foreign(
    current: *mut PyThreadState,
    accept: impl FnOnce(&Frame) -> bool,
    below_in_guard: Option<FrameIndex>,
) -> Option<FrameIndex> {
    thread::with(|context| {
        let (top, next) = context.frames.inline_top()?;
        let top = top.get();
        if top.owner == Owner::Crate || !accept(&top) || !top.is_current(current) {
            return None;
        }
        Some(context.frames.push_inline(next, top.nested(below_in_guard)))
    })
}

/// The release fast path: if the top frame attached a thread state that CPython confirms
/// is current, detaches it and pushes the [`Entry::Released`] frame. `None` sends the
/// caller to its slow path, with nothing changed.
#[inline(always)]
pub(crate) fn push_released(below_in_guard: Option<FrameIndex>) -> Option<NextSlot<'static>> {
    let context = thread::context();
    {
        let (top, next) = context.frames.inline_top()?;
        let top = top.get();
        let tstate = top.tstate;
        // Before 3.12 the current thread state is process-wide: only one the crate owns is
        // known to be this thread's without asking more (the slow path does).
        if !top.entry.attaches()
            || tstate.is_null()
            || (cfg!(not(Py_3_12)) && top.owner != Owner::Crate)
        {
            return None;
        }
        // Written into the free slot first, counted after: nothing is kept across the call,
        // which runs no Python code.
        let released = Frame::released(Entry::Released, tstate, top.owner, below_in_guard);
        let pending = context.frames.write_next(next, released);
        #[cfg(feature = "stats")]
        let detaching = stats::detaching();
        // SAFETY: the top frame's thread state (the stack invariant), detached only if current
        // (before 3.12: owned, so this thread's); the frame counted below pairs it with a restore.
        if !unsafe { ffi::detach_if_current(tstate, |_| true) } {
            return None;
        }
        #[cfg(feature = "stats")]
        stats::released(detaching, || match top.main {
            true => InterpKey::main(),
            // SAFETY: released just now, so live (the scope rule).
            false => unsafe { InterpKey::of(tstate) },
        });
        context.frames.count_next(pending);
        Some(next)
    }
}

/// Records a frame whose change has already been made.
///
/// # Panics
/// Only if the frame must spill to the heap and allocating fails. The change is undone
/// before the panic propagates, so the thread is never left in a state no guard undoes.
#[inline(always)]
pub(crate) fn push(frame: Frame) -> FrameIndex {
    let simple = thread::with(|context| context.frames.try_push_simple(frame));
    match simple.or_else(|| thread::with(|context| context.frames.try_push_inline(frame))) {
        Some(index) => index,
        None => push_spilled(frame),
    }
}

#[cold]
#[inline(never)]
fn push_spilled(frame: Frame) -> FrameIndex {
    let undo_on_unwind = scopeguard::guard(frame, |frame| {
        frame.undo_in_place();
        frame.undo(super::undo::Undo::InScope);
    });
    let index = thread::with(|context| context.frames.push_spilled(frame));
    scopeguard::ScopeGuard::into_inner(undo_on_unwind);
    index
}

/// Makes the frame at `index`, just pushed on a detached thread for another interpreter's
/// thread state, bind `PyGILState` to the main interpreter again when it is undone.
#[cfg(Py_3_12)]
pub(crate) fn bind_main_again_when_undone(index: FrameIndex) {
    thread::with(|context| {
        if let Some(frame) = context.frames.get(index) {
            let suspended = crate::context::frame::BIND_MAIN_AGAIN;
            context.frames.set(index, Frame { suspended, ..frame });
        }
    });
}

/// A copy of the frame at `index`, if it exists.
pub(crate) fn frame(index: FrameIndex) -> Option<Frame> {
    thread::with(|context| context.frames.get(index))
}
