//! Detaching this thread and recording it on the frame stack, for
//! [`WithoutGil`](crate::WithoutGil), [`without_gil`](crate::without_gil) and
//! [`GilGuard::release`](crate::GilGuard::release): the fast path detaches the top frame's
//! thread state ([`stack::push_released`]); the slow path asks which one is attached.

#![allow(unsafe_code, reason = "detaches the thread")]

use crate::context::attached::{attached_thread_state, owns};
use crate::context::frame::{Entry, Frame, FrameIndex, Owner};
use crate::error::GilError;
use crate::guards::stack;
use crate::raw::ffi;
#[cfg(feature = "stats")]
use crate::stats::{interp::InterpKey, record as stats};

/// Detaches this thread and pushes the frame that records it, linked to `below_in_guard`.
///
/// # Errors
/// [`GilError::NotAttached`] if the thread is not attached.
#[inline(always)]
pub(crate) fn release(below_in_guard: Option<FrameIndex>) -> Result<FrameIndex, GilError> {
    match stack::push_released(below_in_guard) {
        Some(pushed) => Ok(pushed.index),
        None => release_slow(below_in_guard),
    }
}

#[inline(never)]
pub(crate) fn release_slow(below_in_guard: Option<FrameIndex>) -> Result<FrameIndex, GilError> {
    let attached = attached_thread_state();
    if attached.is_null() {
        return Err(GilError::NotAttached);
    }
    let owner = if owns(attached) {
        Owner::Crate
    } else {
        Owner::Foreign
    };
    #[cfg(feature = "stats")]
    let detaching = stats::detaching();
    // SAFETY: `attached` is attached to this thread. `Entry::Released` pairs this with
    // `PyEval_RestoreThread` of the returned state.
    let tstate = unsafe { ffi::save_thread() };
    // SAFETY: released just now, so live (the scope rule).
    #[cfg(feature = "stats")]
    stats::released(detaching, || unsafe { InterpKey::of(tstate) });
    Ok(stack::push(Frame::released(
        Entry::Released,
        tstate,
        owner,
        below_in_guard,
    )))
}
