//! Undoing a frame: the only place where the frame stack calls CPython to put the thread
//! back, and only as far as CPython confirms the frame still describes it.

#![allow(unsafe_code, reason = "undoing a frame calls CPython")]

use crate::context::attached::attached_thread_state;
use crate::context::frame::{Entry, Frame, Owner, same_foreign};
use crate::raw::epoch::epoch;
use crate::raw::ffi::{self, PyThreadState};
use crate::runtime::native_thread;

/// Where a frame is undone from, which decides whether its scope still vouches for the
/// thread state a release re-attaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Undo {
    /// By its guard's own drop, or the end of its closure form: within its scope.
    InScope,
    /// Later, when the newer frames that held it in place are gone: the thread must also be
    /// detached for a re-attach.
    Deferred,
}

/// An entry whose frames the fast paths pop and undo inline (`finish::finish_fast_or`): one
/// type per entry, so that each call site carries that entry's undo alone, with no
/// dispatch on the entry at run time.
pub(crate) trait FastUndo {
    const ENTRY: Entry;
    /// Undoes `frame`, of entry [`ENTRY`](FastUndo::ENTRY), suspending nothing, in scope.
    fn undo(frame: &Frame);
}

/// [`Entry::Nested`]: nothing to undo.
pub(crate) struct NestedFrame;
/// [`Entry::Restored`]: detach.
pub(crate) struct RestoredFrame;
/// [`Entry::Kept`]: detach, and uncount the guard.
pub(crate) struct KeptFrame;
/// [`Entry::Released`]: re-attach.
pub(crate) struct ReleasedFrame;
/// [`Entry::CallingPython`]: nothing to undo.
pub(crate) struct CallingPythonFrame;
/// `Entry::ReleasedByPyo3`: `pyo3` re-attaches.
#[cfg(feature = "pyo3")]
pub(crate) struct ReleasedByPyo3Frame;

impl FastUndo for NestedFrame {
    const ENTRY: Entry = Entry::Nested;
    #[inline(always)]
    fn undo(_: &Frame) {}
}

impl FastUndo for RestoredFrame {
    const ENTRY: Entry = Entry::Restored;
    #[inline(always)]
    fn undo(frame: &Frame) {
        frame.detach();
    }
}

impl FastUndo for KeptFrame {
    const ENTRY: Entry = Entry::Kept;
    #[inline(always)]
    fn undo(frame: &Frame) {
        // A kept thread state is always the crate's (see `Entry::Kept`).
        detach_owned(frame.tstate);
        native_thread::dismiss_guard();
    }
}

impl FastUndo for ReleasedFrame {
    const ENTRY: Entry = Entry::Released;
    #[inline(always)]
    fn undo(frame: &Frame) {
        frame.restore_released(Undo::InScope);
    }
}

impl FastUndo for CallingPythonFrame {
    const ENTRY: Entry = Entry::CallingPython;
    #[inline(always)]
    fn undo(_: &Frame) {}
}

#[cfg(feature = "pyo3")]
impl FastUndo for ReleasedByPyo3Frame {
    const ENTRY: Entry = Entry::ReleasedByPyo3;
    #[inline(always)]
    fn undo(frame: &Frame) {
        if frame.released_in != epoch() {
            runtime_gone();
        }
    }
}

impl Frame {
    /// The part of undoing that may run Python code, done while the frame is still on the
    /// stack so that code sees the thread's true state. Nothing is cleared unless CPython
    /// confirms the frame's thread state is attached.
    pub(crate) fn undo_in_place(&self) {
        if self.entry == Entry::Deleting && self.is_current(ffi::current_thread_state()) {
            // SAFETY: `self.tstate` is attached (just confirmed); clearing needs exactly that.
            unsafe { ffi::clear(self.tstate) };
        }
    }

    /// Returns the thread to the state it was in before this frame, as far as CPython
    /// confirms the frame still describes it; what cannot be confirmed is left alone.
    ///
    /// Detaching undos (`Restored`, `Kept`, `Ensured`, `Deleting`) act only on the frame's
    /// thread state while CPython confirms it is current. Re-attaching undos (`Released`,
    /// `suspended`) act on a thread state the frame's scope vouches for.
    #[inline(never)]
    pub(crate) fn undo(self, from: Undo) {
        match self.entry {
            Entry::Nested | Entry::Forgotten | Entry::CallingPython => {}
            Entry::Restored => RestoredFrame::undo(&self),
            Entry::Kept => KeptFrame::undo(&self),
            Entry::Released => self.restore_released(from),
            #[cfg(feature = "pyo3")]
            Entry::ReleasedByPyo3 => ReleasedByPyo3Frame::undo(&self),
            Entry::Ensured => {
                if self.is_current(ffi::current_thread_state())
                    && ffi::gilstate_thread_state() == self.tstate
                {
                    // SAFETY: `self.tstate`, which `PyGILState_Ensure` created and bound to
                    // this thread with a counter of 1 (returning `UNLOCKED`), is attached:
                    // releasing clears and deletes it.
                    unsafe { ffi::gilstate_release_unlocked() };
                }
            }
            Entry::Deleting => {
                if self.is_current(ffi::current_thread_state()) {
                    // SAFETY: `self.tstate` is attached (confirmed), and `undo_in_place`
                    // cleared it. Deleting it also detaches the thread.
                    unsafe { ffi::delete_current() };
                }
                // Deleting a thread state `PyGILState` binds unbinds it.
                #[cfg(Py_3_12)]
                if self.suspended.is_null() {
                    bind_main_again();
                }
            }
        }
        if !self.suspended.is_null() {
            self.restore_suspended();
        }
    }

    /// Undoes a release: re-attaches its thread state, which the frame's scope vouches for.
    #[inline(always)]
    fn restore_released(&self, from: Undo) {
        if self.released_in != epoch() {
            runtime_gone();
        }
        if from == Undo::InScope || attached_thread_state().is_null() {
            // SAFETY: the thread is detached (the frame's scope, or checked); `self.tstate` is
            // what `PyEval_SaveThread` returned in this runtime (the epoch, checked above),
            // alive and this thread's by the scope rule.
            unsafe { ffi::restore_thread(self.tstate) };
        }
    }

    /// Re-attaches what the frame suspended, after its own change was undone.
    #[cold]
    #[inline(never)]
    fn restore_suspended(self) {
        #[cfg(Py_3_12)]
        if self.suspended == crate::context::frame::BIND_MAIN_AGAIN {
            bind_main_again();
            return;
        }
        if attached_thread_state().is_null() {
            // SAFETY: the frame's own change was undone and the thread is detached
            // (checked); `suspended` came from the `PyEval_SaveThread` made before the frame,
            // alive and this thread's by the scope rule.
            unsafe { ffi::restore_thread(self.suspended) };
        }
    }

    /// Undoes a `Restored` or `Kept` frame: detaches its thread state if it is the current
    /// one (and the same object).
    #[inline(always)]
    fn detach(&self) {
        if self.owner == Owner::Crate {
            detach_owned(self.tstate);
        } else {
            detach_foreign(self.tstate, self.foreign_id);
        }
    }
}

/// [`Frame::detach`] for a thread state the crate owns.
#[inline(always)]
fn detach_owned(tstate: *mut PyThreadState) {
    // SAFETY: a thread state a frame attached on this thread is this thread's to detach; the
    // frame is being undone, so no newer frame holds a change (the stack invariant). One the
    // crate owns is this thread's, also before 3.12.
    unsafe { ffi::detach_if_current(tstate, |_| true) };
}

/// [`Frame::detach`] for a foreign thread state, out of line: whether it is still the same
/// object is asked too (`same_foreign`).
#[inline(never)]
fn detach_foreign(tstate: *mut PyThreadState, id: u64) {
    // SAFETY: as in `Frame::detach`; `same_foreign` confirms the thread state is this
    // thread's and the one the frame attached.
    unsafe { ffi::detach_if_current(tstate, |current| same_foreign(current, id)) };
}

/// From 3.12 CPython binds `PyGILState` to the thread state attached last, so a region of
/// another interpreter leaves `PyGILState_Ensure` (and `pyo3`'s `Python::attach`) attaching
/// that interpreter. On a detached thread, this attaches and detaches the thread's own
/// main-interpreter thread state (the one a live release frame detached, else the one kept
/// for it), so that the binding names it again. Nothing happens once shutdown has begun.
#[cfg(Py_3_12)]
#[cold]
#[inline(never)]
fn bind_main_again() {
    if !ffi::current_thread_state().is_null() {
        return; // attached: the binding names what its owner attached
    }
    let main = native_thread::released_main_thread_state().map_or_else(
        crate::context::thread::kept_thread_state,
        |(released, _)| released,
    );
    if main.is_null() || ffi::gilstate_thread_state() == main {
        return;
    }
    let Ok(counted) = native_thread::admit_guard(epoch()) else {
        return;
    };
    // SAFETY: the thread is detached (checked); `main` is a live, detached main-interpreter
    // thread state of this thread (a live release frame's, by the scope rule, or the kept
    // one of the current runtime), and shutdown has not begun (admitted). Detached again
    // at once.
    unsafe {
        ffi::restore_thread(main);
        ffi::save_thread();
    }
    if counted {
        native_thread::dismiss_guard();
    }
}

/// Where a thread returns to when the runtime it detached from was finalized meanwhile (a
/// shutdown that timed out waiting for it, then a new runtime): the code that detached
/// expects to continue attached to a thread state that no longer exists, with objects that
/// no longer exist. It cannot continue; like CPython does with threads that outlive
/// finalization, the thread is parked for good.
#[cold]
pub(crate) fn runtime_gone() -> ! {
    eprintln!(
        "gilguard: this thread released the GIL of a Python runtime that was finalized \
         before it re-attached; it cannot continue and is parked for good"
    );
    loop {
        std::thread::park();
    }
}
