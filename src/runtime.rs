//! The runtime as a whole: starting it when embedding, and asking what state it and this
//! thread are in.

use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use pyo3_ffi::PyThreadState;

use crate::error::GilError;
use crate::ffi;

/// Serializes [`initialize`] calls made from several threads at once.
static INITIALIZING: Mutex<()> = Mutex::new(());

/// How many times `Py_FinalizeEx` has completed, as far as this crate has seen: the
/// identity of the current runtime for anything that must not outlive it.
static EPOCH: AtomicU64 = AtomicU64::new(0);

/// The epoch in which [`on_finalized`] was registered with `Py_AtExit`, if any.
static WATCHED_EPOCH: Mutex<Option<u64>> = Mutex::new(None);

extern "C" fn on_finalized() {
    crate::shutdown::runtime_finalized();
    EPOCH.fetch_add(1, Ordering::AcqRel);
}

/// The current runtime's epoch; see [`watch_finalization`].
#[inline]
pub(crate) fn epoch() -> u64 {
    EPOCH.load(Ordering::Acquire)
}

/// Makes sure the epoch advances when the current runtime (of epoch `epoch`) finishes
/// finalizing. Returns false if CPython has no `Py_AtExit` slot left; then nothing that
/// must not outlive the runtime may be kept.
///
/// Call it attached to the main interpreter: before 3.12 `Py_AtExit` has no lock of its
/// own and relies on its callers holding the GIL.
pub(crate) fn watch_finalization(epoch: u64) -> bool {
    let mut watched = WATCHED_EPOCH.lock().unwrap_or_else(PoisonError::into_inner);
    if *watched == Some(epoch) {
        return true;
    }
    // SAFETY: the runtime is initialized and the caller holds the main GIL (see above).
    if unsafe { pyo3_ffi::Py_AtExit(Some(on_finalized)) } != 0 {
        return false;
    }
    *watched = Some(epoch);
    true
}

/// [`watch_finalization`] and [`install_hooks`] for the current runtime, from any thread:
/// attaches to the main interpreter for the calls unless it is watched already (whatever
/// watches a runtime also installs the hooks). In a runtime the host started, nothing else
/// of this crate may have run yet, and a thread state that outlives this call must become
/// inert both when the runtime is finalized and in the child of a fork, which deletes it.
///
/// # Errors
/// [`GilError::NotInitialized`] or [`GilError::Finalizing`] if the thread cannot attach,
/// and [`GilError::Unsupported`] if CPython has no `Py_AtExit` slot left.
pub(crate) fn ensure_watched() -> Result<(), GilError> {
    let epoch = epoch();
    if *WATCHED_EPOCH.lock().unwrap_or_else(PoisonError::into_inner) == Some(epoch) {
        return Ok(());
    }
    let watched = crate::try_with_gil(|| {
        // SAFETY: attached to the main interpreter (`try_with_gil`).
        unsafe { install_hooks() };
        watch_finalization(epoch)
    })?;
    if watched {
        Ok(())
    } else {
        Err(GilError::Unsupported(
            "no Py_AtExit slot left to watch finalization",
        ))
    }
}

/// In the child of a fork: starts a new epoch, since the child's runtime lost every thread
/// state but one and every sub-interpreter. The `Py_AtExit` hook, copied with the rest of
/// the runtime, keeps watching it. Returns the new epoch.
pub(crate) fn after_fork() -> u64 {
    let mut watched = WATCHED_EPOCH.lock().unwrap_or_else(PoisonError::into_inner);
    let old = EPOCH.fetch_add(1, Ordering::AcqRel);
    if *watched == Some(old) {
        *watched = Some(old + 1);
    }
    old + 1
}

/// Registers this crate's `atexit` and after-fork callbacks for the current runtime.
///
/// # Safety
/// The thread is attached to the main interpreter.
pub(crate) unsafe fn install_hooks() {
    // SAFETY: forwarded.
    unsafe {
        crate::shutdown::install();
        crate::fork::install();
    }
}

/// Whether the runtime this crate last watched has finished finalizing. CPython leaves its
/// finalizing flag set after `Py_FinalizeEx` returns, until the next initialization, so the
/// flag alone cannot tell "finalizing now" from "finalized".
fn watched_runtime_finalized() -> bool {
    WATCHED_EPOCH
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .is_some_and(|watched| watched != epoch())
}

/// Starts the Python runtime, for programs that embed Python. Does nothing if it is already
/// running (in an extension module, or after an earlier call).
///
/// When this call starts the runtime it leaves the calling thread **detached**, so that
/// guards work the same from every thread, including this one. It starts it with
/// `Py_InitializeEx(0)`: Python does not install its signal handlers, so Ctrl-C keeps
/// whatever meaning the host program gave it.
///
/// # Errors
///
/// [`GilError::Finalizing`] while the runtime is shutting down: starting it again at that
/// moment would race with the shutdown.
///
/// # Examples
///
/// ```
/// gilguard::initialize()?;
/// gilguard::initialize()?; // idempotent
/// assert!(gilguard::is_initialized());
/// assert!(!gilguard::is_attached());
/// # Ok::<(), gilguard::GilError>(())
/// ```
pub fn initialize() -> Result<(), GilError> {
    // Running: fine, unless its shutdown has begun (the `atexit` phase, before CPython's
    // own flag is set).
    if ffi::is_initialized() {
        return check_not_finalizing();
    }
    let _only_us = INITIALIZING.lock().unwrap_or_else(PoisonError::into_inner);
    if ffi::is_initialized() {
        return check_not_finalizing();
    }
    if is_finalizing() {
        return Err(GilError::Finalizing);
    }
    // SAFETY: the runtime is neither running nor finalizing, and the lock keeps other
    // callers of this function out. `Py_InitializeEx` leaves this thread attached to the
    // new main thread state.
    unsafe { pyo3_ffi::Py_InitializeEx(0) };
    let watched = watch_finalization(epoch());
    // SAFETY: attached to the main interpreter by `Py_InitializeEx`.
    unsafe { install_hooks() };
    // SAFETY: attached by `Py_InitializeEx` to the runtime's main thread state, which this
    // thread keeps (borrowed) for its later guards if finalization is watched (otherwise
    // nothing could tell when it is freed; `PyGILState` still finds it).
    let main_tstate = unsafe { pyo3_ffi::PyEval_SaveThread() };
    if watched {
        crate::native_thread::adopt_main_thread_state(main_tstate);
    }
    Ok(())
}

/// Whether the Python runtime is initialized (`Py_IsInitialized`).
///
/// # Examples
///
/// ```
/// gilguard::initialize()?;
/// assert!(gilguard::is_initialized());
/// # Ok::<(), gilguard::GilError>(())
/// ```
pub fn is_initialized() -> bool {
    ffi::is_initialized()
}

/// Whether the Python runtime is shutting down: from the moment this crate's `atexit`
/// callback runs (which is also when guards start refusing to attach; see
/// [`set_shutdown_timeout`](crate::set_shutdown_timeout)), or CPython's finalizing flag is
/// set (`Py_IsFinalizing`, `_Py_IsFinalizing` before 3.13), until `Py_FinalizeEx` returns.
///
/// CPython keeps the flag set after finalization completed; this crate reports the
/// finalization as over when it saw it complete, which it does for every runtime it
/// started or attached a native thread to.
///
/// # Examples
///
/// ```
/// gilguard::initialize()?;
/// assert!(!gilguard::is_finalizing());
/// # Ok::<(), gilguard::GilError>(())
/// ```
pub fn is_finalizing() -> bool {
    (crate::shutdown::closed() == Some(true) || ffi::is_finalizing())
        && !watched_runtime_finalized()
}

/// Whether this thread is attached to an interpreter (holds a GIL), whichever interpreter
/// that is.
///
/// Unlike `PyGILState_Check`, which answers 1 unconditionally once a sub-interpreter has
/// existed, this stays exact. On CPython 3.12+ it asks CPython for this thread's thread
/// state. On 3.9–3.11 CPython only knows which thread state holds the (single) GIL; it
/// belongs to this thread if it is the thread's `PyGILState` state or one this crate
/// attached on this thread. A sub-interpreter thread state attached by code outside this
/// crate on 3.9–3.11 is therefore not recognized (and acquiring a guard then deadlocks on
/// the GIL this thread holds; see the guide, §2.5).
///
/// # Examples
///
/// ```
/// gilguard::initialize()?;
/// assert!(!gilguard::is_attached());
/// gilguard::with_gil(|| assert!(gilguard::is_attached()));
/// # Ok::<(), gilguard::GilError>(())
/// ```
pub fn is_attached() -> bool {
    !attached_thread_state().is_null()
}

/// The thread state attached to this thread, or null.
pub(crate) fn attached_thread_state() -> *mut PyThreadState {
    let current = ffi::current_thread_state();
    #[cfg(not(Py_3_12))]
    {
        // `current` holds the GIL, but may be another thread's: accept it only when it is
        // provably this thread's.
        if current.is_null()
            || ffi::is_this_threads(current)
            || owns(current)
            || crate::stack::vouches_for(current)
        {
            current
        } else {
            core::ptr::null_mut()
        }
    }
    #[cfg(Py_3_12)]
    current
}

/// Whether `tstate` is a thread state the crate keeps alive for this thread: the one kept
/// for it, or one of its [`ThreadStateHandle`](crate::ThreadStateHandle)s'.
pub(crate) fn owns(tstate: *mut PyThreadState) -> bool {
    !tstate.is_null()
        && (tstate == crate::native_thread::kept_thread_state()
            || crate::handle_claims::is_handle_state(tstate))
}

/// Refuses attaching once finalization has begun: attaching then hangs the thread or, up
/// to 3.13, ends it with `pthread_exit`. CPython keeps the flag set after finalization
/// completed, so this also refuses a finalized runtime until it is initialized again.
#[inline]
pub(crate) fn check_not_finalizing() -> Result<(), GilError> {
    let finalizing = match crate::shutdown::closed() {
        // The gate closes before CPython's flag is set, and stays closed after.
        Some(closed) => closed,
        None => ffi::is_finalizing(),
    };
    if finalizing {
        Err(finalizing_error())
    } else {
        Ok(())
    }
}

#[cold]
fn finalizing_error() -> GilError {
    if watched_runtime_finalized() {
        GilError::NotInitialized
    } else {
        GilError::Finalizing
    }
}

/// Refuses attaching when CPython would abort, hang or kill the thread.
pub(crate) fn check_can_attach() -> Result<(), GilError> {
    check_not_finalizing()?;
    if ffi::is_initialized() {
        Ok(())
    } else {
        Err(GilError::NotInitialized)
    }
}
