//! What the rest of the crate asks the frame stack: whether it holds a change, names or
//! vouches for a thread state, which main-interpreter thread state it released; and the
//! frames' share of forgetting thread states that are gone (a fork's child, a shutdown).

#![allow(
    unsafe_code,
    reason = "asks CPython about thread states the frames vouch for"
)]

use crate::context::frame::{Entry, Life, Owner};
use crate::context::thread;
use crate::raw::epoch::epoch;
use crate::raw::ffi::{self, PyThreadState};

/// Whether any frame on this thread's stack still holds a change.
pub(crate) fn holds_any_change() -> bool {
    thread::with(|context| context.frames.newest_holding(0).is_some())
}

/// Whether a frame on this thread's stack that holds a change names `tstate` as a thread
/// state the crate owns, or as the one it suspended: such a thread state must not be
/// deleted while the frame exists.
pub(crate) fn names(tstate: *mut PyThreadState) -> bool {
    thread::with(|context| {
        context.frames.frames().any(|(_, frame)| {
            frame.entry != Entry::Forgotten
                && ((frame.owner == Owner::Crate && frame.tstate == tstate)
                    || frame.suspended == tstate)
        })
    })
}

/// Whether a frame vouches that `tstate`, the current thread state, exists and is this
/// thread's (`Frame::vouches_for`), or the newest frame is a live
/// [`Entry::CallingPython`] one and `tstate` was created on this thread: what tells this
/// thread's thread states apart before 3.12, where the current one may be another thread's.
#[cfg(not(Py_3_12))]
pub(crate) fn vouches_for(tstate: *mut PyThreadState) -> bool {
    thread::with(|context| {
        let calling_python = context.frames.newest_holding(0).is_some_and(|(_, newest)| {
            newest.entry == Entry::CallingPython && newest.life == Life::Live
        });
        // SAFETY: `tstate` is current (the caller's), so live.
        (calling_python && unsafe { ffi::created_on_this_thread(tstate) })
            || context
                .frames
                .frames()
                .any(|(_, frame)| frame.vouches_for(tstate))
    })
}

/// Forgets `tstate`, which this thread is about to delete (a handle's, when the shutdown
/// ends its interpreter): a frame that attached it holds no change any more, and a frame
/// that suspended it will not re-attach it. Returns how many live [`Entry::Kept`] frames
/// were forgotten, whose guards the caller uncounts for the shutdown gate.
pub(crate) fn forget_thread_state(tstate: *mut PyThreadState) -> usize {
    thread::with(|context| {
        let mut kept = 0;
        for (index, mut frame) in context.frames.frames() {
            if frame.entry != Entry::Forgotten
                && frame.owner == Owner::Crate
                && frame.tstate == tstate
            {
                kept += usize::from(frame.entry == Entry::Kept);
                frame = frame.forgotten();
            }
            if frame.suspended == tstate {
                frame.suspended = core::ptr::null_mut();
            }
            context.frames.set(index, frame);
        }
        kept
    })
}

/// In the child of a fork, where `survivor` is the only thread state left: turns every
/// frame that names another one into a [`Entry::Forgotten`] one, so that undoing it does
/// nothing to the state it would re-attach or delete, which is gone. Returns how many live
/// [`Entry::Kept`] frames remain.
pub(crate) fn forget_thread_states_except(survivor: *mut PyThreadState) -> usize {
    thread::with(|context| {
        let mut kept = 0;
        for (index, mut frame) in context.frames.frames() {
            if frame.tstate != survivor {
                frame = frame.forgotten();
            }
            if frame.suspended != survivor {
                frame.suspended = core::ptr::null_mut();
            }
            if frame.entry == Entry::Kept && frame.life == Life::Live {
                kept += 1;
            }
            context.frames.set(index, frame);
        }
        kept
    })
}

/// The main-interpreter thread state that the newest live release frame detached, if any,
/// and who owns it: re-attaching it keeps the thread's Python identity (its `threading`
/// thread, its thread-locals) instead of inventing another one. Only a live frame counts:
/// its scope vouches for the thread state, where a finished one may have outlived it.
///
/// # Safety
/// The runtime is not finalizing (which may free the thread states the frames name).
#[inline(never)]
pub(crate) unsafe fn released_main_thread_state() -> Option<(*mut PyThreadState, Owner)> {
    let epoch = epoch();
    thread::with(|context| {
        let frames = &context.frames;
        frames
            .newest_first(0)
            .filter_map(|index| frames.get(index))
            .filter(|frame| {
                frame.vouches_for(frame.tstate)
                    && frame.attached().is_null()
                    && frame.released_in == epoch
            })
            // SAFETY: alive by the scope rule (a live release frame), in this runtime (the
            // epoch, checked above) and not being finalized (the caller).
            .find(|frame| unsafe { ffi::is_main_interpreter_state(frame.tstate) })
            .map(|frame| (frame.tstate, frame.owner))
    })
}
