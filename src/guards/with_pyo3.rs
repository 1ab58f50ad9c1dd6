//! With the `pyo3` feature: `pyo3::Python` tokens from this crate's guards.

#![allow(unsafe_code, reason = "vouches for `pyo3` tokens")]

use pyo3::Python;

use crate::error::{GilError, refused};
use crate::guards::stack;
use crate::guards::with_gil::{WithGil, try_with_gil, with_gil};
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
            // SAFETY: attached to the main interpreter (confirmed above) for the token's life,
            // `self`'s borrow: safe code detaches only in closures, which put the thread back.
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
#[cfg_attr(feature = "stats", track_caller)]
pub fn try_with_python<T>(f: impl for<'py> FnOnce(Python<'py>) -> T) -> Result<T, GilError> {
    // SAFETY: as in `with_python`.
    try_with_gil(|| f(unsafe { Python::assume_attached() }))
}
