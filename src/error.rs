//! [`GilError`]: every operation this crate refuses instead of letting CPython abort.

use core::fmt;

/// Why an operation on the thread state was refused.
///
/// CPython answers most misuse of its thread-state API with `Fatal Python error`, a hang,
/// or by killing the thread. This crate checks the precondition first and returns one of
/// these values instead, so the caller can decide what to do.
///
/// # Examples
///
/// ```
/// use gilguard::{GilError, GilGuard};
///
/// // Restoring a frame that was never pushed is an error, not undefined behaviour.
/// let mut guard = GilGuard::new();
/// assert_eq!(guard.restore(), Err(GilError::NothingToRestore));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GilError {
    /// The Python runtime is not initialized (call [`initialize`](crate::initialize) first
    /// when embedding), or it has been finalized.
    NotInitialized,
    /// The Python runtime is finalizing: attaching a thread now would hang it or, on
    /// CPython 3.13 and older, end it with `pthread_exit`.
    Finalizing,
    /// The operation needs this thread to be attached (to hold the GIL), and it is not.
    NotAttached,
    /// [`GilGuard::restore`](crate::GilGuard::restore) was called on a guard with no frame
    /// left to undo.
    NothingToRestore,
}

impl fmt::Display for GilError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GilError::NotInitialized => "the Python runtime is not initialized",
            GilError::Finalizing => "the Python runtime is finalizing",
            GilError::NotAttached => {
                "this thread is not attached to a Python interpreter (it does not hold the GIL)"
            }
            GilError::NothingToRestore => "this GilGuard has no frame left to restore",
        })
    }
}

impl std::error::Error for GilError {}

static_assertions::assert_impl_all!(GilError: std::error::Error, Send, Sync, Unpin);
