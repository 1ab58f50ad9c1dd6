//! Finishing a frame when its guard is dropped: at once if it is the top one, else when the
//! frames above it are gone ([`unwind`]).

use core::ptr;

use crate::context::frame::{Entry, Frame, FrameIndex, Life};
use crate::context::thread;
use crate::guards::stack::undo::Undo;
use crate::guards::stack::unwind::unwind;

/// Marks the frame at `index` finished, then undoes every finished frame that no newer
/// frame holds a change above. Returns the frame's [`Frame::below_in_guard`] link.
///
/// A frame with live frames above it stays in place and is undone when the last of those
/// is finished, so CPython only ever sees the last change undone first.
#[inline]
pub(crate) fn finish(index: FrameIndex) -> Option<FrameIndex> {
    finish_likely(index, Entry::Nested)
}

/// [`finish`], with a fast path for a frame of entry `likely` (a constant at every call
/// site, so that only its arm of [`Frame::undo`] is inlined).
#[inline(always)]
pub(crate) fn finish_likely(index: FrameIndex, likely: Entry) -> Option<FrameIndex> {
    finish_fast_or(index, likely, || finish_slow(index))
}

/// [`finish`] for a main-interpreter guard, whose frame is most often nested (finished
/// inline) or else re-attached the thread's own thread state (finished out of line, keeping
/// the nested path small): [`Entry::Kept`] where the attach was counted for the shutdown
/// gate, [`Entry::Restored`] on a thread without a count (the one that called `initialize`).
#[inline(always)]
pub(crate) fn finish_main(index: FrameIndex) -> Option<FrameIndex> {
    finish_fast_or(index, Entry::Nested, || finish_reattached(index))
}

#[inline(never)]
fn finish_reattached(index: FrameIndex) -> Option<FrameIndex> {
    finish_fast_or(index, Entry::Kept, || {
        finish_fast_or(index, Entry::Restored, || finish_slow(index))
    })
}

/// Pops and undoes the frame at `index` by [`pop_simple`] for entry `likely`, else returns
/// `otherwise()`.
#[inline(always)]
pub(crate) fn finish_fast_or(
    index: FrameIndex,
    likely: Entry,
    otherwise: impl FnOnce() -> Option<FrameIndex>,
) -> Option<FrameIndex> {
    match pop_simple(index, likely) {
        Some(frame) => {
            frame.undo(Undo::InScope);
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
fn pop_simple(index: FrameIndex, entry: Entry) -> Option<Frame> {
    thread::with(|context| {
        let stack = &context.frames;
        let frame = stack.inline(index)?;
        if stack.len.get() != index.slot() + 1
            || frame.entry != entry
            || entry == Entry::Deleting
            || (entry.may_suspend() && !frame.suspended.is_null())
            || stack.finished.get() != 0
        {
            return None;
        }
        debug_assert_eq!(frame.life, Life::Live, "the top frame of a live guard");
        stack.len.set(index.slot());
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
pub(crate) fn pop_top(index: FrameIndex) -> Option<(Frame, bool)> {
    thread::with(|context| {
        let stack = &context.frames;
        let frame = stack.inline(index)?;
        if stack.len.get() != index.slot() + 1
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
fn finish_slow(index: FrameIndex) -> Option<FrameIndex> {
    let Some((frame, any_finished)) = pop_top(index) else {
        return finish_below_top(index);
    };
    // Undone after it was popped, like in `unwind`.
    frame.undo(Undo::InScope);
    if any_finished {
        unwind();
    }
    frame.below_in_guard
}

/// [`finish`] for a frame that cannot be undone at once: one with frames above it, a
/// spilled one, a forgotten one, or one whose undo runs Python code.
#[cold]
#[inline(never)]
pub(crate) fn finish_below_top(index: FrameIndex) -> Option<FrameIndex> {
    let below_in_guard = thread::with(|context| {
        let stack = &context.frames;
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
        Some(frame.below_in_guard)
    });
    debug_assert!(
        below_in_guard.is_some(),
        "finish of a frame not on the stack"
    );
    unwind();
    below_in_guard.flatten()
}
