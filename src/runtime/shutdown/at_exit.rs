//! The gate's `atexit` side: registering the callback, and the callback itself, which
//! closes the gate and waits, up to the timeout, for the native threads' guards.

#![allow(unsafe_code, reason = "registers and runs the `atexit` callback")]

use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::{OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::context::guard_count::ThreadGuards;
use crate::context::thread;
use crate::raw::asymmetric_fence;
use crate::raw::epoch::{NO_EPOCH, epoch};
use crate::raw::ffi;
use crate::runtime::shutdown::gate::{CLOSED, HOOK, OPEN, THREADS};
#[cfg(Py_3_15)]
use crate::runtime::shutdown::gate::{MAIN_VIEW, close_interpreter_guard};

/// Ends the sub-interpreters still alive at shutdown (`drained`: no native thread holds a
/// guard any more); set by the interpreters layer with the first sub-interpreter it records.
static END_INTERPRETERS: OnceLock<fn(bool)> = OnceLock::new();

/// Makes the `atexit` callback end the sub-interpreters still alive with `end`, before
/// CPython's finalization (which aborts on one); later calls change nothing.
pub(crate) fn end_interpreters_with(end: fn(bool)) {
    let _ = END_INTERPRETERS.set(end);
}

/// How long shutdown waits for native threads, in milliseconds.
static TIMEOUT_MS: AtomicU64 = AtomicU64::new(5_000);
/// Sets how long interpreter shutdown waits for threads Python did not create to drop the
/// guards they hold (default: 5 seconds). On CPython 3.9–3.14 shutdown continues when the
/// time is up, and a thread that still holds a guard then stays parked when it tries to
/// re-attach. From 3.15 those guards also hold PEP 788 interpreter guards, which keep
/// CPython from starting to finalize until they are dropped or, at the latest, until this
/// timeout has passed.
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

/// Registers the `atexit` callback for the current runtime, once.
///
/// # Safety
/// The thread is attached to the main interpreter.
pub(crate) unsafe fn install() {
    // Before the `atexit` callback is registered, so that the callback, which runs under the
    // GIL after this, sees the fence enabled if any thread could.
    asymmetric_fence::enable();
    // SAFETY: attached to the main interpreter (caller); `ON_EXIT` is a static. A failure
    // leaves the gate uninstalled: CPython's flag is then the only check.
    unsafe { HOOK.register(c"atexit", c"register", None, &raw mut ON_EXIT) };
    // `on_exit` changes `OPEN` and `CLOSED` only while it holds the main GIL, as this
    // thread does: it has either not started (and will reset `OPEN`) or closed the gate.
    let epoch = epoch();
    if HOOK.is_registered(epoch) && CLOSED.load(Ordering::SeqCst) != epoch {
        OPEN.store(epoch, Ordering::SeqCst);
    }
    #[cfg(Py_3_15)]
    {
        let mut main_view = MAIN_VIEW.lock().unwrap_or_else(PoisonError::into_inner);
        if main_view.0 != epoch {
            // SAFETY: needs no attached thread state; the view is kept for the runtime's
            // life (a view of a finalized runtime is only ever compared, never used).
            let view = unsafe { crate::raw::ffi::pep788::PyInterpreterView_FromMain() };
            *main_view = (epoch, view as usize);
        }
    }
}

static mut ON_EXIT: ffi::PyMethodDef = ffi::no_args_method(
    c"_gilguard_shutdown",
    on_exit,
    c"Closes gilguard's shutdown gate and waits for native threads.",
);

/// The `atexit` callback: closes the gate, then waits with the GIL released until the
/// native threads hold no guard, or the timeout passes.
unsafe extern "C" fn on_exit(
    _module: *mut ffi::PyObject,
    _args: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    OPEN.store(NO_EPOCH, Ordering::SeqCst);
    CLOSED.store(epoch(), Ordering::SeqCst);
    let counts_visible = asymmetric_fence::heavy();
    let timeout = Duration::from_millis(TIMEOUT_MS.load(Ordering::Relaxed));
    // The guards of the thread that runs the shutdown are its caller's business.
    let own = thread::thread_guards();
    // SAFETY: attached (Python calls this callback); re-attached below, and nothing runs on
    // this thread in between but the wait.
    let tstate = unsafe { ffi::save_thread() };
    let drained = {
        let drained = if counts_visible {
            wait_for_native_threads(timeout, own)
        } else {
            // No count can be trusted to be up to date: wait as long as allowed.
            std::thread::sleep(timeout);
            false
        };
        // 3.15+: CPython waits after this callback, without a time limit, until every PEP 788
        // guard is closed: those of threads that did not finish in time (which then block or
        // park when they re-attach), and this thread's own, which cannot wait for itself, are
        // closed here, so that the exit stays bounded by the timeout as on 3.9-3.14.
        #[cfg(Py_3_15)]
        for guards in THREADS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            close_interpreter_guard(guards);
        }
        drained
    };
    // SAFETY: detached just above from `tstate`, this thread's; CPython's finalizing flag is
    // set only after the `atexit` callbacks.
    unsafe { ffi::restore_thread(tstate) };
    // Before CPython's finalization, which aborts on a sub-interpreter still alive.
    if let Some(end) = END_INTERPRETERS.get() {
        end(drained);
    }
    // SAFETY: attached.
    unsafe { ffi::new_none() }
}

/// Returns once no native thread (other than `own`, the one running the shutdown) holds a
/// guard, or when `timeout` has passed; true in the first case. A guard admitted before
/// the gate closed is seen here (see [`admit`](super::admit)); one admitted later does not exist.
fn wait_for_native_threads(timeout: Duration, own: Option<&'static ThreadGuards>) -> bool {
    let started = Instant::now();
    loop {
        let busy = THREADS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|guards| !own.is_some_and(|own| core::ptr::eq(own, **guards)))
            .any(|guards| guards.count.load(Ordering::SeqCst) != 0);
        if !busy {
            return true;
        }
        if started.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
