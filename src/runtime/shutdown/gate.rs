//! The shutdown gate's state: whether it is installed, open or closed for the current
//! runtime, the native threads' guard counts it waits for, and admitting and dismissing a
//! guard (see [the module](super) for why).

#![allow(
    unsafe_code,
    reason = "3.15: opens and closes PEP 788 interpreter guards"
)]

use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::context::guard_count::ThreadGuards;
use crate::raw::asymmetric_fence;
use crate::raw::epoch::{NO_EPOCH, epoch};
use crate::runtime::python_hook::PythonHook;

/// The `atexit` callback.
pub(super) static HOOK: PythonHook = PythonHook::new();
/// The runtime epoch whose shutdown has begun.
pub(super) static CLOSED: AtomicU64 = AtomicU64::new(NO_EPOCH);
/// The runtime epoch whose gate is installed and still open: [`closed`] answering
/// `Some(false)` for the current runtime, in one word. `NO_EPOCH` from the moment the gate
/// closes, and from the end of finalization even if the `atexit` callback never ran.
pub(super) static OPEN: AtomicU64 = AtomicU64::new(NO_EPOCH);
/// The guard counts of the native threads that ever attached (one record per thread,
/// reused after the thread exits).
pub(super) static THREADS: Mutex<Vec<&'static ThreadGuards>> = Mutex::new(Vec::new());
/// Records of exited threads, free for new ones.
static FREE: Mutex<Vec<&'static ThreadGuards>> = Mutex::new(Vec::new());

/// 3.15+: a view of the main interpreter, for the guards, and the runtime epoch it was made
/// in (a re-initialized runtime needs a new one).
#[cfg(Py_3_15)]
pub(super) static MAIN_VIEW: Mutex<(u64, usize)> = Mutex::new((NO_EPOCH, 0));

/// `Some(closed)` if the gate is installed for the current runtime, `None` if not (then
/// only CPython's own flag tells).
#[inline]
pub(crate) fn closed() -> Option<bool> {
    let epoch = epoch();
    if !HOOK.is_registered(epoch) {
        return None;
    }
    // Sequentially consistent, for `admit` (see there); as cheap as an acquire load on x86
    // and ARMv8.
    Some(CLOSED.load(Ordering::SeqCst) == epoch)
}

/// Whether `epoch` is the current runtime's and its gate is installed and open, in one load
/// for the fast paths (`false` tells nothing: the slow path asks again, and says why). Certain
/// only for a watched runtime (`guards::start::ensure_watched`, which every handle calls):
/// only then does [`runtime_finalized`] withdraw it if the `atexit` callback did not.
#[inline(always)]
pub(crate) fn is_open_for(epoch: u64) -> bool {
    OPEN.load(Ordering::SeqCst) == epoch
}

/// Called when the runtime has finished finalizing, before the epoch advances: the gate of
/// a runtime that is gone is not open, even if its `atexit` callback was removed and
/// never closed it.
pub(crate) fn runtime_finalized() {
    OPEN.store(NO_EPOCH, Ordering::SeqCst);
}

/// A record for the guards of the calling native thread, for [`admit`] and [`dismiss`].
pub(crate) fn register_thread() -> &'static ThreadGuards {
    let guards = FREE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .pop()
        .unwrap_or_else(|| Box::leak(Box::default()));
    THREADS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(guards);
    guards
}

/// Returns the record of an exiting thread.
pub(crate) fn unregister_thread(guards: &'static ThreadGuards) {
    guards.count.store(0, Ordering::Release);
    // 3.15+: the last guard counted on the exiting thread (the one that deleted its kept
    // thread state) is never dismissed; left open, its PEP 788 guard would keep the
    // interpreter from ever finalizing.
    #[cfg(Py_3_15)]
    close_interpreter_guard(guards);
    THREADS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .retain(|other| !core::ptr::eq(*other, guards));
    FREE.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(guards);
}

/// Counts a guard the thread is about to take, unless shutdown has begun (the gate is
/// closed, or, where it is not installed, CPython's finalizing flag is set). `epoch` is the
/// current one: while the gate is open for it, one load answers.
///
/// The increment is fenced from the read of the gate, and the closing of the gate from the
/// reads of the counts (`at_exit::on_exit`): either this read sees the gate closed, or
/// shutdown sees the increment and waits for the guard. The fence is
/// [asymmetric](crate::raw::asymmetric_fence) where the system allows, putting its cost on
/// shutdown; elsewhere both sides are sequentially consistent.
#[inline(always)]
pub(crate) fn admit(guards: &ThreadGuards, epoch: u64) -> Result<(), ()> {
    let closed = || !is_open_for(epoch) && closed().unwrap_or_else(crate::raw::ffi::is_finalizing);
    if admit_unless(guards, closed, true) {
        Ok(())
    } else {
        Err(())
    }
}

/// [`admit`] for an attach of a [`ThreadStateHandle`](crate::ThreadStateHandle), counted so
/// that the shutdown knows no thread is attaching to an interpreter it ends, but holding no
/// PEP 788 interpreter guard (3.15): opening one costs more than the attach, and handles
/// never had one.
pub(crate) fn admit_handle(guards: &ThreadGuards) -> Result<(), ()> {
    let closed = || closed().unwrap_or_else(crate::raw::ffi::is_finalizing);
    if admit_unless(guards, closed, false) {
        Ok(())
    } else {
        Err(())
    }
}

/// [`admit`] in one load: counts the guard if the gate is [open](is_open_for) for `epoch`.
#[inline(always)]
pub(crate) fn admit_if_open(guards: &ThreadGuards, epoch: u64) -> bool {
    admit_unless(guards, || !is_open_for(epoch), true)
}

/// [`admit_handle`] in one load, for a watched runtime: counts the attach if the gate is
/// [open](is_open_for) for `epoch`.
#[inline(always)]
pub(crate) fn admit_handle_if_open(guards: &ThreadGuards, epoch: u64) -> bool {
    admit_unless(guards, || !is_open_for(epoch), false)
}

/// Counts a guard, then reads the gate with `closed`; uncounts it and returns false if
/// closed. From 3.15, the first guard of a thread also opens a PEP 788 interpreter guard
/// if `interpreter_guard` (which its last one closes, see [`dismiss`]).
#[inline(always)]
fn admit_unless(
    guards: &ThreadGuards,
    closed: impl FnOnce() -> bool,
    interpreter_guard: bool,
) -> bool {
    #[cfg(Py_3_15)]
    if interpreter_guard
        && guards.count.load(Ordering::Relaxed) == 0
        && !open_interpreter_guard(guards)
    {
        return false;
    }
    #[cfg(not(Py_3_15))]
    let _ = interpreter_guard;
    if asymmetric_fence::is_enabled() {
        // Only this thread writes its count.
        let count = guards.count.load(Ordering::Relaxed);
        guards.count.store(count + 1, Ordering::Relaxed);
        asymmetric_fence::light();
    } else {
        guards.count.fetch_add(1, Ordering::SeqCst);
    }
    if closed() {
        dismiss(guards);
        return false;
    }
    true
}

/// Uncounts a guard counted by [`admit`].
#[inline]
pub(crate) fn dismiss(guards: &ThreadGuards) {
    let count = guards.count.load(Ordering::Relaxed);
    debug_assert!(count > 0, "a guard dismissed twice");
    let count = count.saturating_sub(1);
    guards.count.store(count, Ordering::Release);
    #[cfg(Py_3_15)]
    if count == 0 {
        close_interpreter_guard(guards);
    }
}

/// 3.15+: closes the PEP 788 guard `guards` holds, if any. Whoever swaps it out closes it:
/// its thread when its last guard is dropped, or, for a thread that cannot drop it any
/// more, [`on_exit`](at_exit) after the timeout and [`after_fork`] in the child.
#[cfg(Py_3_15)]
pub(super) fn close_interpreter_guard(guards: &ThreadGuards) {
    let guard = guards
        .interpreter_guard
        .swap(core::ptr::null_mut(), Ordering::AcqRel);
    if !guard.is_null() {
        // SAFETY: opened by `open_interpreter_guard`, and swapped out by this call only, so
        // closed once; closing needs no attached thread state.
        unsafe { crate::raw::ffi::pep788::PyInterpreterGuard_Close(guard) };
    }
}

/// 3.15+: opens a PEP 788 guard on the main interpreter for this thread; false if the
/// interpreter is finalizing or gone.
#[cfg(Py_3_15)]
fn open_interpreter_guard(guards: &ThreadGuards) -> bool {
    let (view_epoch, view) = *MAIN_VIEW.lock().unwrap_or_else(PoisonError::into_inner);
    if view_epoch != epoch() {
        return true; // not installed: only the gate and CPython's flag protect
    }
    // SAFETY: `view` came from `PyInterpreterView_FromMain` in the current runtime and is
    // never closed; the call needs no attached thread state.
    let guard = unsafe {
        crate::raw::ffi::pep788::PyInterpreterGuard_FromView(
            view as *mut crate::raw::ffi::pep788::PyInterpreterView,
        )
    };
    guards.interpreter_guard.store(guard, Ordering::Release);
    !guard.is_null()
}

/// In the child of a fork: the `atexit` callback, copied with the interpreter, now serves
/// `epoch`; the gate is open; and the only native thread is the forking one, which holds
/// `kept_frames` guards if it is one.
pub(crate) fn after_fork(epoch: u64, this_thread: Option<(&'static ThreadGuards, usize)>) {
    if HOOK.is_registered(epoch - 1) {
        HOOK.inherited(epoch);
    }
    CLOSED.store(NO_EPOCH, Ordering::Release);
    let open = if HOOK.is_registered(epoch) {
        epoch
    } else {
        NO_EPOCH
    };
    OPEN.store(open, Ordering::SeqCst);
    asymmetric_fence::after_fork();
    let mut threads = THREADS.lock().unwrap_or_else(PoisonError::into_inner);
    let mut free = FREE.lock().unwrap_or_else(PoisonError::into_inner);
    for guards in threads.drain(..) {
        guards.count.store(0, Ordering::Release);
        // 3.15+: the child's interpreter still counts the PEP 788 guards of the parent's
        // threads, which do not exist here, and its finalization would wait for them forever
        // (`tests/fork.rs::fork_from_rust`). The forking thread's own is closed too unless it
        // still holds guards.
        #[cfg(Py_3_15)]
        if !this_thread
            .is_some_and(|(this, kept_frames)| core::ptr::eq(this, guards) && kept_frames > 0)
        {
            close_interpreter_guard(guards);
        }
        free.push(guards);
    }
    if let Some((guards, kept_frames)) = this_thread {
        free.retain(|other| !core::ptr::eq(*other, guards));
        guards.count.store(kept_frames, Ordering::Release);
        threads.push(guards);
    }
}
