//! [`boundary`]: the body of an extension function, with its errors and panics turned into
//! the Python exception its caller expects.

use core::ffi::c_int;
use core::panic::AssertUnwindSafe;

use crate::raw::ffi::{Py_ssize_t, PyObject};

use crate::objects::python_exception::PythonException;
use crate::raw::ffi::ExceptionKind;

/// Runs the body of a function that Python calls (an extension function, a slot, a callback
/// handed to a C library), and returns what that function must return to Python: `f`'s
/// value, or, if `f` returned an error or panicked, the value that signals an error with
/// the exception set.
///
/// A panic must not unwind into Python's C frames: Rust aborts the process when it reaches
/// an `extern "C"` function ("panic in a function that cannot unwind"). Here the panic is
/// caught, after unwinding has dropped every guard made in `f` (so the thread is back in
/// the state the function was called in), and raised as a `RuntimeError` naming it, as
/// C++ binders translate exceptions (`pyo3` raises its own `PanicException`). An error is
/// raised as [`PythonException::restore`] does; one taken in another interpreter than the
/// current one (which cannot be raised here) is raised as a `RuntimeError` with its text.
///
/// The function is called attached, as CPython calls extension functions; if it is not (a
/// callback on a thread that never attached), nothing can be raised, and the error is
/// printed to stderr instead.
///
/// # Examples
///
/// ```
/// use gilguard::{ExceptionKind, PythonException, boundary, ffi, without_gil};
///
/// /// `half(n)`: `n / 2` for an even `n`, computed without the GIL.
/// extern "C" fn half(_module: *mut ffi::PyObject, n: *mut ffi::PyObject) -> *mut ffi::PyObject {
///     boundary(|| {
///         // SAFETY: called attached with a borrowed argument (METH_O).
///         let n = unsafe { ffi::PyLong_AsLongLong(n) };
///         if n == -1 {
///             return Err(PythonException::fetch()); // not an int: the exception is set
///         }
///         if n % 2 != 0 {
///             return Err(PythonException::new(ExceptionKind::ValueError, "odd"));
///         }
///         let half = without_gil(|| if n < 0 { panic!("negative") } else { n / 2 });
///         // SAFETY: attached again; a new reference or null with an exception set.
///         Ok(unsafe { ffi::PyLong_FromLongLong(half) })
///     })
/// }
///
/// gilguard::initialize()?;
/// gilguard::with_gil(|| {
///     // SAFETY: attached; the argument is a new reference, released after the call.
///     let call = |n| unsafe {
///         let n = ffi::PyLong_FromLongLong(n);
///         let result = half(core::ptr::null_mut(), n);
///         ffi::Py_DECREF(n);
///         if result.is_null() {
///             Err(PythonException::fetch().to_string())
///         } else {
///             let value = ffi::PyLong_AsLongLong(result);
///             ffi::Py_DECREF(result);
///             Ok(value)
///         }
///     };
///     assert_eq!(call(8), Ok(4));
///     assert_eq!(call(7), Err("ValueError: odd".to_owned()));
///     assert_eq!(call(-2), Err("RuntimeError: Rust panic: negative".to_owned()));
///     assert!(gilguard::is_attached()); // the panic left the thread as it was
/// });
/// # Ok::<(), gilguard::GilError>(())
/// ```
pub fn boundary<R: ErrorValue>(f: impl FnOnce() -> Result<R, PythonException>) -> R {
    let exception = match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => return value,
        Ok(Err(exception)) => exception,
        Err(panic) => PythonException::from_panic(panic),
    };
    raise(exception);
    R::ERROR
}

/// Sets `exception` as the attached thread's Python exception, or a `RuntimeError` with its
/// text where it cannot be raised as it is; prints it if nothing can be set.
fn raise(exception: PythonException) {
    let text = exception.to_string();
    if exception.restore().is_ok() {
        return;
    }
    let copy = PythonException::new(ExceptionKind::RuntimeError, text.clone());
    if let Err(refused) = copy.restore() {
        eprintln!("gilguard::boundary: could not raise {text} ({refused})");
    }
}

/// What a function called by Python returns to signal an error (with an exception set):
/// the return types of [`boundary`].
///
/// # Examples
///
/// ```
/// use gilguard::ErrorValue;
///
/// assert!(<*mut gilguard::ffi::PyObject as ErrorValue>::ERROR.is_null());
/// assert_eq!(<core::ffi::c_int as ErrorValue>::ERROR, -1);
/// ```
pub trait ErrorValue {
    /// The error value: `NULL` for an object, `-1` for a C `int` or `Py_ssize_t`.
    const ERROR: Self;
}

impl ErrorValue for *mut PyObject {
    const ERROR: Self = core::ptr::null_mut();
}

impl ErrorValue for c_int {
    const ERROR: Self = -1;
}

impl ErrorValue for Py_ssize_t {
    const ERROR: Self = -1;
}
