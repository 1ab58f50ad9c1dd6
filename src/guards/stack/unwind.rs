//! Undoing the finished frames that no newer frame holds in place, and ending the frames
//! that outlived the closure form they were made in.

use crate::context::frame::{Entry, Frame, FrameIndex, Life};
use crate::context::thread;
use crate::guards::stack::undo::Undo;

/// Undoes finished frames, newest first, as long as the newest frame holding a change is
/// finished; then pops the frames at the top that hold no change and whose guards are
/// gone.
pub(crate) fn unwind() {
    while let Some((index, frame)) = thread::with(|context| context.frames.newest_holding(0))
        .filter(|(_, frame)| frame.life == Life::Finished)
    {
        end_frame(index, frame);
    }
    thread::with(|context| {
        let stack = &context.frames;
        while let Some((_, top)) = stack.top() {
            if top.entry != Entry::Forgotten || top.life != Life::Finished {
                break;
            }
            stack.remove_finished();
            stack.pop();
        }
    });
}

/// Ends every frame above `index` that still holds a change, newest first: undoes it as far
/// as CPython confirms it still describes the thread ([`Frame::undo`]), and leaves it on the
/// stack as [`Entry::Forgotten`], for its guard to pop without effect.
pub(crate) fn end_above(index: FrameIndex) {
    while let Some((above, frame)) =
        thread::with(|context| context.frames.newest_holding(index.slot() + 1))
    {
        end_frame(above, frame);
    }
}

/// Undoes `frame`, at `index`, no newer frame holding a change, and leaves it forgotten.
/// Python code run by the undo (finalizers, while a thread state is cleared) may push frames
/// above it and leave some alive: those are ended too, before the frame's own undo.
fn end_frame(index: FrameIndex, frame: Frame) {
    debug_assert!(
        matches!(frame.life, Life::Live | Life::Finished),
        "a frame ended while it is being undone"
    );
    debug_assert!(
        frame.entry != Entry::Forgotten,
        "a frame ended that holds no change"
    );
    thread::with(|context| {
        let stack = &context.frames;
        let life = if frame.life == Life::Finished {
            stack.remove_finished();
            Life::UndoingFinished
        } else {
            Life::Undoing
        };
        stack.set(index, Frame { life, ..frame });
    });
    frame.undo_in_place();
    end_above(index);
    frame.undo(Undo::Deferred);
    thread::with(|context| {
        let stack = &context.frames;
        let guard_gone = stack
            .get(index)
            .is_some_and(|now| now.life == Life::UndoingFinished);
        let life = if guard_gone {
            stack.add_finished();
            Life::Finished
        } else {
            Life::Live
        };
        let forgotten = Frame {
            suspended: core::ptr::null_mut(),
            life,
            ..frame.forgotten()
        };
        stack.set(index, forgotten);
    });
}
