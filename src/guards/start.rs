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
    // SAFETY: neither running nor finalizing (checked), and the lock keeps other callers out.
    unsafe { ffi::initialize() };
    let watched = runtime::watch_finalization(epoch());
    // SAFETY: attached to the main interpreter by `Py_InitializeEx`.
    unsafe { install_hooks() };
    // SAFETY: attached by `Py_InitializeEx`. The main thread state is kept (borrowed) only if
    // finalization is watched, which tells when it is freed; `PyGILState` finds it anyway.
    let main_tstate = unsafe { ffi::save_thread() };
    if watched {
        native_thread::adopt_main_thread_state(main_tstate);
    }
    Ok(())
}

/// [`runtime::watch_finalization`] and [`install_hooks`] for the current runtime, from any
/// thread, attaching for the calls unless both are done: in a runtime the host started,
/// nothing of this crate may have run yet, and a thread state that outlives this call must
/// become inert when the runtime is finalized and in a fork's child.
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
