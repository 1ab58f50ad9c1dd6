//! Closure forms as scopes: ending, newest first, the frames that outlived the closure
//! they were made in.

use core::mem;

use crate::context::frame::{Frame, FrameIndex};
use crate::context::frames::NextSlot;
use crate::guards::stack::finish::{
    finish_below_top, finish_fast_or, finish_reattached, finish_slot_or, pop_top,
};
use crate::guards::stack::push::push;
use crate::guards::stack::undo::{CallingPythonFrame, FastUndo, NestedFrame, Undo};
use crate::guards::stack::unwind::{end_above, unwind};

/// Runs `f` as the scope of the frame at `index`, pushed by a closure form, and finishes the
/// frame when `f` returns or unwinds; `U` is its likely entry, whose finish is inlined.
///
/// Frames above it that still hold a change belong to guards made in `f` that outlived it
/// (leaked, stored in a thread-local, returned): they are ended first, newest first, and stay
/// forgotten until their guards are gone, so that the caller gets back the state it had.
#[inline(always)]
pub(crate) fn in_scope<U: FastUndo, T>(index: FrameIndex, f: impl FnOnce() -> T) -> T {
    let on_unwind = Scope(index);
    let value = f();
    mem::forget(on_unwind);
    finish_fast_or::<U>(index, || end_scope(index));
    value
}

/// [`in_scope`] for a main-interpreter frame, most often nested, or else re-attaching the
/// thread's own thread state (as for [`finish_main`](super::finish_main)).
#[inline(always)]
pub(crate) fn in_main_scope<T>(index: FrameIndex, f: impl FnOnce() -> T) -> T {
    let on_unwind = Scope(index);
    let value = f();
    mem::forget(on_unwind);
    finish_fast_or::<NestedFrame>(index, || end_main_scope(index));
    value
}

#[inline(never)]
fn end_main_scope(index: FrameIndex) -> Option<FrameIndex> {
    if !finish_reattached(index) {
        end_scope(index);
    }
    None
}

/// [`in_scope`] for a frame just pushed into `slot` by a fast path: the common finish
/// finds it without computing where it is.
#[inline(always)]
pub(crate) fn in_pushed_scope<U: FastUndo, T>(slot: NextSlot<'static>, f: impl FnOnce() -> T) -> T {
    let index = slot.index;
    let on_unwind = Scope(index);
    let value = f();
    mem::forget(on_unwind);
    finish_slot_or::<U>(slot, || end_scope(index));
    value
}

/// The end of a scope when `f` unwinds, or when the fast path does not apply.
pub(crate) struct Scope(pub(crate) FrameIndex);

impl Drop for Scope {
    fn drop(&mut self) {
        end_scope(self.0);
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

/// Runs `f`, a C call of this crate that runs Python code, under an
/// [`Entry::CallingPython`](crate::context::frame::Entry::CallingPython) frame, so that
/// Python code calling back into Rust finds this thread attached and may nest guards; the
/// guards it leaves are ended when `f` returns.
pub(crate) fn calling_python<T>(f: impl FnOnce() -> T) -> T {
    in_scope::<CallingPythonFrame, T>(push(Frame::calling_python()), f)
}
