//! Watching the runtime's life: whether it runs or finalizes, the epoch that moves on when
//! a runtime this crate watches finishes finalizing, and the checks every attach makes.

#![allow(
    unsafe_code,
    reason = "registers the `Py_AtExit` callback (C preconditions: raw::ffi)"
)]

use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::error::GilError;
use crate::raw::epoch::{self, NO_EPOCH, epoch};
use crate::raw::ffi;
use crate::runtime::shutdown;

/// The epoch in which [`on_finalized`] was registered with `Py_AtExit`, if any; the lock
/// serializes registering.
static WATCHED_EPOCH: Mutex<Option<u64>> = Mutex::new(None);
/// The same, readable in one load: the watched epoch, or `NO_EPOCH`.
static WATCHED: AtomicU64 = AtomicU64::new(NO_EPOCH);
/// The epoch whose runtime has had its hooks installed ([`hooks_were_installed`]).
static HOOKED: AtomicU64 = AtomicU64::new(NO_EPOCH);

extern "C" fn on_finalized() {
    shutdown::runtime_finalized();
    epoch::advance();
}

/// Makes sure the epoch advances when the current runtime (of epoch `epoch`) finishes
/// finalizing. Returns false if CPython has no `Py_AtExit` slot left; then nothing that
/// must not outlive the runtime may be kept.
///
/// Call it attached, to any interpreter: before 3.12 `Py_AtExit` has no lock of its own
/// and relies on its callers holding the (one) GIL.
pub(crate) fn watch_finalization(epoch: u64) -> bool {
    if is_watched(epoch) {
        return true;
    }
    let mut watched = WATCHED_EPOCH.lock().unwrap_or_else(PoisonError::into_inner);
    if *watched == Some(epoch) {
        return true;
    }
    // SAFETY: the runtime is initialized and the caller holds a GIL (see above).
    if !unsafe { ffi::at_exit(on_finalized) } {
        return false;
    }
    *watched = Some(epoch);
    WATCHED.store(epoch, Ordering::Release);
    true
}

/// Whether the runtime of `epoch` is watched already (see [`watch_finalization`]).
#[inline]
pub(crate) fn is_watched(epoch: u64) -> bool {
    WATCHED.load(Ordering::Acquire) == epoch
}

/// The current runtime's epoch, for a record that must never be taken for one of a later
/// runtime (an interpreter's name, an object's origin): the runtime is watched first, so
/// that the epoch moves on when it finalizes, whoever started it. The thread is attached,
/// to any interpreter.
///
/// # Errors
/// [`GilError::Unsupported`] if CPython has no `Py_AtExit` slot left.
pub(crate) fn watched_epoch() -> Result<u64, GilError> {
    let epoch = epoch();
    if watch_finalization(epoch) {
        Ok(epoch)
    } else {
        Err(no_exit_slot())
    }
}

/// The refusal when every `Py_AtExit` slot is taken.
#[cold]
pub(crate) fn no_exit_slot() -> GilError {
    GilError::Unsupported("no Py_AtExit slot left to watch finalization")
}

/// Whether the hooks were installed for the runtime of `epoch`.
pub(crate) fn hooks_installed(epoch: u64) -> bool {
    HOOKED.load(Ordering::Acquire) == epoch
}

/// In the child of a fork: starts a new epoch, since the child's runtime lost every thread
/// state but one and every sub-interpreter. The `Py_AtExit` hook, copied with the rest of
/// the runtime, keeps watching it. Returns the new epoch.
pub(crate) fn after_fork() -> u64 {
    let mut watched = WATCHED_EPOCH.lock().unwrap_or_else(PoisonError::into_inner);
    let old = epoch::advance();
    if *watched == Some(old) {
        *watched = Some(old + 1);
        WATCHED.store(old + 1, Ordering::Release);
    }
    let _ = HOOKED.compare_exchange(old, old + 1, Ordering::AcqRel, Ordering::Acquire);
    old + 1
}

/// Records that [`install_hooks`](crate::runtime::hooks::install_hooks) ran for the
/// runtime of `epoch`.
pub(crate) fn hooks_were_installed(epoch: u64) {
    HOOKED.store(epoch, Ordering::Release);
}

/// Whether the runtime this crate last watched has finished finalizing. CPython leaves its
/// finalizing flag set after `Py_FinalizeEx` returns, until the next initialization, so the
/// flag alone cannot tell "finalizing now" from "finalized".
fn watched_runtime_finalized() -> bool {
    let watched = WATCHED.load(Ordering::Acquire);
    watched != NO_EPOCH && watched != epoch()
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
#[must_use]
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
#[must_use]
pub fn is_finalizing() -> bool {
    (shutdown::closed() == Some(true) || ffi::is_finalizing()) && !watched_runtime_finalized()
}

/// Refuses attaching once finalization has begun: attaching then hangs the thread or, up
/// to 3.13, ends it with `pthread_exit`. CPython keeps the flag set after finalization
/// completed, so this also refuses a finalized runtime until it is initialized again.
#[inline]
pub(crate) fn check_not_finalizing() -> Result<(), GilError> {
    let finalizing = match shutdown::closed() {
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
#[inline(never)]
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
