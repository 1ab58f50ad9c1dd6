//! What the rest of the crate asks the frame stack: whether it holds a change, names or
//! vouches for a thread state, which main-interpreter state it released; and the surgery
//! of a fork's child.

#![allow(
    unsafe_code,
    reason = "asks CPython which interpreter a thread state belongs to (raw::ffi)"
)]

use core::ptr;

use crate::raw::ffi::PyThreadState;

use super::frame::{Entry, Life};
use super::newest_holding;
use super::storage::FRAMES;

/// Whether any frame on this thread's stack still holds a change.
pub(crate) fn holds_any_change() -> bool {
    FRAMES.with(|stack| newest_holding(stack, 0).is_some())
}

/// Whether a frame on this thread's stack that holds a change names `tstate` as a thread
/// state the crate owns, or as the one it suspended. Such a thread state must not be
/// deleted while the frame exists.
pub(crate) fn names(tstate: *mut PyThreadState) -> bool {
    FRAMES.with(|stack| {
        (0..stack.len.get())
            .filter_map(|index| stack.get(index))
            .filter(|frame| frame.entry != Entry::Forgotten)
            .any(|frame| (frame.owned && frame.tstate == tstate) || frame.suspended == tstate)
    })
}

/// Whether a frame on this thread's stack vouches that `tstate`, the current thread state,
/// exists and is this thread's ([`Frame::vouches_for`](super::Frame::vouches_for)), or the
/// newest frame is a live [`Entry::CallingPython`] one and `tstate` was created on this
/// thread: what tells this thread's thread states apart before 3.12, where the current one
/// may be another thread's.
#[cfg(not(Py_3_12))]
pub(crate) fn vouches_for(tstate: *mut PyThreadState) -> bool {
    FRAMES.with(|stack| {
        let calling_python = newest_holding(stack, 0).is_some_and(|(_, newest)| {
            newest.entry == Entry::CallingPython && newest.life == Life::Live
        });
        // SAFETY: `tstate` is current (the caller's), so live.
        (calling_python && unsafe { crate::raw::ffi::created_on_this_thread(tstate) })
            || (0..stack.len.get())
                .filter_map(|index| stack.get(index))
                .any(|frame| frame.vouches_for(tstate))
    })
}

/// Forgets `tstate`, which this thread is about to delete (a handle's, when the shutdown
/// ends its interpreter): a frame that attached it holds no change any more (its guard,
/// if counted for the shutdown gate, is uncounted), and a frame that suspended it will not
/// re-attach it.
pub(crate) fn forget_thread_state(tstate: *mut PyThreadState) {
    FRAMES.with(|stack| {
        for index in 0..stack.len.get() {
            let Some(mut frame) = stack.get(index) else {
                continue;
            };
            if frame.entry != Entry::Forgotten && frame.owned && frame.tstate == tstate {
                if frame.entry.is_kept() {
                    crate::runtime::native_thread::dismiss_guard();
                }
                frame.entry = Entry::Forgotten;
                frame.tstate = ptr::null_mut();
                frame.owned = false;
            }
            if frame.suspended == tstate {
                frame.suspended = ptr::null_mut();
            }
            stack.set(index, frame);
        }
    });
}

/// In the child of a fork, where `survivor` is the only thread state left: turns every
/// frame that names another one into an [`Entry::Forgotten`] one, so that undoing it does
/// nothing to the state it would re-attach or delete, which is gone. Returns how many live
/// [kept](Entry::is_kept) frames remain.
pub(crate) fn forget_thread_states_except(survivor: *mut PyThreadState) -> usize {
    FRAMES.with(|stack| {
        let mut kept = 0;
        for index in 0..stack.len.get() {
            let Some(mut frame) = stack.get(index) else {
                continue;
            };
            if frame.tstate != survivor {
                frame.entry = Entry::Forgotten;
                frame.tstate = ptr::null_mut();
                frame.main = false;
                frame.owned = false;
            }
            if frame.suspended != survivor {
                frame.suspended = ptr::null_mut();
            }
            if frame.entry.is_kept() && frame.life == Life::Live {
                kept += 1;
            }
            stack.set(index, frame);
        }
        kept
    })
}

/// The main-interpreter thread state that the newest live release frame detached, if any,
/// and whether the crate owns it: re-attaching it keeps the thread's Python identity (its
/// `threading` thread, its thread-locals) instead of inventing another one. Only a live
/// frame counts: its scope vouches for the thread state, where a finished one may have
/// outlived it. None once the runtime is finalizing, which may free the thread states the
/// frames name.
#[inline]
pub(crate) fn released_main_thread_state() -> Option<(*mut PyThreadState, bool)> {
    if FRAMES.with(|stack| stack.len.get()) == 0 {
        return None;
    }
    released_main_thread_state_below()
}

#[inline(never)]
fn released_main_thread_state_below() -> Option<(*mut PyThreadState, bool)> {
    if crate::runtime::check_not_finalizing().is_err() {
        return None;
    }
    let epoch = crate::raw::epoch::epoch();
    FRAMES.with(|stack| {
        (0..stack.len.get())
            .rev()
            .filter_map(|index| stack.get(index))
            .filter(|frame| {
                frame.vouches_for(frame.tstate)
                    && frame.attached().is_null()
                    && frame.stamp == epoch
            })
            // SAFETY: alive by the scope rule (a live release frame, `Frame::vouches_for`),
            // in this runtime (the epoch, checked above) and until finalization (checked
            // above).
            .find(|frame| unsafe { crate::raw::ffi::is_main_interpreter_state(frame.tstate) })
            .map(|frame| (frame.tstate, frame.owned))
    })
}
