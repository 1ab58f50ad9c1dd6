//! Undoing a frame: the only place where the frame stack calls CPython to put the thread
//! back, and only as far as CPython confirms the frame still describes it.

#![allow(unsafe_code, reason = "undoing a frame calls CPython")]

use crate::context::attached::attached_thread_state;
use crate::context::frame::{Entry, Frame, Owner, same_foreign};
use crate::raw::epoch::epoch;
use crate::raw::ffi::{self, PyThreadState};
use crate::runtime::native_thread;
#[cfg(feature = "stats")]
use crate::stats::record as stats;

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

/// Runs `detach`, which ends this thread's hold of a GIL (timed with the `stats` feature).
#[inline(always)]
fn ending_hold(detach: impl FnOnce()) {
    #[cfg(feature = "stats")]
    let at = stats::detaching();
    detach();
    #[cfg(feature = "stats")]
    stats::detached(at);
}

impl FastUndo for NestedFrame {
    const ENTRY: Entry = Entry::Nested;
    #[inline(always)]
    fn undo(_: &Frame) {}
}

impl FastUndo for RestoredFrame {
    const ENTRY: Entry = Entry::Restored;
    #[inline(always)]
    fn undo(frame: &Frame) {
        ending_hold(|| frame.detach());
    }
}

impl FastUndo for KeptFrame {
    const ENTRY: Entry = Entry::Kept;
    #[inline(always)]
    fn undo(frame: &Frame) {
        // A kept thread state is always the crate's (see `Entry::Kept`).
        ending_hold(|| detach_owned(frame.tstate));
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

    /// Returns the thread to its state before this frame, as far as CPython confirms the
    /// frame still describes it: detaching undos act only while CPython confirms the frame's
    /// thread state current; re-attaching ones on what the frame's scope vouches for.
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
                ending_hold(|| {
                    if self.is_current(ffi::current_thread_state())
                        && ffi::gilstate_thread_state() == self.tstate
                    {
                        // SAFETY: pairs with the `PyGILState_Ensure` that made `self.tstate`
                        // (returning `UNLOCKED`), confirmed attached and still bound.
                        unsafe { ffi::gilstate_release_unlocked() };
                    }
                });
            }
            Entry::Deleting => {
                ending_hold(|| {
                    if self.is_current(ffi::current_thread_state()) {
                        // SAFETY: `self.tstate` is attached (confirmed), and `undo_in_place`
                        // cleared it. Deleting it also detaches the thread.
                        unsafe { ffi::delete_current() };
                    }
                });
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
        #[cfg(feature = "stats")]
        let waiting = stats::before_restore();
        if from == Undo::InScope || attached_thread_state().is_null() {
            // SAFETY: detached (in scope, or checked); `self.tstate`, saved in this runtime
            // (checked above), is alive and this thread's by the scope rule.
            unsafe { ffi::restore_thread(self.tstate) };
            #[cfg(feature = "stats")]
            return stats::restored(waiting);
        }
        #[cfg(feature = "stats")]
        stats::not_attached(waiting);
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
        #[cfg(feature = "stats")]
        let waiting = stats::before_restore();
        if attached_thread_state().is_null() {
            // SAFETY: detached (checked); `suspended`, saved before the frame was pushed, is
            // alive and this thread's by the scope rule.
            unsafe { ffi::restore_thread(self.suspended) };
            #[cfg(feature = "stats")]
            return stats::restored(waiting);
        }
        #[cfg(feature = "stats")]
        stats::not_attached(waiting);
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
    // SAFETY: attached by the frame being undone, on this thread, with no newer change (the
    // stack invariant); owned by the crate, so this thread's also before 3.12.
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
    // SAFETY: detached (checked); `main` is this thread's, live and detached (the scope rule,
    // or kept in this runtime); shutdown has not begun (admitted). Detached again at once.
    unsafe {
        ffi::restore_thread(main);
        ffi::save_thread();
    }
    if counted {
        native_thread::dismiss_guard();
    }
}

/// Where a thread returns to when the runtime it detached from was finalized meanwhile (the
/// shutdown timed out waiting for it): the code that detached expects a thread state and
/// objects that no longer exist, so the thread is parked for good, as CPython parks threads
/// that outlive finalization.
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
