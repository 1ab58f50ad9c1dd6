//! [`GilError`]: every operation this crate refuses instead of letting CPython abort.

use core::fmt;

/// Why an operation on the thread state was refused.
///
/// CPython answers most misuse of its thread-state API with `Fatal Python error`, a hang,
/// or by killing the thread. This crate checks the precondition first and returns one of
/// these values instead, so the caller can decide what to do.
///
/// Match on the variant, not on the text: the `&'static str` of
/// [`InvalidConfig`](GilError::InvalidConfig) and [`Unsupported`](GilError::Unsupported) is
/// this crate's explanation for people, fixed at compile time (no allocation on the error
/// path), and may be reworded in any release; only
/// [`CreationFailed`](GilError::CreationFailed) carries a `String`, CPython's own message.
/// `GilError` is `Send + Sync + 'static`, so it converts into `Box<dyn Error + Send + Sync>`
/// and `anyhow`-style errors, and it is `Hash`, so it can be counted or deduplicated.
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
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
    /// The thread is attached to another interpreter's (or another) thread state, and a
    /// guard would have to suspend it. A guard that could be leaked must not do that: the
    /// code that attached it would continue in the wrong interpreter. Use the closure form
    /// ([`with_gil`](crate::with_gil), [`ThreadStateHandle::run`](crate::ThreadStateHandle::run)),
    /// which restores it exactly.
    AttachedElsewhere,
    /// The sub-interpreter still has thread states (a leaked
    /// [`ThreadStateHandle`](crate::ThreadStateHandle), or Python daemon threads), so it
    /// cannot be ended; CPython would abort with `Py_EndInterpreter: not the last thread`.
    InterpreterInUse,
    /// The sub-interpreter has been ended (or the runtime it belonged to was finalized).
    InterpreterEnded,
    /// This thread already has a [`ThreadStateHandle`](crate::ThreadStateHandle) for this
    /// interpreter: a thread uses one thread state per interpreter, reused for every attach.
    ThreadStateExists,
    /// An [`InterpreterConfig`](crate::InterpreterConfig) that CPython would reject or that
    /// would corrupt memory; the text says which rule it breaks.
    InvalidConfig(&'static str),
    /// A feature this CPython version (or this process) cannot provide; the text says
    /// which. Also returned when all of CPython's 32 `Py_AtExit` slots are taken by other
    /// code, since the crate then cannot tell when the runtime is finalized.
    Unsupported(&'static str),
    /// CPython failed to create a sub-interpreter; the text is CPython's message.
    CreationFailed(String),
}

impl fmt::Display for GilError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GilError::NotInitialized => f.write_str("the Python runtime is not initialized"),
            GilError::Finalizing => f.write_str("the Python runtime is finalizing"),
            GilError::NotAttached => f.write_str(
                "this thread is not attached to a Python interpreter (it does not hold the GIL)",
            ),
            GilError::NothingToRestore => f.write_str("this GilGuard has no frame left to restore"),
            GilError::AttachedElsewhere => f.write_str(
                "this thread is attached to another thread state, which a guard may not suspend \
                 (use the closure form, which restores it exactly)",
            ),
            GilError::InterpreterInUse => {
                f.write_str("the sub-interpreter still has other thread states and cannot be ended")
            }
            GilError::InterpreterEnded => f.write_str("the sub-interpreter has been ended"),
            GilError::ThreadStateExists => {
                f.write_str("this thread already has a thread state handle for this interpreter")
            }
            GilError::InvalidConfig(rule) => {
                write!(f, "invalid sub-interpreter configuration: {rule}")
            }
            GilError::Unsupported(what) => {
                write!(f, "not supported: {what}")
            }
            GilError::CreationFailed(message) => {
                write!(f, "CPython could not create the sub-interpreter: {message}")
            }
        }
    }
}

impl std::error::Error for GilError {}

/// The panic of the panicking forms, kept out of line so their fast path stays small.
#[cold]
#[inline(never)]
#[track_caller]
pub(crate) fn refused(what: &str, instead: &str, error: GilError) -> ! {
    panic!("{what}: {error} (use {instead} to handle this)")
}

static_assertions::assert_impl_all!(GilError: std::error::Error, Send, Sync, Unpin, core::hash::Hash);
