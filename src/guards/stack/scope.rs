//! Closure forms as scopes: ending, newest first, the frames that outlived the closure
//! they were made in.

use crate::context::frame::{Entry, Frame, FrameIndex};
use crate::guards::stack::finish::{finish_below_top, finish_fast_or, pop_top};
use crate::guards::stack::push::push;
use crate::guards::stack::undo::Undo;
use crate::guards::stack::unwind::{end_above, unwind};

/// The frame of a closure form (`with_gil`, `without_gil`, `run`, ...), finished when the
/// closure returns or unwinds, with the fast path of
/// [`finish_likely`](super::finish_likely) for a frame of entry `likely`.
///
/// Frames above it that still hold a change can only come from guards created inside the
/// closure that outlived it: leaked with `mem::forget`, stored in a thread-local, or
/// returned. They are ended first, so that the closure's caller gets back the state it
/// had, whatever the closure left behind.
pub(crate) struct Scope {
    pub(crate) index: FrameIndex,
    pub(crate) likely: Entry,
}

impl Drop for Scope {
    #[inline(always)]
    fn drop(&mut self) {
        finish_fast_or(self.index, self.likely, || end_scope(self.index));
    }
}

#[inline(never)]
fn end_scope(index: FrameIndex) -> Option<FrameIndex> {
    if let Some((frame, any_finished)) = pop_top(index) {
        frame.undo(Undo::InScope);
        if any_finished {
            unwind();
        }
        return frame.below_in_guard;
    }
    end_scope_slow(index)
}

#[cold]
#[inline(never)]
fn end_scope_slow(index: FrameIndex) -> Option<FrameIndex> {
    end_above(index);
    finish_below_top(index)
}

/// Runs `f`, a C call of this crate that runs Python code, with an
/// [`Entry::CallingPython`] frame on top, so that Python code calling back into Rust
/// meanwhile finds this thread attached and may nest guards. Guards left behind by that
/// code are ended when `f` returns, as by a closure form.
pub(crate) fn calling_python<T>(f: impl FnOnce() -> T) -> T {
    let _calling = Scope {
        index: push(Frame::calling_python()),
        likely: Entry::CallingPython,
    };
    f()
}
