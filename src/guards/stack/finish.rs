//! Finishing a frame when its guard is dropped: at once if it is the top one, else when the
//! frames above it are gone ([`unwind`]).

use crate::context::frame::{Entry, Frame, FrameIndex, Life};
use core::cell::Cell;

use crate::context::frames::{FrameStack, INLINE, NextSlot};
use crate::context::thread;
use crate::guards::stack::undo::{FastUndo, KeptFrame, NestedFrame, RestoredFrame, Undo};
use crate::guards::stack::unwind::unwind;

/// Marks the frame at `index` finished, then undoes the finished frames that no newer change
/// holds in place (the stack invariant). Returns the frame's [`Frame::below_in_guard`].
#[inline]
pub(crate) fn finish(index: FrameIndex) -> Option<FrameIndex> {
    finish_likely::<NestedFrame>(index)
}

/// [`finish`], with a fast path for a frame of entry `U::ENTRY`, inlined.
#[inline(always)]
pub(crate) fn finish_likely<U: FastUndo>(index: FrameIndex) -> Option<FrameIndex> {
    finish_fast_or::<U>(index, || finish_slow(index))
}

/// [`finish`] for a main-interpreter guard's drop, whose frame is most often nested
/// (finished inline), or else re-attached the thread's own thread state (finished out of
/// line, keeping the nested path small): [`Entry::Kept`], or [`Entry::Restored`] on a thread
/// without a count (the one that called `initialize`).
#[inline(always)]
pub(crate) fn finish_main(index: FrameIndex) {
    finish_fast_or::<NestedFrame>(index, || finish_reattached_or_slow(index));
}

#[inline(never)]
fn finish_reattached_or_slow(index: FrameIndex) -> Option<FrameIndex> {
    if !finish_reattached(index) {
        finish_slow(index);
    }
    None
}

/// Pops and undoes the frame at `index` if it is the simple top one and re-attached a main
/// thread state ([`Entry::Kept`] or [`Entry::Restored`]); false, having changed nothing,
/// otherwise. Inlined into the out-of-line finishes of a guard and of a closure form.
#[inline(always)]
pub(crate) fn finish_reattached(index: FrameIndex) -> bool {
    let finished = thread::with(|context| {
        let stack = &context.frames;
        let frame = stack.simple_top(index).ok_or(())?.get();
        if !frame.suspended.is_null() {
            return Err(());
        }
        match frame.entry {
            Entry::Kept => {
                stack.pop_simple_top(index);
                KeptFrame::undo(&frame);
            }
            Entry::Restored => {
                stack.pop_simple_top(index);
                RestoredFrame::undo(&frame);
            }
            _ => return Err(()),
        }
        Ok(())
    });
    finished.is_ok()
}

/// [`finish_fast_or`] for the frame a fast path pushed into `slot`.
#[inline(always)]
pub(crate) fn finish_slot_or<U: FastUndo>(
    slot: NextSlot<'static>,
    otherwise: impl FnOnce() -> Option<FrameIndex>,
) -> Option<FrameIndex> {
    let stack = &thread::context().frames;
    finish_cell_or::<U>(stack, slot.index, slot.simple_top(stack), otherwise)
}

/// The most common finish, small enough to inline everywhere: if the frame at `index` is
/// the top one, inline, of entry `U::ENTRY`, suspending nothing, with no finished frame
/// waiting to be undone, pops and undoes it; else returns `otherwise()`, having changed
/// nothing.
#[inline(always)]
pub(crate) fn finish_fast_or<U: FastUndo>(
    index: FrameIndex,
    otherwise: impl FnOnce() -> Option<FrameIndex>,
) -> Option<FrameIndex> {
    let stack = &thread::context().frames;
    finish_cell_or::<U>(stack, index, stack.simple_top(index), otherwise)
}

/// Pops and undoes the frame at `index`, in `top` (if [`simple_top`] found it), if it is of
/// entry `U::ENTRY` and suspends nothing; else returns `otherwise()`.
///
/// [`simple_top`]: crate::context::frames::FrameStack::simple_top
#[inline(always)]
fn finish_cell_or<U: FastUndo>(
    stack: &FrameStack,
    index: FrameIndex,
    top: Option<&Cell<Frame>>,
    otherwise: impl FnOnce() -> Option<FrameIndex>,
) -> Option<FrameIndex> {
    // The frame never leaves this test as an `Option`: testing that one would read its
    // bytes again.
    let Some(cell) = top else {
        return otherwise();
    };
    let frame = cell.get();
    if frame.entry != U::ENTRY || (U::ENTRY.may_suspend() && !frame.suspended.is_null()) {
        return otherwise();
    }
    debug_assert_eq!(frame.life, Life::Live, "the top frame of a live guard");
    stack.pop_simple_top(index);
    U::undo(&frame);
    frame.below_in_guard
}

/// Pops the frame at `index` if it is the top one, inline, live and not
/// [`Entry::Deleting`] (whose undo runs Python code that must see the frame). Returns it,
/// and whether finished frames wait below.
pub(crate) fn pop_top(index: FrameIndex) -> Option<(Frame, bool)> {
    thread::with(|context| {
        let stack = &context.frames;
        if stack.len() != index.slot() + 1 {
            return None;
        }
        let frame = stack.get(index)?;
        if index.slot() as usize >= INLINE {
            return None;
        }
        if frame.entry == Entry::Deleting || frame.life != Life::Live {
            return None;
        }
        stack.pop();
        Some((frame, stack.finished() != 0))
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
                stack.add_finished();
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
