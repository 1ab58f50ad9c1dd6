//! The per-thread frame stack: the reason guards may be dropped in any order.
//!
//! Every guard pushes one *frame* that records how it changed this thread's attachment and
//! therefore how to undo it. CPython requires those changes to be undone in reverse order
//! (a `PyEval_RestoreThread` must pair with the latest `PyEval_SaveThread`, a
//! `PyGILState_Release` with the latest `PyGILState_Ensure`). Rust drops values in whatever
//! order the program chooses, so a guard only ever *finishes* its frame; frames are undone
//! from the top, when nothing above them is live any more. The invariant is:
//!
//! > the top frame is live (or being undone), and the thread is in the state it asked for.
//!
//! The stack lives in a `const`-initialized thread-local without a destructor, so reading it
//! costs a few instructions, never allocates while it is shallower than [`INLINE`], and still
//! works in the `Drop` of a guard that outlives the other thread-locals of a dying thread.

use core::cell::{Cell, RefCell};
use core::mem::ManuallyDrop;
use core::ptr;
use pyo3_ffi::{PyGILState_STATE, PyThreadState};

/// Frames kept inline before spilling to the heap. Real programs nest a handful of guards;
/// this covers them with room to spare.
const INLINE: usize = 16;

/// "No frame": the end of a [`Frame::below_in_guard`] chain.
pub(crate) const NO_FRAME: u32 = u32::MAX;

/// How a frame entered its state, which decides how it is undone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    /// The thread was already attached to `tstate`; no C call was made and none undoes it.
    Nested,
    /// `PyGILState_Ensure` attached `tstate`, a new thread state, on a detached thread (so
    /// it returned `PyGILState_UNLOCKED`); undone by `PyGILState_Release`, which deletes it.
    Ensured,
    /// `PyEval_RestoreThread(tstate)` attached a thread state that outlives the frame;
    /// undone by `PyEval_SaveThread`.
    Restored,
    /// Like `Restored`, for the thread state kept for a thread Python did not create; the
    /// guard is counted for the shutdown gate while the frame lives.
    Kept,
    /// `tstate` is attached for the last time: undone by `PyThreadState_Clear` (while the
    /// frame is still on the stack, as it may run Python code) and
    /// `PyThreadState_DeleteCurrent`.
    Deleting,
    /// `PyEval_SaveThread` detached `tstate`; undone by `PyEval_RestoreThread(tstate)`.
    Released,
    /// In the child of a fork: the frame's own thread state is gone with the thread that
    /// owned it, so its change is not undone; `suspended`, if it survived, is re-attached
    /// ([`forget_thread_states_except`]).
    Forgotten,
}

impl Entry {
    /// Whether a frame of this entry can have suspended another thread state
    /// ([`Frame::suspended`]). A nested frame changes nothing, and a released one leaves
    /// the thread detached: neither ever does.
    const fn may_suspend(self) -> bool {
        !matches!(self, Entry::Nested | Entry::Released)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Life {
    /// Its guard is alive.
    Live,
    /// Its guard is gone; undone when it reaches the top.
    Finished,
    /// At the top and being undone, in a step that may run Python code (which may push and
    /// finish frames of its own above this one).
    Undoing,
}

/// One guard's change to this thread's attachment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Frame {
    pub(crate) entry: Entry,
    /// The thread state attached by this frame, or detached by it for [`Entry::Released`].
    pub(crate) tstate: *mut PyThreadState,
    /// Whether `tstate` belongs to the main interpreter. Not recorded for
    /// [`Entry::Released`] (always `false` there): the release path stays free of extra C
    /// calls, and whoever needs to know asks CPython.
    pub(crate) main: bool,
    /// A thread state of another interpreter that was detached to make room for this frame
    /// and is re-attached after it is undone; null when there was none.
    pub(crate) suspended: *mut PyThreadState,
    /// The previous frame pushed by the same [`GilGuard`](crate::GilGuard), or [`NO_FRAME`].
    pub(crate) below_in_guard: u32,
    life: Life,
    /// For [`Entry::Released`]: the [runtime epoch](crate::runtime::epoch) `tstate` belongs
    /// to. Another thread may finalize the runtime while this one is detached, and the
    /// state must then never be touched again.
    epoch: u64,
}

impl Frame {
    const UNUSED: Frame = Frame::new(Entry::Nested, ptr::null_mut(), false);

    pub(crate) const fn new(entry: Entry, tstate: *mut PyThreadState, main: bool) -> Frame {
        Frame {
            entry,
            tstate,
            main,
            suspended: ptr::null_mut(),
            below_in_guard: NO_FRAME,
            life: Life::Live,
            epoch: 0,
        }
    }

    /// The [`Entry::Released`] frame of `tstate`, just detached in the current runtime.
    #[inline]
    pub(crate) fn released(tstate: *mut PyThreadState, below_in_guard: u32) -> Frame {
        Frame {
            below_in_guard,
            epoch: crate::runtime::epoch(),
            ..Frame::new(Entry::Released, tstate, false)
        }
    }

    /// The thread state this frame leaves attached, or null if it leaves the thread detached.
    pub(crate) fn attached(&self) -> *mut PyThreadState {
        match self.entry {
            Entry::Released => ptr::null_mut(),
            _ => self.tstate,
        }
    }

    /// The thread state that was attached before this frame, or null if the thread was
    /// detached (then any state is acceptable to whoever was running before).
    fn attached_before(&self) -> *mut PyThreadState {
        match self.entry {
            Entry::Nested | Entry::Released => self.tstate,
            _ => self.suspended,
        }
    }

    /// The part of undoing that may run Python code, done while the frame is still on the
    /// stack so that code sees the thread's true state.
    fn undo_in_place(&self) {
        if self.entry == Entry::Deleting {
            // SAFETY: top frame, so `self.tstate` is attached; clearing needs exactly that.
            unsafe { pyo3_ffi::PyThreadState_Clear(self.tstate) };
        }
    }

    /// Returns the thread to the state it was in before this frame.
    #[inline]
    fn undo(self) {
        match self.entry {
            Entry::Nested | Entry::Forgotten => {}
            // SAFETY: this frame was the top of the stack, so the thread is still in the
            // state `PyGILState_Ensure` left it in: `tstate`, which that call created, bound
            // to the thread with a counter of 1, and attached, returning `UNLOCKED`. Releasing
            // clears and deletes it.
            Entry::Ensured => unsafe {
                pyo3_ffi::PyGILState_Release(PyGILState_STATE::PyGILState_UNLOCKED)
            },
            // SAFETY: top frame, so `self.tstate` is attached: pairs with the
            // `PyEval_RestoreThread(self.tstate)` that created the frame.
            Entry::Restored => unsafe {
                pyo3_ffi::PyEval_SaveThread();
            },
            Entry::Kept => {
                // SAFETY: as for `Restored`.
                unsafe { pyo3_ffi::PyEval_SaveThread() };
                crate::native_thread::dismiss_guard();
            }
            // SAFETY: top frame, so `self.tstate` is attached, and `undo_in_place` cleared
            // it: what `PyThreadState_DeleteCurrent` requires. It also detaches the thread.
            Entry::Deleting => unsafe { pyo3_ffi::PyThreadState_DeleteCurrent() },
            Entry::Released => {
                if self.epoch != crate::runtime::epoch() {
                    runtime_gone();
                }
                // SAFETY: top frame, so the thread is still detached; `self.tstate` is what
                // `PyEval_SaveThread` returned, and its runtime is the current one (checked
                // above), so nothing has deleted it: a thread's states are only deleted by
                // itself or by finalization.
                unsafe { pyo3_ffi::PyEval_RestoreThread(self.tstate) };
            }
        }
        if !self.suspended.is_null() {
            // SAFETY: the frame's own change was undone just above, so the thread is detached
            // again; `suspended` came from the `PyEval_SaveThread` made before the frame.
            unsafe { pyo3_ffi::PyEval_RestoreThread(self.suspended) };
        }
    }
}

/// Where a thread returns to when the runtime it detached from was finalized meanwhile (a
/// shutdown that timed out waiting for it, then a new runtime): the code that detached
/// expects to continue attached to a thread state that no longer exists, with objects that
/// no longer exist. It cannot continue; like CPython does with threads that outlive
/// finalization, the thread is parked for good.
#[cold]
fn runtime_gone() -> ! {
    eprintln!(
        "gilguard: this thread released the GIL of a Python runtime that was finalized \
         before it re-attached; it cannot continue and is parked for good"
    );
    loop {
        std::thread::park();
    }
}

struct FrameStack {
    len: Cell<u32>,
    /// How many frames are [`Life::Finished`]: while none is, a finishing top frame can be
    /// popped without looking at the frame below it.
    finished: Cell<u32>,
    inline: [Cell<Frame>; INLINE],
}

thread_local! {
    static FRAMES: FrameStack = const {
        FrameStack {
            len: Cell::new(0),
            finished: Cell::new(0),
            inline: [const { Cell::new(Frame::UNUSED) }; INLINE],
        }
    };
    /// Frames above [`INLINE`]; only touched by unusually deep nesting. `ManuallyDrop`, so
    /// that it has no destructor and outlives the other thread-locals like [`FRAMES`];
    /// [`unwind`] frees its buffer when it empties.
    static SPILLED: RefCell<ManuallyDrop<Vec<Frame>>> =
        const { RefCell::new(ManuallyDrop::new(Vec::new())) };
}

impl FrameStack {
    fn get(&self, index: u32) -> Option<Frame> {
        match self.inline.get(index as usize) {
            Some(cell) => Some(cell.get()),
            None => SPILLED
                .try_with(|spilled| spilled.borrow().get(index as usize - INLINE).copied())
                .ok()
                .flatten(),
        }
    }

    fn set(&self, index: u32, frame: Frame) {
        match self.inline.get(index as usize) {
            Some(cell) => cell.set(frame),
            None => {
                let _ = SPILLED.try_with(|spilled| {
                    if let Some(slot) = spilled.borrow_mut().get_mut(index as usize - INLINE) {
                        *slot = frame;
                    }
                });
            }
        }
    }

    fn top(&self) -> Option<Frame> {
        self.get(self.len.get().checked_sub(1)?)
    }

    /// The stack's length and its top frame, if the top frame and the next slot are
    /// inline: the precondition of the fast paths, which then push with [`push_inline`].
    ///
    /// [`push_inline`]: FrameStack::push_inline
    #[inline(always)]
    fn inline_top(&self) -> Option<(u32, Frame)> {
        let len = self.len.get();
        if len == 0 || len as usize >= INLINE {
            return None;
        }
        Some((len, self.inline[len as usize - 1].get()))
    }

    /// Pushes `frame` at `len`, the length [`inline_top`](FrameStack::inline_top) returned.
    #[inline(always)]
    fn push_inline(&self, len: u32, frame: Frame) {
        self.inline[len as usize].set(frame);
        self.len.set(len + 1);
    }
}

/// The top frame, which by the stack's invariant describes the thread's state as this
/// crate left it.
#[inline]
pub(crate) fn top() -> Option<Frame> {
    FRAMES.with(FrameStack::top)
}

/// The nested fast path: if the top frame attached a thread state that `accept` approves
/// of and that is `current`, the one CPython considers current (code outside this crate may
/// have detached the thread meanwhile), pushes a [`Entry::Nested`] frame on it and returns
/// its index. One thread-local access; `None` sends the caller to the slow path.
///
/// The caller asks CPython for `current` before the stack is read, so that nothing read
/// from the stack has to be kept across that call (measured: docs/performance.md), and
/// passes it on to its detached path when this one declines.
#[inline]
pub(crate) fn push_nested(
    current: *mut PyThreadState,
    accept: impl FnOnce(&Frame) -> bool,
    below_in_guard: u32,
) -> Option<u32> {
    FRAMES.with(|stack| {
        let (len, top) = stack.inline_top()?;
        let tstate = top.attached();
        if tstate.is_null() || !accept(&top) || current != tstate {
            return None;
        }
        let frame = Frame {
            below_in_guard,
            ..Frame::new(Entry::Nested, tstate, top.main)
        };
        stack.push_inline(len, frame);
        Some(len)
    })
}

/// The release fast path: if the top frame attached a thread state that CPython confirms
/// is current, detaches it ([`detach_if_current`](crate::ffi::detach_if_current)) and
/// pushes the [`Entry::Released`] frame. `None` sends the caller to the slow path, with
/// nothing changed.
#[inline]
pub(crate) fn push_released(below_in_guard: u32) -> Option<u32> {
    FRAMES.with(|stack| {
        let (len, top) = stack.inline_top()?;
        let tstate = top.attached();
        // SAFETY: a thread state a frame of this thread attached is this thread's to
        // detach; the frame pushed below pairs it with `PyEval_RestoreThread(tstate)`. No
        // Python code runs, so nothing touches the stack meanwhile.
        if tstate.is_null() || !unsafe { crate::ffi::detach_if_current(tstate) } {
            return None;
        }
        stack.push_inline(len, Frame::released(tstate, below_in_guard));
        Some(len)
    })
}

/// Records a frame whose change has already been made. Returns its index, which stays valid
/// until the frame is finished: live frames are never popped, and neither is anything below.
///
/// # Panics
/// Only if the frame must spill to the heap while this thread's thread-locals are being
/// destroyed. The change is undone before the panic propagates, so the thread is never left
/// in a state that no guard will undo.
#[inline]
pub(crate) fn push(frame: Frame) -> u32 {
    let inline = FRAMES.with(|stack| {
        let index = stack.len.get();
        let slot = stack.inline.get(index as usize)?;
        slot.set(frame);
        stack.len.set(index + 1);
        Some(index)
    });
    match inline {
        Some(index) => index,
        None => push_spilled(frame),
    }
}

#[cold]
#[inline(never)]
fn push_spilled(frame: Frame) -> u32 {
    let undo_on_unwind = scopeguard::guard(frame, |frame| {
        frame.undo_in_place();
        frame.undo();
    });
    let index = FRAMES.with(|stack| {
        let index = stack.len.get();
        SPILLED.with(|spilled| spilled.borrow_mut().push(frame));
        stack.len.set(index + 1);
        index
    });
    scopeguard::ScopeGuard::into_inner(undo_on_unwind);
    index
}

/// A copy of the frame at `index`, if it exists.
pub(crate) fn frame(index: u32) -> Option<Frame> {
    FRAMES.with(|stack| {
        if index < stack.len.get() {
            stack.get(index)
        } else {
            None
        }
    })
}

/// Marks the frame at `index` finished, then undoes every finished frame at the top.
/// Returns the frame's [`Frame::below_in_guard`] link.
///
/// A frame with live frames above it stays in place and is undone when the last of those
/// is finished, so CPython only ever sees the last change undone first.
#[inline]
pub(crate) fn finish(index: u32) -> u32 {
    finish_likely(index, Entry::Nested)
}

/// [`finish`], with a fast path for a frame of entry `likely` (a constant at every call
/// site, so that only its arm of [`Frame::undo`] is inlined).
#[inline(always)]
pub(crate) fn finish_likely(index: u32, likely: Entry) -> u32 {
    finish_fast_or(index, likely, || finish_other(index, false))
}

/// [`finish`] for a main-interpreter guard, whose frame is most often nested (finished
/// inline, as by [`finish_likely`]) or else the kept thread state of a detached thread
/// (finished by a fast path out of line, keeping the nested one small).
#[inline(always)]
pub(crate) fn finish_main(index: u32) -> u32 {
    finish_fast_or(index, Entry::Nested, || finish_kept_or_other(index))
}

#[inline(never)]
fn finish_kept_or_other(index: u32) -> u32 {
    finish_likely(index, Entry::Kept)
}

/// Pops and undoes the frame at `index` by the fast path of [`pop_simple`] for entry
/// `likely`, else returns `otherwise()`.
#[inline(always)]
fn finish_fast_or(index: u32, likely: Entry, otherwise: impl FnOnce() -> u32) -> u32 {
    match pop_simple(index, likely) {
        Some(frame) => {
            frame.undo();
            frame.below_in_guard
        }
        None => otherwise(),
    }
}

/// The most common finish, small enough to inline everywhere: the top frame, inline, of
/// entry `entry` (never [`Entry::Deleting`], whose undo must see the frame), suspending
/// nothing, with no finished frame waiting to be undone. Pops it and returns it, to be
/// undone; `None`, having changed nothing, otherwise.
#[inline(always)]
fn pop_simple(index: u32, entry: Entry) -> Option<Frame> {
    FRAMES.with(|stack| {
        let frame = stack.inline.get(index as usize)?.get();
        if stack.len.get() != index + 1
            || frame.entry != entry
            || entry == Entry::Deleting
            || (entry.may_suspend() && !frame.suspended.is_null())
            || stack.finished.get() != 0
        {
            return None;
        }
        stack.len.set(index);
        // Rebuilt from what was checked, so the compiler knows it too and drops the
        // now-redundant tests from the inlined `undo`.
        Some(Frame {
            entry,
            suspended: ptr::null_mut(),
            life: Life::Live,
            ..frame
        })
    })
}

/// [`finish`] for every other frame: pops and undoes it at once if it is the top one,
/// inline, and not [`Entry::Deleting`] (whose undo runs Python code that must see the
/// frame), then whatever finished frames that uncovered. `scope` as for
/// [`finish_below_top`].
#[inline(never)]
fn finish_other(index: u32, scope: bool) -> u32 {
    let popped = FRAMES.with(|stack| {
        let frame = stack.inline.get(index as usize)?.get();
        if stack.len.get() != index + 1 || frame.entry == Entry::Deleting {
            return None;
        }
        stack.len.set(index);
        Some((frame, stack.finished.get() != 0))
    });
    let Some((frame, any_finished)) = popped else {
        return finish_below_top(index, scope);
    };
    // Undone after it was popped, like in `unwind`.
    frame.undo();
    if any_finished {
        unwind();
    }
    frame.below_in_guard
}

/// [`finish`] for a frame that cannot be undone at once: one with live frames above it, a
/// spilled one, or one whose undo runs Python code. For closure forms (`scope`), the frames
/// above are checked against guards leaked inside the closure first.
#[cold]
#[inline(never)]
fn finish_below_top(index: u32, scope: bool) -> u32 {
    if scope {
        check_scope(index);
    }
    let below_in_guard = FRAMES.with(|stack| {
        let mut frame = stack.get(index)?;
        frame.life = Life::Finished;
        stack.set(index, frame);
        stack.finished.set(stack.finished.get() + 1);
        Some(frame.below_in_guard)
    });
    unwind();
    below_in_guard.unwrap_or(NO_FRAME)
}

/// The frame of a closure form (`with_gil`, `without_gil`, ...), finished when the closure
/// returns or unwinds, with the check of [`check_scope`] and the fast path of
/// [`finish_likely`] for a frame of entry `likely`.
pub(crate) struct Scope {
    pub(crate) index: u32,
    pub(crate) likely: Entry,
}

impl Drop for Scope {
    #[inline(always)]
    fn drop(&mut self) {
        finish_fast_or(self.index, self.likely, || finish_other(self.index, true));
    }
}

/// For the frame of a closure form whose closure has returned or is unwinding, and that is
/// not on top of the stack.
///
/// Frames above it can only come from guards created inside the closure that outlived it:
/// leaked with `mem::forget`, or stashed in a thread-local. If they leave the thread in the
/// state the closure's caller was in, nothing is lost: this frame is undone when they are.
/// Otherwise the caller would continue without the GIL, or in another interpreter, which
/// must not happen; the process is aborted with an explanation instead.
#[cold]
fn check_scope(index: u32) {
    let conflict = FRAMES.with(|stack| {
        let ours = stack.get(index)?;
        let before = ours.attached_before();
        let newest_live = (index + 1..stack.len.get())
            .rev()
            .filter_map(|above| stack.get(above))
            .find(|frame| frame.life != Life::Finished)?;
        (!before.is_null() && newest_live.attached() != before).then_some(())
    });
    if conflict.is_some() {
        leaked_guard_abort("a with_gil/without_gil/run closure");
    }
}

/// Ends the process when a leaked guard would leave code running in a thread state other
/// than the one it attached: continuing would run Python code without its GIL or in the
/// wrong interpreter.
#[cold]
fn leaked_guard_abort(place: &str) -> ! {
    eprintln!(
        "gilguard: a guard created inside {place} outlived it (leaked or stored in a \
         thread-local) and changed the thread state the caller relies on; aborting, since \
         continuing would run Python code without its GIL or in the wrong interpreter"
    );
    std::process::abort();
}

/// Undoes finished frames from the top until a live one (or the bottom) is reached.
fn unwind() {
    loop {
        let Some((index, frame)) = FRAMES.with(|stack| {
            let index = stack.len.get().checked_sub(1)?;
            let frame = stack.get(index)?;
            (frame.life == Life::Finished).then_some((index, frame))
        }) else {
            return;
        };
        FRAMES.with(|stack| {
            stack.set(
                index,
                Frame {
                    life: Life::Undoing,
                    ..frame
                },
            );
            stack.finished.set(stack.finished.get() - 1);
        });
        frame.undo_in_place();
        // Code run by `undo_in_place` may have left live frames above this one (a leaked
        // guard): undoing this frame under them would break their state, so it stays. That
        // is harmless if the caller expects nothing attached (the GIL stays held, as with
        // any leaked guard), but not if it expects another thread state back.
        let popped = FRAMES.with(|stack| {
            if stack.len.get() != index + 1 {
                return false;
            }
            if index as usize >= INLINE {
                let _ = SPILLED.try_with(|spilled| {
                    let mut spilled = spilled.borrow_mut();
                    spilled.pop();
                    if spilled.is_empty() {
                        spilled.shrink_to_fit(); // frees the buffer
                    }
                });
            }
            stack.len.set(index);
            true
        });
        if !popped {
            if !frame.attached_before().is_null() {
                leaked_guard_abort("a finalizer run while deleting a thread state");
            }
            return;
        }
        frame.undo();
    }
}

/// Whether a frame on this thread's stack attached, detached or suspended `tstate`. Such a
/// thread state belongs to this thread, and must not be deleted while the frame exists.
pub(crate) fn uses(tstate: *mut PyThreadState) -> bool {
    FRAMES.with(|stack| {
        (0..stack.len.get())
            .filter_map(|index| stack.get(index))
            .any(|frame| frame.tstate == tstate || frame.suspended == tstate)
    })
}

/// In the child of a fork, where `survivor` is the only thread state left: turns every
/// frame that names another one into an [`Entry::Forgotten`] one, so that undoing it does
/// nothing to the state it would re-attach or delete, which is gone. Returns how many live
/// [`Entry::Kept`] frames remain.
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
            }
            if frame.suspended != survivor {
                frame.suspended = ptr::null_mut();
            }
            if frame.entry == Entry::Kept && frame.life == Life::Live {
                kept += 1;
            }
            stack.set(index, frame);
        }
        kept
    })
}

/// The main-interpreter thread state that the newest `Released` frame detached, if any:
/// re-attaching it keeps the thread's Python identity (its `threading` thread, its
/// thread-locals) instead of inventing another one. None once the runtime is finalizing,
/// which may free the thread states the frames name.
#[inline]
pub(crate) fn released_main_thread_state() -> *mut PyThreadState {
    if FRAMES.with(|stack| stack.len.get()) == 0 {
        return ptr::null_mut();
    }
    released_main_thread_state_below()
}

#[inline(never)]
fn released_main_thread_state_below() -> *mut PyThreadState {
    if crate::runtime::check_not_finalizing().is_err() {
        return ptr::null_mut();
    }
    FRAMES.with(|stack| {
        (0..stack.len.get())
            .rev()
            .filter_map(|index| stack.get(index))
            .filter(|frame| {
                frame.entry == Entry::Released && frame.epoch == crate::runtime::epoch()
            })
            .map(|frame| frame.tstate)
            // SAFETY: a thread state detached by a frame still on the stack is live until
            // finalization (checked above) or a new runtime (the epoch, checked above).
            .find(|&tstate| unsafe { crate::ffi::is_main_interpreter_state(tstate) })
            .unwrap_or(ptr::null_mut())
    })
}
