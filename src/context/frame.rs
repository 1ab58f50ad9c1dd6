//! One frame: how a guard changed this thread's attachment, and what undoing it needs to
//! know. Undoing it is the guards layer's (`guards::stack::undo`).

#![allow(unsafe_code, reason = "reads thread states' ids")]

use core::num::NonZeroU32;
use core::ptr;

use crate::raw::ffi::{self, PyThreadState};

/// A frame's place on this thread's stack; valid until the frame is finished (live frames
/// are never popped, and neither is anything below them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameIndex(NonZeroU32);

impl FrameIndex {
    /// The index of the frame that tops a stack of `len` frames (`len` is not zero).
    #[inline(always)]
    pub(crate) fn of_top(len: u64) -> FrameIndex {
        // `len` is never zero where this is called, and fits: the compiler knows both.
        FrameIndex(NonZeroU32::new(len as u32).expect("a stack with a top"))
    }

    /// The index of slot `slot`. Stored plus one, so that `Option<FrameIndex>` is 4 bytes.
    #[inline(always)]
    pub(crate) const fn new(slot: u32) -> FrameIndex {
        match NonZeroU32::new(slot.wrapping_add(1)) {
            Some(index) => FrameIndex(index),
            None => panic!("frame stack overflow"),
        }
    }

    /// The length of a stack this frame tops.
    #[inline(always)]
    pub(crate) const fn len_below_and_self(self) -> u64 {
        self.0.get() as u64
    }

    #[inline(always)]
    pub(crate) const fn slot(self) -> u32 {
        self.0.get() - 1
    }
}

/// In [`Frame::suspended`] (3.12+), in place of a thread state (none has this address): the
/// frame attached another interpreter on a detached thread, moving `PyGILState`'s binding, so
/// undoing it binds a main-interpreter thread state again, as `PyGILState_Ensure` (and so
/// `pyo3`) expects.
#[cfg(Py_3_12)]
pub(crate) const BIND_MAIN_AGAIN: *mut PyThreadState = ptr::dangling_mut();

/// How a frame entered its state, which decides how it is undone. The entries that leave
/// a thread state attached come first, up to [`Entry::Released`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Entry {
    /// The thread was already attached to `tstate`; no C call was made and none undoes it.
    Nested,
    /// `PyGILState_Ensure` attached `tstate`, a new thread state, on a detached thread (so
    /// it returned `PyGILState_UNLOCKED`); undone by `PyGILState_Release`, which deletes it.
    Ensured,
    /// `PyEval_RestoreThread(tstate)` attached a thread state that outlives the frame;
    /// undone by detaching it.
    Restored,
    /// Like `Restored`, for a thread state this crate owns (the one kept for a thread Python
    /// did not create, or a handle's); the guard is counted for the shutdown gate while the
    /// frame lives.
    Kept,
    /// `tstate` is attached for the last time: undone by clearing it (on the stack still, as
    /// that may run Python code) and `PyThreadState_DeleteCurrent`.
    Deleting,
    /// `PyEval_SaveThread` detached `tstate`; undone by `PyEval_RestoreThread(tstate)`.
    Released,
    /// `pyo3`'s `Python::detach`, called by this crate, detached `tstate`; `pyo3`
    /// re-attaches it when its closure returns, so undoing it makes no C call.
    #[cfg(feature = "pyo3")]
    ReleasedByPyo3,
    /// A frame that no longer holds a change: its guard outlived the closure form it was
    /// made in (which ended it), or a fork or a shutdown took its thread state away. It
    /// stays on the stack until its guard is gone, so that other guards' indices stay valid.
    Forgotten,
    /// The crate runs Python code itself (installing a hook, creating a sub-interpreter),
    /// which may attach a thread state it cannot name beforehand. Changes nothing; while it
    /// is the newest frame, a thread state created on this thread counts as this thread's.
    CallingPython,
}

impl Entry {
    /// Whether it leaves its thread state attached: one compare, as those entries come first.
    #[inline(always)]
    pub(crate) const fn attaches(self) -> bool {
        (self as u8) < Entry::Released as u8
    }

    /// Whether a frame of this entry can have suspended another thread state.
    #[inline(always)]
    pub(crate) const fn may_suspend(self) -> bool {
        !matches!(self, Entry::Nested | Entry::Released | Entry::CallingPython)
    }

    /// Whether undoing it re-attaches a thread state that other code had attached: what only
    /// the frame's scope can vouch for.
    const fn releases(self) -> bool {
        #[cfg(feature = "pyo3")]
        if matches!(self, Entry::ReleasedByPyo3) {
            return true;
        }
        matches!(self, Entry::Released)
    }
}

/// Whether a frame's guard is alive, and whether the frame is being undone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Life {
    /// Its guard is alive.
    Live,
    /// Its guard is gone; undone when no newer frame holds a change.
    Finished,
    /// Being undone, in a step that may run Python code (which may push and finish frames
    /// of its own above this one); its guard is alive.
    Undoing,
    /// Being undone, and its guard is gone (dropped before, or by that Python code).
    UndoingFinished,
}

/// Who keeps a frame's thread state alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    /// This crate, for as long as a frame names it (kept for this thread, a handle's, or
    /// created for the frame): the stack alone proves the pointer is live.
    Crate,
    /// Someone else (CPython's `threading`, a C library's `PyGILState_Ensure`, `pyo3`), who
    /// may end it while the frame still names it: CPython must confirm it
    /// ([`Frame::is_current`]).
    Foreign,
}

/// One guard's change to this thread's attachment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Frame {
    pub(crate) entry: Entry,
    pub(crate) life: Life,
    /// Whether `tstate` belongs to the main interpreter. Never recorded for a release (the
    /// release path makes no extra C call; whoever needs to know asks CPython).
    pub(crate) main: bool,
    pub(crate) owner: Owner,
    /// The previous frame pushed by the same [`GilGuard`](crate::GilGuard).
    pub(crate) below_in_guard: Option<FrameIndex>,
    /// The thread state attached by this frame, or detached by it for a release.
    pub(crate) tstate: *mut PyThreadState,
    /// A thread state detached to make room for this frame and re-attached after it is
    /// undone, or null. Only closure forms and `unsafe` constructors suspend, so the code
    /// that attached it is still waiting below. On 3.12+ possibly [`BIND_MAIN_AGAIN`].
    pub(crate) suspended: *mut PyThreadState,
    /// For a release: the [runtime epoch](crate::raw::epoch) of `tstate`, which must never be
    /// touched again if another thread finalized the runtime meanwhile.
    pub(crate) released_in: u64,
    /// For a [`Owner::Foreign`] thread state: its `PyThreadState_GetID`, read while it was
    /// current, which tells it from a later thread state at the same address.
    pub(crate) foreign_id: u64,
}

impl Frame {
    /// A frame that changes nothing, for slots no frame uses yet.
    pub(crate) const UNUSED: Frame =
        Frame::with(Entry::Forgotten, ptr::null_mut(), false, Owner::Foreign);

    /// A frame of `entry` on `tstate`. A frame that leaves its thread state attached names
    /// one (so that comparing it with CPython's current thread state also tells whether the
    /// thread is attached at all).
    const fn with(entry: Entry, tstate: *mut PyThreadState, main: bool, owner: Owner) -> Frame {
        debug_assert!(
            !entry.attaches() || !tstate.is_null(),
            "an attach of no thread state"
        );
        Frame {
            entry,
            life: Life::Live,
            main,
            owner,
            below_in_guard: None,
            tstate,
            suspended: ptr::null_mut(),
            released_in: 0,
            foreign_id: 0,
        }
    }

    /// A frame of a main-interpreter thread state that `entry` attached (or found attached).
    ///
    /// # Safety
    /// A [`Owner::Foreign`] `tstate` is live (current on this thread, typically): its
    /// identity is read now.
    #[inline]
    pub(crate) unsafe fn main(entry: Entry, tstate: *mut PyThreadState, owner: Owner) -> Frame {
        let mut frame = Frame::with(entry, tstate, true, owner);
        if owner == Owner::Foreign {
            // SAFETY: live (caller).
            frame.foreign_id = unsafe { ffi::thread_state_id(tstate) };
        }
        frame
    }

    /// A frame of a handle's thread state, or of one the crate made for another interpreter.
    #[inline(always)]
    pub(crate) const fn handle(entry: Entry, tstate: *mut PyThreadState) -> Frame {
        Frame::with(entry, tstate, false, Owner::Crate)
    }

    /// The frame of a release (`entry` is [`Entry::Released`] or `ReleasedByPyo3`) that
    /// detached `tstate` in the current runtime.
    #[inline(always)]
    pub(crate) fn released(
        entry: Entry,
        tstate: *mut PyThreadState,
        owner: Owner,
        below_in_guard: Option<FrameIndex>,
    ) -> Frame {
        Frame {
            below_in_guard,
            released_in: crate::raw::epoch::epoch(),
            ..Frame::with(entry, tstate, false, owner)
        }
    }

    /// The frame of a call of this crate into Python code (see [`Entry::CallingPython`]).
    pub(crate) const fn calling_python() -> Frame {
        Frame::with(Entry::CallingPython, ptr::null_mut(), false, Owner::Foreign)
    }

    /// A [`Entry::Nested`] frame on this one's thread state.
    #[inline(always)]
    pub(crate) fn nested(&self, below_in_guard: Option<FrameIndex>) -> Frame {
        Frame {
            entry: Entry::Nested,
            life: Life::Live,
            below_in_guard,
            suspended: ptr::null_mut(),
            ..*self
        }
    }

    /// The thread state this frame leaves attached, or null if it leaves the thread detached
    /// or holds no change.
    #[inline(always)]
    pub(crate) fn attached(&self) -> *mut PyThreadState {
        if self.entry.attaches() {
            self.tstate
        } else {
            ptr::null_mut()
        }
    }

    /// Whether the thread state this frame attached is `current`, the one CPython reports
    /// as current on this thread, and is still the same object: the crate owns it, or its
    /// identity is the recorded one.
    #[inline(always)]
    pub(crate) fn is_current(&self, current: *mut PyThreadState) -> bool {
        let tstate = self.attached();
        !tstate.is_null()
            && current == tstate
            && (self.owner == Owner::Crate || same_foreign(current, self.foreign_id))
    }

    /// Whether this frame vouches that `tstate` exists and is this thread's (the scope rule,
    /// `guards::stack`). A [`Entry::Deleting`] frame also vouches while its thread state is
    /// being cleared, which runs Python code attached to it.
    #[inline]
    pub(crate) fn vouches_for(&self, tstate: *mut PyThreadState) -> bool {
        !tstate.is_null()
            && (self.life == Life::Live || self.entry == Entry::Deleting)
            && !matches!(self.entry, Entry::Forgotten | Entry::CallingPython)
            && (((self.owner == Owner::Crate || self.entry.releases()) && self.tstate == tstate)
                || self.suspended == tstate)
    }

    /// This frame, no longer naming its thread state (see [`Entry::Forgotten`]); what it
    /// suspended is still re-attached when it is undone.
    pub(crate) fn forgotten(self) -> Frame {
        Frame {
            entry: Entry::Forgotten,
            tstate: ptr::null_mut(),
            main: false,
            owner: Owner::Foreign,
            ..self
        }
    }
}

/// [`Frame::is_current`] for a foreign thread state, once the pointers match. Out of line,
/// taking two words rather than the frame, so that the fast paths keep the frame in registers.
#[inline(never)]
pub(crate) fn same_foreign(current: *mut PyThreadState, id: u64) -> bool {
    // SAFETY: attached to this thread (checked first: before 3.12 it may be another thread's,
    // which may be deleting it), so live.
    ffi::is_this_threads(current) && unsafe { ffi::thread_state_id(current) } == id
}
