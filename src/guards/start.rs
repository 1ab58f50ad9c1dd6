//! Start-up: starting the runtime when embedding ([`initialize`]), and watching a runtime
//! the host started ([`ensure_watched`]).

#![allow(
    unsafe_code,
    reason = "starts the runtime and installs its hooks (C preconditions: raw::ffi)"
)]

use std::sync::{Mutex, PoisonError};

use crate::error::GilError;
use crate::guards::attach::install_hooks;
use crate::guards::with_gil::try_with_gil;
use crate::raw::epoch::epoch;
use crate::raw::ffi;
use crate::runtime::{self, native_thread};

/// Serializes [`initialize`] calls made from several threads at once.
static INITIALIZING: Mutex<()> = Mutex::new(());

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
        return runtime::check_not_finalizing();
    }
    let _only_us = INITIALIZING.lock().unwrap_or_else(PoisonError::into_inner);
    if ffi::is_initialized() {
        return runtime::check_not_finalizing();
    }
    if runtime::is_finalizing() {
        return Err(GilError::Finalizing);
    }
    // SAFETY: the runtime is neither running nor finalizing, and the lock keeps other
    // callers of this function out. `Py_InitializeEx` leaves this thread attached to the
    // new main thread state.
    unsafe { ffi::initialize() };
    let watched = runtime::watch_finalization(epoch());
    // SAFETY: attached to the main interpreter by `Py_InitializeEx`.
    unsafe { install_hooks() };
    // SAFETY: attached by `Py_InitializeEx` to the runtime's main thread state, which this
    // thread keeps (borrowed) for its later guards if finalization is watched (otherwise
    // nothing could tell when it is freed; `PyGILState` still finds it).
    let main_tstate = unsafe { ffi::save_thread() };
    if watched {
        native_thread::adopt_main_thread_state(main_tstate);
    }
    Ok(())
}

/// [`runtime::watch_finalization`] and [`install_hooks`] for the current runtime, from any thread:
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
    if runtime::is_watched(epoch) && runtime::hooks_installed(epoch) {
        return Ok(());
    }
    let watched = try_with_gil(|| {
        // SAFETY: attached to the main interpreter (`try_with_gil`).
        unsafe { install_hooks() };
        runtime::watch_finalization(epoch)
    })?;
    if watched {
        Ok(())
    } else {
        Err(runtime::no_exit_slot())
    }
}
