//! With the `pyo3` feature: `pyo3::Python` tokens from this crate's guards, and a
//! [`without_gil`](crate::without_gil) that `pyo3` sees too.
//!
//! `pyo3` keeps its own per-thread count of attachment and trusts it: inside
//! `Python::attach`, a nested `Python::attach` hands out a token without asking CPython.
//! So releasing the GIL behind `pyo3`'s back and calling `Python::attach` inside would give
//! a token to a detached thread. With this feature, `without_gil` releases through
//! `pyo3`'s own `Python::detach`, which `pyo3` counts, and records the release on the frame
//! stack like its own.

#![allow(
    unsafe_code,
    reason = "vouches for `pyo3` tokens and hands detaching to `pyo3`"
)]

use pyo3::Python;

use crate::error::GilError;
use crate::error::refused;
use crate::guards::attached;
use crate::guards::stack::{self, Entry, Frame};
use crate::guards::with_gil::WithGil;
use crate::guards::with_gil::{try_with_gil, with_gil};
use crate::raw::epoch::epoch;
use crate::raw::ffi;

impl WithGil {
    /// A `pyo3` token for as long as the guard is borrowed, once CPython confirms that this
    /// thread is attached to the thread state the guard attached.
    ///
    /// # Panics
    ///
    /// If it is not (see [`try_python`](Self::try_python)).
    ///
    /// # Examples
    ///
    /// ```
    /// use pyo3::prelude::*;
    ///
    /// gilguard::initialize()?;
    /// let gil = gilguard::WithGil::acquire();
    /// let sum: i64 = gil.python().eval(c"40 + 2", None, None)?.extract()?;
    /// assert_eq!(sum, 42);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[track_caller]
    pub fn python(&self) -> Python<'_> {
        match self.try_python() {
            Ok(python) => python,
            Err(error) => refused("WithGil::python", "WithGil::try_python", error),
        }
    }

    /// A `pyo3` token for as long as the guard is borrowed, or why there is none.
    ///
    /// # Errors
    ///
    /// [`GilError::NotAttached`] when this thread is not attached to the thread state the
    /// guard attached: code outside this crate detached it or ended it (the guard outlived
    /// the `Python::attach` or the C library's `PyGILState_Ensure` it was created in), the
    /// closure form it was created in has returned, or a closure form running now switched
    /// the thread to another interpreter.
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::{GilError, WithGil};
    /// use pyo3::Python;
    ///
    /// gilguard::initialize()?;
    /// // A guard that outlived the `Python::attach` it nested in.
    /// let gil = std::thread::spawn(|| {
    ///     let gil = Python::attach(|_| WithGil::acquire());
    ///     gil.try_python().map(|_| ())
    /// });
    /// assert_eq!(gil.join().unwrap(), Err(GilError::NotAttached));
    /// # Ok::<(), GilError>(())
    /// ```
    pub fn try_python(&self) -> Result<Python<'_>, GilError> {
        let attached = stack::frame(self.frame)
            .is_some_and(|frame| frame.main && frame.is_current(ffi::current_thread_state()));
        if attached {
            // SAFETY: attached to the main interpreter (the frame's thread state, confirmed
            // current just above), and `self` is borrowed for the token's lifetime: nothing
            // safe can detach the thread meanwhile (releasing and switching are closures
            // that put the thread back, or `unsafe`).
            Ok(unsafe { Python::assume_attached() })
        } else {
            Err(GilError::NotAttached)
        }
    }
}

/// [`with_gil`], handing the closure a `pyo3` token for the main interpreter.
///
/// # Panics
///
/// As [`with_gil`].
///
/// # Examples
///
/// ```
/// use pyo3::types::PyAnyMethods;
///
/// gilguard::initialize()?;
/// let answer = std::thread::spawn(|| {
///     gilguard::with_python(|py| py.eval(c"6 * 7", None, None)?.extract::<i64>())
/// });
/// assert_eq!(answer.join().unwrap()?, 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// The token and what it borrows stay in the main interpreter: a closure that switches the
/// thread to a sub-interpreter cannot capture them.
///
/// ```compile_fail,E0277
/// use pyo3::types::{PyList, PyListMethods};
///
/// gilguard::initialize().unwrap();
/// let interpreter = gilguard::SubInterpreter::new().unwrap();
/// let handle = interpreter.thread_state().unwrap();
/// gilguard::with_python(|py| {
///     let list = PyList::empty(py);
///     handle.run(|| list.append(1)) // `Bound<'py, PyList>` is not `Send`
/// });
/// ```
#[track_caller]
pub fn with_python<T>(f: impl for<'py> FnOnce(Python<'py>) -> T) -> T {
    // SAFETY: `with_gil` runs its closure attached to the main interpreter; the token
    // cannot leave the closure (its lifetime is the closure's own).
    with_gil(|| f(unsafe { Python::assume_attached() }))
}

/// [`try_with_gil`], handing the closure a `pyo3` token.
///
/// # Errors
///
/// As [`try_with_gil`].
///
/// # Examples
///
/// ```
/// gilguard::initialize()?;
/// let major = gilguard::try_with_python(|py| py.version_info().major)?;
/// assert_eq!(major, 3);
/// # Ok::<(), gilguard::GilError>(())
/// ```
pub fn try_with_python<T>(f: impl for<'py> FnOnce(Python<'py>) -> T) -> Result<T, GilError> {
    // SAFETY: as in `with_python`.
    try_with_gil(|| f(unsafe { Python::assume_attached() }))
}

/// Runs `f` detached through `pyo3`'s `Python::detach`, if this thread is attached to a
/// main-interpreter thread state; gives `f` back otherwise. `pyo3` drains the references it
/// deferred when it re-attaches: only the main interpreter's may be released there.
pub(crate) fn detach<F, T>(f: F) -> Result<T, F>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    match attached_main() {
        Some(tstate) => Ok(detach_main(tstate, f)),
        None => Err(f),
    }
}

/// See [`outside_pyo3`](crate::guards::outside_pyo3).
pub(crate) fn outside_pyo3<T>(f: impl FnOnce(bool) -> T) -> T {
    let Some(tstate) = attached_main() else {
        return f(false);
    };
    let on_this_thread = SameThread(f);
    detach_main(tstate, move || {
        SameThread(on_this_thread.into_inner()(true))
    })
    .into_inner()
}

/// The main-interpreter thread state attached to this thread, if any.
fn attached_main() -> Option<*mut crate::raw::ffi::PyThreadState> {
    let tstate = attached::attached_thread_state();
    // SAFETY: a thread state attached to this thread is live.
    (!tstate.is_null() && unsafe { ffi::is_main_interpreter_state(tstate) }).then_some(tstate)
}

/// Runs `f` inside `pyo3`'s `Python::detach`, which detaches `tstate`, attached to this
/// thread, and re-attaches it after `f`; recorded on the frame stack like a release.
fn detach_main<F, T>(tstate: *mut crate::raw::ffi::PyThreadState, f: F) -> T
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    let owned = attached::owns(tstate);
    // A pointer is not `Send`; the address crosses into the closure, which runs on this
    // thread.
    let address = tstate as usize;
    // SAFETY: this thread is attached (the caller's), which is all `assume_attached`
    // requires; the token is consumed by `detach` at once.
    let python = unsafe { Python::assume_attached() };
    python.detach(move || {
        // `pyo3` detached the thread state just now, and re-attaches it after the closure.
        let released = Frame {
            stamp: epoch(),
            ..Frame::new(Entry::ReleasedByPyo3, address as *mut _, false, owned)
        };
        let _released = stack::Scope {
            index: stack::push(released),
            likely: Entry::ReleasedByPyo3,
        };
        f()
    })
}

/// A value moved into `pyo3`'s `Python::detach`, whose closure runs on the calling thread
/// before it returns.
struct SameThread<T>(T);

// SAFETY: the value never leaves the thread that made it: it is only moved into and out of
// `Python::detach`'s closure, which runs on the calling thread before `detach` returns.
unsafe impl<T> Send for SameThread<T> {}

impl<T> SameThread<T> {
    /// The value (a method, so that closures capture the whole wrapper, not its field).
    fn into_inner(self) -> T {
        self.0
    }
}
