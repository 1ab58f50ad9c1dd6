//! The per-thread frame stack: the reason guards may be dropped in any order, and the
//! crate's record of what it did to this thread's attachment.
//!
//! Every guard pushes one *frame* that records how it changed this thread's attachment and
//! therefore how to undo it. CPython requires those changes to be undone in reverse order
//! (a `PyEval_RestoreThread` must pair with the latest `PyEval_SaveThread`, a
//! `PyGILState_Release` with the latest `PyGILState_Ensure`). Rust drops values in whatever
//! order the program chooses, so a guard only ever *finishes* its frame; a frame is undone
//! when no newer frame holds a change. This is **the stack invariant**:
//!
//! > the newest frame that still holds a change is live (or being undone), and the thread
//! > is in the state it asked for, unless code outside the crate changed it since.
//!
//! The stack is a cache of what this crate did, never the truth about what CPython has:
//! other code on the thread (CPython's `threading`, a C library's `PyGILState_Ensure`,
//! `pyo3`) attaches, detaches and deletes thread states too. So a frame's pointer is only
//! passed back to CPython after CPython confirms it ([`Frame::is_current`]), or while the
//! frame's scope vouches for it ([`Frame::vouches_for`]). This is **the scope rule**:
//!
//! > a live frame that released or suspended a thread state is inside the code that had it
//! > attached (a closure form still running, or an `unsafe` guard whose contract keeps it
//! > there), so that thread state is alive, and this thread's, for as long as the frame is.
//!
//! `SAFETY` comments that rely on either cite it by name ("the stack invariant", "the scope
//! rule"); the C calls' own contracts are stated in `raw::ffi`.
//!
//! Closure forms are scopes: when one returns or unwinds, every frame pushed inside it
//! that still holds a change belongs to a guard that outlived it (leaked, stored in a
//! thread-local, returned). Those frames are ended there, newest first, and stay on the
//! stack as [`Entry::Forgotten`] frames until their guards are gone; the caller gets back
//! exactly the state it had ([`Scope`]).

#![allow(
    unsafe_code,
    reason = "the release fast path detaches the thread (C preconditions: raw::ffi)"
)]

mod frame;
mod queries;
mod scope;
mod storage;
#[cfg(test)]
mod tests;

use core::ptr;

use crate::raw::ffi::PyThreadState;

use frame::Life;
pub(crate) use frame::{Entry, Frame, NO_FRAME};
#[cfg(not(Py_3_12))]
pub(crate) use queries::vouches_for;
pub(crate) use queries::{
    forget_thread_state, forget_thread_states_except, holds_any_change, names,
    released_main_thread_state,
};
pub(crate) use scope::Scope;
use scope::end_frame;
use storage::{FRAMES, FrameStack};

/// The nested fast path: if the top frame attached a thread state the crate owns, that
/// `accept` approves of and that is `current`, the one CPython considers current (code
/// outside this crate may have detached the thread meanwhile), pushes a [`Entry::Nested`]
/// frame on it and returns its index. One thread-local access; `None` sends the caller to
/// [`push_nested_foreign`] or the slow path.
///
/// The caller asks CPython for `current` before the stack is read, so that nothing read
/// from the stack has to be kept across that call (measured: docs/performance-log.md), and
/// passes it on to its detached path when this one declines.
#[inline]
pub(crate) fn push_nested(
    current: *mut PyThreadState,
    accept: impl FnOnce(&Frame) -> bool,
    below_in_guard: u32,
) -> Option<u32> {
    FRAMES.with(|stack| {
        let (len, top) = stack.inline_top()?;
        if !top.owned || !accept(&top) || current != top.attached() || current.is_null() {
            return None;
        }
        stack.push_inline(len, top.nested(below_in_guard));
        Some(len)
    })
}

/// [`push_nested`] for a top frame on a thread state the crate does not own (Rust called
/// from a Python thread, or from a C library's `PyGILState_Ensure`): its owner may have
/// deleted it and a later thread state may have its address, so CPython must also confirm
/// it is the same object ([`Frame::is_current`]). Out of line, so that the owned path keeps
/// its registers.
#[inline(never)]
pub(crate) fn push_nested_foreign(
    current: *mut PyThreadState,
    accept: impl FnOnce(&Frame) -> bool,
    below_in_guard: u32,
) -> Option<u32> {
    FRAMES.with(|stack| {
        let (len, top) = stack.inline_top()?;
        if top.owned || !accept(&top) || !top.is_current(current) {
            return None;
        }
        stack.push_inline(len, top.nested(below_in_guard));
        Some(len)
    })
}

/// The release fast path: if the top frame attached a thread state that CPython confirms
/// is current, detaches it ([`detach_if_current`](crate::raw::ffi::detach_if_current)) and
/// pushes the [`Entry::Released`] frame. `None` sends the caller to the slow path, with
/// nothing changed.
#[inline]
pub(crate) fn push_released(below_in_guard: u32) -> Option<u32> {
    FRAMES.with(|stack| {
        let (len, top) = stack.inline_top()?;
        let tstate = top.attached();
        // Before 3.12 the current thread state is process-wide: only one the crate owns is
        // known to be this thread's without asking more (the slow path does).
        if tstate.is_null() || (cfg!(not(Py_3_12)) && !top.owned) {
            return None;
        }
        // SAFETY: the top frame's thread state (the stack invariant), detached only if
        // CPython confirms it is current on this thread (before 3.12: owned by the crate
        // for this thread, checked above); the frame pushed below pairs it with
        // `PyEval_RestoreThread(tstate)`. No Python code runs, so nothing touches the stack
        // meanwhile.
        if !unsafe { crate::raw::ffi::detach_if_current(tstate, |_| true) } {
            return None;
        }
        stack.push_inline(len, Frame::released(tstate, top.owned, below_in_guard));
        Some(len)
    })
}

/// Records a frame whose change has already been made. Returns its index, which stays valid
/// until the frame is finished: live frames are never popped, and neither is anything below.
///
/// # Panics
/// Only if the frame must spill to the heap while this thread's thread-locals are being
/// destroyed. The change is undone before the panic propagates, so the thread is never left
/// in a state that no guard will undo.
#[inline]
pub(crate) fn push(frame: Frame) -> u32 {
    match FRAMES.with(|stack| stack.try_push_inline(frame)) {
        Some(index) => index,
        None => push_spilled(frame),
    }
}

#[cold]
#[inline(never)]
fn push_spilled(frame: Frame) -> u32 {
    let undo_on_unwind = scopeguard::guard(frame, |frame| {
        frame.undo_in_place();
        frame.undo(true);
    });
    let index = FRAMES.with(|stack| stack.push_spilled(frame));
    scopeguard::ScopeGuard::into_inner(undo_on_unwind);
    index
}

/// Runs `f`, a C call of this crate that runs Python code, with an
/// [`Entry::CallingPython`] frame on top, so that Python code calling back into Rust meanwhile
/// finds this thread attached and may nest guards. Guards left behind by that code are
/// ended when `f` returns, as by a closure form.
pub(crate) fn calling_python<T>(f: impl FnOnce() -> T) -> T {
    let _calling = Scope {
        index: push(Frame::new(
            Entry::CallingPython,
            ptr::null_mut(),
            false,
            false,
        )),
        likely: Entry::CallingPython,
    };
    f()
}

/// Makes the frame at `index`, just pushed on a detached thread for another interpreter's
/// thread state, bind `PyGILState` to the main interpreter again when it is undone
/// ([`frame::BIND_MAIN_AGAIN`]).
#[cfg(Py_3_12)]
pub(crate) fn bind_main_again_when_undone(index: u32) {
    FRAMES.with(|stack| {
        if let Some(frame) = stack.get(index) {
            stack.set(
                index,
                Frame {
                    suspended: frame::BIND_MAIN_AGAIN,
                    ..frame
                },
            );
        }
    });
}

/// A copy of the frame at `index`, if it exists.
pub(crate) fn frame(index: u32) -> Option<Frame> {
    FRAMES.with(|stack| stack.get(index))
}

/// Marks the frame at `index` finished, then undoes every finished frame that no newer
/// frame holds a change above. Returns the frame's [`Frame::below_in_guard`] link.
///
/// A frame with live frames above it stays in place and is undone when the last of those
/// is finished, so CPython only ever sees the last change undone first.
#[inline]
pub(crate) fn finish(index: u32) -> u32 {
    finish_likely(index, Entry::Nested)
}

/// [`finish`], with a fast path for a frame of entry `likely` (a constant at every call
/// site, so that only its arm of [`Frame::undo`] is inlined).
#[inline(always)]
pub(crate) fn finish_likely(index: u32, likely: Entry) -> u32 {
    finish_fast_or(index, likely, || finish_slow(index))
}

/// [`finish`] for a main-interpreter guard, whose frame is most often nested (finished
/// inline, as by [`finish_likely`]) or else the kept thread state of a detached thread
/// (finished by a fast path out of line, keeping the nested one small): counted for the
/// shutdown gate, or not on a thread without a count (the one that called `initialize`).
#[inline(always)]
pub(crate) fn finish_main(index: u32) -> u32 {
    finish_fast_or(index, Entry::Nested, || finish_kept_slow(index))
}

#[inline(never)]
fn finish_kept_slow(index: u32) -> u32 {
    finish_fast_or(index, Entry::Kept, || {
        finish_fast_or(index, Entry::Restored, || finish_slow(index))
    })
}

/// Pops and undoes the frame at `index` by the fast path of [`pop_simple`] for entry
/// `likely`, else returns `otherwise()`.
#[inline(always)]
fn finish_fast_or(index: u32, likely: Entry, otherwise: impl FnOnce() -> u32) -> u32 {
    match pop_simple(index, likely) {
        Some(frame) => {
            frame.undo(true);
            frame.below_in_guard
        }
        None => otherwise(),
    }
}

/// The most common finish, small enough to inline everywhere: the top frame, inline, of
/// entry `entry` (never [`Entry::Deleting`], whose undo must see the frame), suspending
/// nothing, with no finished frame waiting to be undone. Pops it and returns it, to be
/// undone; `None`, having changed nothing, otherwise.
#[inline(always)]
fn pop_simple(index: u32, entry: Entry) -> Option<Frame> {
    FRAMES.with(|stack| {
        let frame = stack.inline(index)?;
        if stack.len.get() != index + 1
            || frame.entry != entry
            || entry == Entry::Deleting
            || (entry.may_suspend() && !frame.suspended.is_null())
            || stack.finished.get() != 0
        {
            return None;
        }
        debug_assert_eq!(
            frame.life,
            Life::Live,
            "the top frame of a guard being dropped"
        );
        stack.len.set(index);
        // Rebuilt from what was checked, so the compiler knows it too and drops the
        // now-redundant tests from the inlined `undo`.
        Some(Frame {
            entry,
            suspended: ptr::null_mut(),
            life: Life::Live,
            ..frame
        })
    })
}

/// Pops the frame at `index` if it is the top one, inline, live and not
/// [`Entry::Deleting`] (whose undo runs Python code that must see the frame). Returns it,
/// and whether finished frames wait below.
fn pop_top(index: u32) -> Option<(Frame, bool)> {
    FRAMES.with(|stack| {
        let frame = stack.inline(index)?;
        if stack.len.get() != index + 1
            || frame.entry == Entry::Deleting
            || frame.life != Life::Live
        {
            return None;
        }
        stack.pop();
        Some((frame, stack.finished.get() != 0))
    })
}

/// [`finish`] for every other frame: pops and undoes it at once if [`pop_top`] allows,
/// then whatever finished frames that uncovered; else [`finish_below_top`].
#[inline(never)]
fn finish_slow(index: u32) -> u32 {
    let Some((frame, any_finished)) = pop_top(index) else {
        return finish_below_top(index);
    };
    // Undone after it was popped, like in `unwind`.
    frame.undo(true);
    if any_finished {
        unwind();
    }
    frame.below_in_guard
}

/// [`finish`] for a frame that cannot be undone at once: one with frames above it, a
/// spilled one, a forgotten one, or one whose undo runs Python code.
#[cold]
#[inline(never)]
fn finish_below_top(index: u32) -> u32 {
    let below_in_guard = FRAMES.with(|stack| {
        let mut frame = stack.get(index)?;
        debug_assert!(
            matches!(frame.life, Life::Live | Life::Undoing),
            "a frame finished twice"
        );
        match frame.life {
            // Its guard was dropped by Python code that runs while the frame is undone.
            Life::Undoing => frame.life = Life::UndoingFinished,
            _ => {
                frame.life = Life::Finished;
                stack.finished.set(stack.finished.get() + 1);
            }
        }
        stack.set(index, frame);
        debug_assert!(
            stack.finished.get() <= stack.len.get(),
            "more frames finished than on the stack"
        );
        Some(frame.below_in_guard)
    });
    debug_assert!(
        below_in_guard.is_some(),
        "finish of a frame that is not on the stack"
    );
    unwind();
    below_in_guard.unwrap_or(NO_FRAME)
}

/// The newest frame at `from` or above that still holds a change.
fn newest_holding(stack: &FrameStack, from: u32) -> Option<(u32, Frame)> {
    (from..stack.len.get())
        .rev()
        .filter_map(|index| Some((index, stack.get(index)?)))
        .find(|(_, frame)| frame.entry != Entry::Forgotten)
}

/// Undoes finished frames, newest first, as long as the newest frame holding a change is
/// finished; then pops the frames at the top that hold no change and whose guards are
/// gone.
fn unwind() {
    loop {
        let next = FRAMES.with(|stack| newest_holding(stack, 0));
        match next {
            Some((index, frame)) if frame.life == Life::Finished => end_frame(index, frame),
            _ => break,
        }
    }
    FRAMES.with(|stack| {
        while let Some((_, top)) = stack.top() {
            if top.entry != Entry::Forgotten || top.life != Life::Finished {
                break;
            }
            stack.finished.set(stack.finished.get() - 1);
            stack.pop();
        }
    });
}
