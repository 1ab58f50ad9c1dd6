//! The shutdown gate: keeps threads Python did not create out of a runtime that is shutting
//! down, and lets the guards they already hold finish first.
//!
//! `Py_FinalizeEx` joins the non-daemon `threading` threads, runs the `atexit` callbacks,
//! and only then sets CPython's finalizing flag and deletes every other thread state. A
//! native thread that tries to attach after the flag is set is ended with `pthread_exit`
//! (CPython 3.13 and older; `pyo3-ffi` turns that into parking the thread forever, since a
//! forced unwind through Rust frames is undefined) or hangs (3.14+), and checking the flag
//! first leaves a window between the check and the attach.
//!
//! The gate closes that window for every attach that starts after shutdown begins: an
//! `atexit` callback, which runs before the flag is set and holds the GIL, closes the gate
//! (from then on attaching is refused with `GilError::Finalizing`), then releases the GIL
//! and waits, up to [`set_shutdown_timeout`], until the native threads have dropped the
//! guards they hold, so that their last callbacks complete and release the GIL properly.
//!
//! What remains before 3.15 (documented in `docs/reliability.md`): a native thread that
//! passed the gate an instant before it closed may still be on its way to the GIL when the
//! wait ends; and a guard held past the timeout re-attaches after the flag is set. Both
//! end with the thread parked (3.9–3.13) or blocked (3.14), never in undefined behaviour:
//! CPython checks its flag before it touches the thread state of a late thread. From 3.15
//! a native thread also holds a PEP 788 interpreter guard while it holds guards of this
//! crate, which keeps CPython from starting to finalize meanwhile and closes the window.

#[cfg(Py_3_15)]
use core::sync::atomic::AtomicPtr;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::runtime::epoch;

/// No epoch: the gate was never installed, or never closed.
const NONE: u64 = u64::MAX;

/// The runtime epoch whose `atexit` callback is registered.
static INSTALLED: AtomicU64 = AtomicU64::new(NONE);
/// The runtime epoch whose shutdown has begun.
static CLOSED: AtomicU64 = AtomicU64::new(NONE);
/// How long shutdown waits for native threads, in milliseconds.
static TIMEOUT_MS: AtomicU64 = AtomicU64::new(5_000);
/// The guards held by each native thread that ever attached (one record per thread, reused
/// after the thread exits).
static THREADS: Mutex<Vec<&'static Held>> = Mutex::new(Vec::new());
/// Records of exited threads, free for new ones.
static FREE: Mutex<Vec<&'static Held>> = Mutex::new(Vec::new());

/// What one native thread holds: how many guards, and from 3.15 the PEP 788 interpreter
/// guard it keeps open while that count is above zero.
#[derive(Debug, Default)]
pub(crate) struct Held {
    count: AtomicUsize,
    #[cfg(Py_3_15)]
    interpreter_guard: AtomicPtr<crate::ffi::pep788::PyInterpreterGuard>,
}

/// 3.15+: a view of the main interpreter, made once, for the guards.
#[cfg(Py_3_15)]
static MAIN_VIEW: AtomicPtr<crate::ffi::pep788::PyInterpreterView> =
    AtomicPtr::new(core::ptr::null_mut());

/// Sets how long interpreter shutdown waits for threads Python did not create to drop the
/// guards they hold (default: 5 seconds). Shutdown continues when the time is up; a thread
/// that still holds a guard then stays parked when it tries to re-attach.
///
/// # Examples
///
/// ```
/// gilguard::set_shutdown_timeout(std::time::Duration::from_secs(2));
/// ```
pub fn set_shutdown_timeout(timeout: Duration) {
    let millis = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    TIMEOUT_MS.store(millis, Ordering::Relaxed);
}

/// `Some(closed)` if the gate is installed for the current runtime, `None` if not (then
/// only CPython's own flag tells).
#[inline]
pub(crate) fn closed() -> Option<bool> {
    let epoch = epoch();
    if INSTALLED.load(Ordering::Acquire) != epoch {
        return None;
    }
    Some(CLOSED.load(Ordering::Acquire) == epoch)
}

/// A record of the guards held by the calling native thread, for [`enter`] and [`leave`].
pub(crate) fn register_thread() -> &'static Held {
    let counter = FREE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .pop()
        .unwrap_or_else(|| Box::leak(Box::default()));
    THREADS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(counter);
    counter
}

/// Returns the record of an exiting thread, which holds no guard any more.
pub(crate) fn unregister_thread(counter: &'static Held) {
    THREADS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .retain(|other| !core::ptr::eq(*other, counter));
    FREE.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(counter);
}

/// Counts a guard the thread is about to take, unless shutdown has begun.
///
/// The count is published before the gate is read, and the gate is closed before counts
/// are read, so at least one side sees the other unless both happen within the same few
/// nanoseconds (see the module documentation).
#[inline]
pub(crate) fn enter(held: &Held) -> Result<(), ()> {
    let count = held.count.load(Ordering::Relaxed);
    #[cfg(Py_3_15)]
    if count == 0 && !open_interpreter_guard(held) {
        return Err(());
    }
    held.count.store(count + 1, Ordering::Release);
    if closed() == Some(true) {
        leave(held);
        return Err(());
    }
    Ok(())
}

/// Counts a guard taken while the gate was known to be open.
#[inline]
pub(crate) fn count(held: &Held) {
    let count = held.count.load(Ordering::Relaxed);
    #[cfg(Py_3_15)]
    if count == 0 {
        // The thread is attached already; without a guard it is simply not protected.
        open_interpreter_guard(held);
    }
    held.count.store(count + 1, Ordering::Release);
}

/// Uncounts a guard taken with [`enter`] or [`count`].
#[inline]
pub(crate) fn leave(held: &Held) {
    let count = held.count.load(Ordering::Relaxed).saturating_sub(1);
    held.count.store(count, Ordering::Release);
    #[cfg(Py_3_15)]
    if count == 0 {
        let guard = held
            .interpreter_guard
            .swap(core::ptr::null_mut(), Ordering::AcqRel);
        if !guard.is_null() {
            // SAFETY: opened by `open_interpreter_guard` and not closed since (swapped out).
            unsafe { crate::ffi::pep788::PyInterpreterGuard_Close(guard) };
        }
    }
}

/// 3.15+: opens a PEP 788 guard on the main interpreter for this thread; false if the
/// interpreter is finalizing or gone.
#[cfg(Py_3_15)]
fn open_interpreter_guard(held: &Held) -> bool {
    let view = MAIN_VIEW.load(Ordering::Acquire);
    if view.is_null() {
        return true; // not installed: only the gate and CPython's flag protect
    }
    // SAFETY: `view` came from `PyInterpreterView_FromMain` and is never closed; the call
    // needs no attached thread state.
    let guard = unsafe { crate::ffi::pep788::PyInterpreterGuard_FromView(view) };
    held.interpreter_guard.store(guard, Ordering::Release);
    !guard.is_null()
}

/// In the child of a fork: the `atexit` callback, copied with the interpreter, now serves
/// `epoch`; the gate is open; and the only native thread is the forking one, which holds
/// `kept_frames` guards if it is one.
pub(crate) fn after_fork(epoch: u64, this_thread: Option<(&'static Held, usize)>) {
    if INSTALLED.load(Ordering::Acquire) == epoch - 1 {
        INSTALLED.store(epoch, Ordering::Release);
    }
    CLOSED.store(NONE, Ordering::Release);
    let mut threads = THREADS.lock().unwrap_or_else(PoisonError::into_inner);
    let mut free = FREE.lock().unwrap_or_else(PoisonError::into_inner);
    for counter in threads.drain(..) {
        counter.count.store(0, Ordering::Release);
        free.push(counter);
    }
    if let Some((counter, kept_frames)) = this_thread {
        free.retain(|other| !core::ptr::eq(*other, counter));
        counter.count.store(kept_frames, Ordering::Release);
        threads.push(counter);
    }
}

/// Registers the `atexit` callback for the current runtime, once.
///
/// # Safety
/// The thread is attached to the main interpreter.
pub(crate) unsafe fn install() {
    let epoch = epoch();
    if INSTALLED.load(Ordering::Acquire) == epoch {
        return;
    }
    static INSTALLING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = INSTALLING.lock().unwrap_or_else(PoisonError::into_inner);
    if INSTALLED.load(Ordering::Acquire) == epoch {
        return;
    }
    // SAFETY: attached to the main interpreter (caller); `ON_EXIT` is static; every new
    // reference is released; a failure leaves the gate uninstalled (CPython's flag is then
    // the only check) and its exception is reported as unraisable.
    let registered = unsafe {
        let atexit = pyo3_ffi::PyImport_ImportModule(c"atexit".as_ptr());
        let hook = pyo3_ffi::PyCFunction_NewEx(
            &raw mut ON_EXIT,
            core::ptr::null_mut(),
            core::ptr::null_mut(),
        );
        let register = if atexit.is_null() {
            core::ptr::null_mut()
        } else {
            pyo3_ffi::PyObject_GetAttrString(atexit, c"register".as_ptr())
        };
        let result = if register.is_null() || hook.is_null() {
            core::ptr::null_mut()
        } else {
            pyo3_ffi::PyObject_CallOneArg(register, hook)
        };
        let ok = !result.is_null();
        if !ok {
            pyo3_ffi::PyErr_WriteUnraisable(core::ptr::null_mut());
        }
        for object in [result, register, hook, atexit] {
            pyo3_ffi::Py_XDECREF(object);
        }
        ok
    };
    if registered {
        INSTALLED.store(epoch, Ordering::Release);
    }
    #[cfg(Py_3_15)]
    if MAIN_VIEW.load(Ordering::Acquire).is_null() {
        // SAFETY: needs no attached thread state; the view is kept for the process's life.
        let view = unsafe { crate::ffi::pep788::PyInterpreterView_FromMain() };
        MAIN_VIEW.store(view, Ordering::Release);
    }
}

static mut ON_EXIT: pyo3_ffi::PyMethodDef = pyo3_ffi::PyMethodDef {
    ml_name: c"_gilguard_shutdown".as_ptr(),
    ml_meth: pyo3_ffi::PyMethodDefPointer {
        PyCFunction: on_exit,
    },
    ml_flags: pyo3_ffi::METH_NOARGS,
    ml_doc: c"Closes gilguard's shutdown gate and waits for native threads.".as_ptr(),
};

/// The `atexit` callback: closes the gate, then waits with the GIL released until the
/// native threads hold no guard, or the timeout passes.
unsafe extern "C" fn on_exit(
    _module: *mut pyo3_ffi::PyObject,
    _args: *mut pyo3_ffi::PyObject,
) -> *mut pyo3_ffi::PyObject {
    CLOSED.store(epoch(), Ordering::SeqCst);
    let timeout = Duration::from_millis(TIMEOUT_MS.load(Ordering::Relaxed));
    // The guards of the thread that runs the shutdown are its caller's business.
    let own = crate::native_thread::held_counter();
    crate::without_gil(move || wait_for_native_threads(timeout, own));
    // SAFETY: attached again (after `without_gil`); returns a new reference to `None`.
    unsafe {
        let none = pyo3_ffi::Py_None();
        pyo3_ffi::Py_INCREF(none);
        none
    }
}

/// Returns once every native thread held no guard at two checks a millisecond apart, or
/// when `timeout` has passed. The second check catches a thread that counted a guard just
/// before the gate closed but whose count had not reached this thread yet.
fn wait_for_native_threads(timeout: Duration, own: Option<&'static Held>) {
    let started = Instant::now();
    let mut idle_checks = 0;
    while idle_checks < 2 && started.elapsed() < timeout {
        let busy = THREADS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|held| !own.is_some_and(|own| core::ptr::eq(own, **held)))
            .any(|held| held.count.load(Ordering::Acquire) != 0);
        idle_checks = if busy { 0 } else { idle_checks + 1 };
        std::thread::sleep(Duration::from_millis(1));
    }
}
