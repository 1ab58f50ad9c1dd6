//! One frame: how a guard changed this thread's attachment, and how to undo it. The only
//! place where the frame stack calls CPython.

#![allow(unsafe_code, reason = "undoing a frame calls CPython")]

use core::ptr;

use crate::raw::ffi::PyThreadState;

use crate::raw::ffi;

/// "No frame": the end of a [`Frame::below_in_guard`] chain.
pub(crate) const NO_FRAME: u32 = u32::MAX;

/// In [`Frame::suspended`] (3.12+), in place of a thread state (no thread state has this
/// address): attaching the frame's thread state, of another interpreter than the main one,
/// moved `PyGILState`'s binding to it, so undoing the frame binds the thread's
/// main-interpreter thread state again ([`bind_main_again`]), as a foreign owner's
/// `PyGILState_Ensure` (and so `pyo3`) expects. Undone out of the fast paths, which leave
/// frames that suspended something to the slow one.
#[cfg(Py_3_12)]
pub(crate) const BIND_MAIN_AGAIN: *mut PyThreadState = ptr::dangling_mut();

/// How a frame entered its state, which decides how it is undone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    /// `tstate` is attached for the last time: undone by `PyThreadState_Clear` (while the
    /// frame is still on the stack, as it may run Python code) and
    /// `PyThreadState_DeleteCurrent`.
    Deleting,
    /// `PyEval_SaveThread` detached `tstate`; undone by `PyEval_RestoreThread(tstate)`.
    Released,
    /// `pyo3`'s `Python::detach`, called by this crate, detached `tstate` (so that `pyo3`
    /// sees the thread detached too); `pyo3` re-attaches it when the closure returns, so
    /// undoing it makes no C call.
    #[cfg(feature = "pyo3")]
    ReleasedByPyo3,
    /// A frame that no longer holds a change: its guard outlived the closure form it was
    /// made in (which ended it), or a fork took its thread state away. Undoing it does
    /// nothing; it stays on the stack until its guard is gone, so that the indices of the
    /// guards above and below stay valid.
    Forgotten,
    /// This crate is running Python code itself (installing a hook, creating a
    /// sub-interpreter), during which CPython may attach a thread state this crate cannot
    /// name beforehand (a new interpreter's first one). Changes nothing and undoes nothing;
    /// while it is the newest frame, it vouches that the current thread state is this
    /// thread's if it was created on this thread (see `queries::vouches_for`).
    CallingPython,
}

impl Entry {
    /// Whether a frame of this entry can have suspended another thread state
    /// ([`Frame::suspended`]). A nested frame changes nothing, and a released one leaves
    /// the thread detached: neither ever does.
    pub(crate) const fn may_suspend(self) -> bool {
        !matches!(self, Entry::Nested | Entry::Released | Entry::CallingPython)
    }

    /// Whether a frame of this entry attached a thread state this crate keeps, and so
    /// counts a guard for the shutdown gate while it lives.
    pub(crate) const fn is_kept(self) -> bool {
        matches!(self, Entry::Kept)
    }

    /// Whether undoing a frame of this entry re-attaches a thread state that someone else
    /// detached or attached: the undos that only the frame's scope can vouch for.
    const fn releases(self) -> bool {
        #[cfg(feature = "pyo3")]
        if matches!(self, Entry::ReleasedByPyo3) {
            return true;
        }
        matches!(self, Entry::Released)
    }
}

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

/// One guard's change to this thread's attachment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Frame {
    pub(crate) entry: Entry,
    /// Whether `tstate` belongs to the main interpreter. Not recorded for
    /// [`Entry::Released`] (always `false` there): the release path stays free of extra C
    /// calls, and whoever needs to know asks CPython.
    pub(crate) main: bool,
    /// Whether `tstate` is a thread state this crate keeps alive for as long as a frame names
    /// it (kept for this thread, a handle's, or one it created): then the stack alone proves
    /// the pointer is live. Any other thread state belongs to someone else (CPython's
    /// `threading`, a C library's `PyGILState_Ensure`, `pyo3`), who may end it while the
    /// frame still names it.
    pub(crate) owned: bool,
    pub(crate) life: Life,
    /// The previous frame pushed by the same [`GilGuard`](crate::GilGuard), or [`NO_FRAME`].
    pub(crate) below_in_guard: u32,
    /// The thread state attached by this frame, or detached by it for [`Entry::Released`].
    pub(crate) tstate: *mut PyThreadState,
    /// A thread state that was detached to make room for this frame and is re-attached
    /// after it is undone; null when there was none. Only closure forms and `unsafe`
    /// constructors suspend, so the code that attached it is still waiting below. On 3.12+,
    /// [`BIND_MAIN_AGAIN`] for a frame that attached another interpreter than the main one on
    /// a detached thread.
    pub(crate) suspended: *mut PyThreadState,
    /// For [`Entry::Released`]: the [runtime epoch](crate::raw::epoch) `tstate` belongs
    /// to (another thread may finalize the runtime while this one is detached, and the state
    /// must then never be touched again). For a `tstate` that is not `owned`: its
    /// `PyThreadState_GetID`, read while it was current, which tells it from a later thread
    /// state at the same address once its owner has deleted it.
    pub(crate) stamp: u64,
}

impl Frame {
    pub(crate) const UNUSED: Frame = Frame::new(Entry::Nested, ptr::null_mut(), false, true);

    /// A live frame of `entry` on `tstate`. A thread state that is not `owned` must be
    /// [stamped](Frame::stamped) before the frame is trusted to name it.
    pub(crate) const fn new(
        entry: Entry,
        tstate: *mut PyThreadState,
        main: bool,
        owned: bool,
    ) -> Frame {
        Frame {
            entry,
            main,
            owned,
            life: Life::Live,
            below_in_guard: NO_FRAME,
            tstate,
            suspended: ptr::null_mut(),
            stamp: 0,
        }
    }

    /// This frame, with the identity of its thread state recorded if it is not owned.
    ///
    /// # Safety
    /// `tstate` is live (it is current on this thread, typically).
    pub(crate) unsafe fn stamped(self) -> Frame {
        if self.owned || self.tstate.is_null() {
            return self;
        }
        Frame {
            // SAFETY: live (caller).
            stamp: unsafe { ffi::thread_state_id(self.tstate) },
            ..self
        }
    }

    /// The [`Entry::Released`] frame of `tstate`, just detached in the current runtime.
    #[inline]
    pub(crate) fn released(tstate: *mut PyThreadState, owned: bool, below_in_guard: u32) -> Frame {
        Frame {
            below_in_guard,
            stamp: crate::raw::epoch::epoch(),
            ..Frame::new(Entry::Released, tstate, false, owned)
        }
    }

    /// A [`Entry::Nested`] frame on this one's thread state, for the guard whose previous
    /// frame is `below_in_guard`.
    #[inline(always)]
    pub(crate) fn nested(&self, below_in_guard: u32) -> Frame {
        Frame {
            entry: Entry::Nested,
            main: self.main,
            owned: self.owned,
            life: Life::Live,
            below_in_guard,
            tstate: self.tstate,
            suspended: ptr::null_mut(),
            stamp: self.stamp,
        }
    }

    /// The thread state this frame leaves attached, or null if it leaves the thread detached
    /// or holds no change.
    #[inline]
    pub(crate) fn attached(&self) -> *mut PyThreadState {
        match self.entry {
            Entry::Released | Entry::Forgotten | Entry::CallingPython => ptr::null_mut(),
            #[cfg(feature = "pyo3")]
            Entry::ReleasedByPyo3 => ptr::null_mut(),
            _ => self.tstate,
        }
    }

    /// Whether the thread state this frame attached is `current`, the one CPython reports
    /// as current on this thread, and is still the same object: either the crate owns it,
    /// or its identity matches the stamp (its owner may have deleted it, and a later thread
    /// state may have been given the same address).
    #[inline(always)]
    pub(crate) fn is_current(&self, current: *mut PyThreadState) -> bool {
        let tstate = self.attached();
        !tstate.is_null() && current == tstate && (self.owned || same_foreign(current, self.stamp))
    }

    /// Whether this frame vouches that `tstate` exists and is this thread's: alive, the
    /// frame's scope (a closure form that is still running, or an `unsafe` guard whose
    /// contract keeps it within the code that attached the thread state) encloses the code
    /// that will use it. A [`Entry::Deleting`] frame also vouches while its thread state is
    /// being cleared, which runs Python code attached to it.
    #[inline]
    pub(crate) fn vouches_for(&self, tstate: *mut PyThreadState) -> bool {
        !tstate.is_null()
            && (self.life == Life::Live || self.entry == Entry::Deleting)
            && !matches!(self.entry, Entry::Forgotten | Entry::CallingPython)
            && (((self.owned || self.entry.releases()) && self.tstate == tstate)
                || self.suspended == tstate)
    }

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
    /// `suspended`) act on a thread state the frame's scope vouches for: `in_scope` says
    /// whether the guard is being dropped within that scope (its own drop, or the end of
    /// the closure form); a deferred undo also needs the thread detached.
    ///
    /// Always inlined, with the rare entries out of line: the fast paths rebuild the frame
    /// with its entry as a constant, and only that entry's arm is left (measured: a call
    /// and a jump table cost the nested guard about 10 ns, when 53438ad was written).
    #[inline(always)]
    pub(crate) fn undo(self, in_scope: bool) {
        match self.entry {
            Entry::Nested | Entry::Forgotten | Entry::CallingPython => {}
            Entry::Restored => self.detach(),
            Entry::Kept => {
                self.detach();
                crate::runtime::native_thread::dismiss_guard();
            }
            Entry::Released => {
                if self.stamp != crate::raw::epoch::epoch() {
                    runtime_gone();
                }
                if in_scope || crate::guards::attached::attached_thread_state().is_null() {
                    // SAFETY: the thread is detached (the frame's scope, or checked);
                    // `self.tstate` is what `PyEval_SaveThread` returned in this runtime (the
                    // epoch, checked above), alive and this thread's by the scope rule.
                    unsafe { ffi::restore_thread(self.tstate) };
                }
            }
            _ => self.undo_rare(),
        }
        if !self.suspended.is_null() {
            self.restore_suspended();
        }
    }

    /// [`undo`](Frame::undo) for the entries no fast path pops.
    #[inline(never)]
    fn undo_rare(self) {
        match self.entry {
            #[cfg(feature = "pyo3")]
            Entry::ReleasedByPyo3 => {
                if self.stamp != crate::raw::epoch::epoch() {
                    runtime_gone();
                }
            }
            Entry::Ensured => {
                let tstate = self.tstate;
                if self.is_current(ffi::current_thread_state())
                    && ffi::gilstate_thread_state() == tstate
                {
                    // SAFETY: `tstate`, which `PyGILState_Ensure` created and bound to this
                    // thread with a counter of 1 (returning `UNLOCKED`), is attached: releasing
                    // clears and deletes it.
                    unsafe { ffi::gilstate_release_unlocked() };
                }
            }
            Entry::Deleting => {
                if self.is_current(ffi::current_thread_state()) {
                    // SAFETY: `self.tstate` is attached (confirmed), and `undo_in_place`
                    // cleared it: what `PyThreadState_DeleteCurrent` requires. It also
                    // detaches the thread.
                    unsafe { ffi::delete_current() };
                }
                // Deleting a thread state `PyGILState` binds unbinds it.
                #[cfg(Py_3_12)]
                if self.suspended.is_null() {
                    bind_main_again();
                }
            }
            Entry::Nested
            | Entry::Forgotten
            | Entry::CallingPython
            | Entry::Restored
            | Entry::Kept
            | Entry::Released => unreachable!("undone by `undo`"),
        }
    }

    /// Re-attaches what the frame suspended, after its own change was undone.
    #[cold]
    #[inline(never)]
    fn restore_suspended(self) {
        #[cfg(Py_3_12)]
        if self.suspended == BIND_MAIN_AGAIN {
            bind_main_again();
            return;
        }
        if crate::guards::attached::attached_thread_state().is_null() {
            // SAFETY: the frame's own change was undone and the thread is detached
            // (checked); `suspended` came from the `PyEval_SaveThread` made before the frame,
            // alive and this thread's by the scope rule.
            unsafe { ffi::restore_thread(self.suspended) };
        }
    }

    /// Undoes a `Restored` or `Kept` frame: detaches its thread state if it is the current
    /// one (and the same object).
    #[inline]
    fn detach(&self) {
        let (owned, stamp) = (self.owned, self.stamp);
        // SAFETY: a thread state this frame attached on this thread is this thread's to
        // detach; the frame is being undone, so no newer frame holds a change (the stack
        // invariant) and nothing re-attaches it on its behalf. Before 3.12, one the crate
        // owns is this thread's, and `same_foreign` checks any other.
        unsafe {
            ffi::detach_if_current(self.tstate, |current| owned || same_foreign(current, stamp));
        }
    }
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
    use crate::runtime::native_thread;

    if !ffi::current_thread_state().is_null() {
        return; // attached: the binding names what its owner attached
    }
    let main = super::queries::released_main_thread_state()
        .map_or_else(native_thread::kept_thread_state, |(released, _)| released);
    if main.is_null() || ffi::gilstate_thread_state() == main {
        return;
    }
    let Ok(counted) = native_thread::admit_guard() else {
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

/// [`Frame::is_current`] for a thread state the crate does not own, once the pointers
/// match: whether `current` is the thread state whose id is `stamp`. Takes the two words,
/// not the frame, so that the fast paths that call it keep the frame in registers.
#[inline(never)]
fn same_foreign(current: *mut PyThreadState, stamp: u64) -> bool {
    // Before 3.12 `current` may be another thread's, which could be deleting it: read
    // nothing from it unless it is the one bound to this thread.
    // SAFETY: `current` is attached to this thread (checked first), so it is live.
    ffi::is_this_threads(current) && unsafe { ffi::thread_state_id(current) } == stamp
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
