//! Closure forms as scopes: ending, newest first, the frames that outlived the closure
//! they were made in.

use core::ptr;

use super::frame::{Entry, Frame, Life};
use super::storage::FRAMES;
use super::{finish_below_top, finish_fast_or, newest_holding, pop_top, unwind};

/// The frame of a closure form (`with_gil`, `without_gil`, `run`, ...), finished when the
/// closure returns or unwinds, with the fast path of [`finish_likely`](super::finish_likely) for a frame of
/// entry `likely`.
///
/// Frames above it that still hold a change can only come from guards created inside the
/// closure that outlived it: leaked with `mem::forget`, stored in a thread-local, or
/// returned. They are ended first ([`end_above`]), so that the closure's caller gets back
/// the state it had, whatever the closure left behind.
pub(crate) struct Scope {
    pub(crate) index: u32,
    pub(crate) likely: Entry,
}

impl Drop for Scope {
    #[inline(always)]
    fn drop(&mut self) {
        finish_fast_or(self.index, self.likely, || end_scope(self.index));
    }
}

#[inline(never)]
fn end_scope(index: u32) -> u32 {
    if let Some((frame, any_finished)) = pop_top(index) {
        frame.undo(true);
        if any_finished {
            unwind();
        }
        return frame.below_in_guard;
    }
    end_scope_slow(index)
}

#[cold]
#[inline(never)]
fn end_scope_slow(index: u32) -> u32 {
    end_above(index);
    finish_below_top(index)
}

/// Ends every frame above `index` that still holds a change, newest first: undoes it as far
/// as CPython confirms it still describes the thread ([`Frame::undo`]), and leaves it on the
/// stack as [`Entry::Forgotten`], for its guard to pop without effect.
fn end_above(index: u32) {
    while let Some((above, frame)) = FRAMES.with(|stack| newest_holding(stack, index + 1)) {
        end_frame(above, frame);
    }
}

/// Undoes `frame`, at `index`, no newer frame holding a change, and leaves it forgotten.
/// Python code run by the undo (finalizers, while a thread state is cleared) may push frames
/// above it and leave some alive: those are ended too, before the frame's own undo.
pub(super) fn end_frame(index: u32, frame: Frame) {
    debug_assert!(
        matches!(frame.life, Life::Live | Life::Finished),
        "a frame ended while it is being undone"
    );
    debug_assert!(
        frame.entry != Entry::Forgotten,
        "a frame ended that holds no change"
    );
    FRAMES.with(|stack| {
        if frame.life == Life::Finished {
            stack.finished.set(stack.finished.get() - 1);
        }
        let guard_gone = frame.life == Life::Finished;
        stack.set(
            index,
            Frame {
                life: if guard_gone {
                    Life::UndoingFinished
                } else {
                    Life::Undoing
                },
                ..frame
            },
        );
    });
    frame.undo_in_place();
    end_above(index);
    frame.undo(false);
    FRAMES.with(|stack| {
        let guard_gone = stack
            .get(index)
            .is_some_and(|now| now.life == Life::UndoingFinished);
        if guard_gone {
            stack.finished.set(stack.finished.get() + 1);
        }
        stack.set(
            index,
            Frame {
                entry: Entry::Forgotten,
                tstate: ptr::null_mut(),
                suspended: ptr::null_mut(),
                main: false,
                owned: false,
                life: if guard_gone {
                    Life::Finished
                } else {
                    Life::Live
                },
                ..frame
            },
        );
    });
}
