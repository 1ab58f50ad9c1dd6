//! Whether this thread is attached, and to which thread state: CPython first, then this
//! thread's context (see [`is_attached`] for why `PyGILState_Check` is not enough).

use crate::context::thread;
use crate::raw::ffi::{self, PyThreadState};

/// Whether this thread is attached to an interpreter (holds a GIL), whichever interpreter
/// that is.
///
/// Unlike `PyGILState_Check`, which answers 1 unconditionally once a sub-interpreter has
/// existed, this stays exact. On CPython 3.12+ it asks CPython for this thread's thread
/// state. On 3.9–3.11 CPython only knows which thread state holds the (single) GIL; it
/// belongs to this thread if it is the thread's `PyGILState` state or one this crate
/// attached on this thread. A sub-interpreter thread state attached by code outside this
/// crate on 3.9–3.11 is therefore not recognized (and acquiring a guard then deadlocks on
/// the GIL this thread holds; see [the guide, §2.5](crate::guide::rules)).
///
/// # Examples
///
/// ```
/// gilguard::initialize()?;
/// assert!(!gilguard::is_attached());
/// gilguard::with_gil(|| assert!(gilguard::is_attached()));
/// # Ok::<(), gilguard::GilError>(())
/// ```
#[must_use]
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
            || crate::context::queries::vouches_for(current)
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
    !tstate.is_null() && (tstate == thread::kept_thread_state() || thread::is_handle_state(tstate))
}
