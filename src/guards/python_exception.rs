//! The two conversions every extension module on the raw C API writes around the guards:
//! [`GilError::raise_in_python`], a refusal as a Python exception, and [`PythonException`],
//! a Python exception carried from a native worker thread back to the thread that waits
//! for it.

#![allow(
    unsafe_code,
    reason = "reads and sets the error indicator, and releases a reference (C preconditions: raw::ffi)"
)]

use core::ffi::{CStr, c_char};
use core::fmt;
use core::ptr::NonNull;

use pyo3_ffi::PyObject;

use crate::error::GilError;
use crate::guards::attached::{attached_thread_state, is_attached};
use crate::guards::with_gil::try_with_gil;
use crate::raw::epoch::epoch;
use crate::raw::ffi;
use crate::runtime;

impl GilError {
    /// Sets this error as the Python exception of the attached thread, replacing any that is
    /// set, so that an extension function can return `NULL` (or `-1`) to its Python caller.
    ///
    /// The message is this error's [`Display`](core::fmt::Display) text. The type is
    /// `RuntimeError`, except [`GilError::Finalizing`], which is `PythonFinalizationError`
    /// on CPython 3.13+ (a subclass of `RuntimeError`, so `except RuntimeError` catches it
    /// on every version), and [`GilError::InvalidConfig`], which is `ValueError`.
    ///
    /// Safe: it checks that this thread is attached, and the exception types are static
    /// objects shared by every interpreter, so it works in a sub-interpreter as well.
    ///
    /// # Errors
    /// [`GilError::NotAttached`] if this thread is not attached; then nothing is set.
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::{GilError, with_gil};
    ///
    /// gilguard::initialize()?; // only when embedding
    /// with_gil(|| {
    ///     GilError::Finalizing.raise_in_python().unwrap();
    ///     // An extension function would now `return core::ptr::null_mut();`.
    ///     let exception = gilguard::PythonException::take().unwrap().unwrap();
    ///     assert_eq!(exception.message(), "the Python runtime is finalizing");
    /// });
    /// // Detached, nothing can be set.
    /// assert_eq!(GilError::NotAttached.raise_in_python(), Err(GilError::NotAttached));
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    pub fn raise_in_python(&self) -> Result<(), GilError> {
        if !is_attached() {
            return Err(GilError::NotAttached);
        }
        let text = self.to_string();
        // SAFETY: attached (checked above). The type is a static object, never freed; the
        // message is a new reference released here after `PyErr_SetObject`, which takes its
        // own. A message that cannot be made leaves CPython's `MemoryError` set instead.
        // C preconditions: raw::ffi, PyUnicode_FromStringAndSize, PyErr_SetObject.
        unsafe {
            let message =
                pyo3_ffi::PyUnicode_FromStringAndSize(text.as_ptr().cast(), text.len() as isize);
            if message.is_null() {
                return Ok(());
            }
            pyo3_ffi::PyErr_SetObject(self.python_type(), message);
            pyo3_ffi::Py_DECREF(message);
        }
        Ok(())
    }

    /// The Python exception type [`raise_in_python`](GilError::raise_in_python) sets.
    fn python_type(&self) -> *mut PyObject {
        // SAFETY: reads statics CPython sets at start-up and never writes again.
        unsafe {
            match self {
                #[cfg(Py_3_13)]
                GilError::Finalizing => ffi::python_finalization_error(),
                GilError::InvalidConfig(_) => pyo3_ffi::PyExc_ValueError,
                _ => pyo3_ffi::PyExc_RuntimeError,
            }
        }
    }
}

/// A Python exception taken out of an attached thread, which can be sent to another thread,
/// read there without the GIL, and raised again there once attached.
///
/// A native worker thread that calls Python (inside [`with_gil`](crate::with_gil)) cannot
/// let an exception propagate: its caller is the thread that started it, not Python. It
/// [`take`](PythonException::take)s the exception instead and returns it; the thread that
/// waits for the worker (typically inside [`without_gil`](crate::without_gil), whose result
/// must be `Send`) then [`restore`](PythonException::restore)s it, and its extension
/// function returns `NULL`, so the Python caller sees the original exception: same type,
/// same object, same traceback.
///
/// The value holds a strong reference to the exception and remembers which interpreter and
/// which runtime it came from. [`message`](PythonException::message) and
/// [`type_name`](PythonException::type_name) are read when it is taken, so that printing it
/// (`Display`, `Debug`) never touches Python. Dropping it releases the reference: at once
/// if this thread is attached to that interpreter, else by attaching with
/// [`try_with_gil`](crate::try_with_gil) for the main interpreter. When that is not possible
/// (the runtime is finalizing or gone, or the exception came from a sub-interpreter this
/// thread is not attached to) the reference is leaked instead: a leak is safe, a release
/// without the interpreter's GIL is not.
///
/// # Examples
///
/// ```
/// use gilguard::{PythonException, ffi, with_gil, without_gil};
///
/// gilguard::initialize()?; // only when embedding; an extension module is attached already
/// let _gil = gilguard::WithGil::acquire(); // stands for the extension function's caller
///
/// // Wait for the worker detached, so that it can attach; its result comes back `Send`.
/// let result = without_gil(|| {
///     std::thread::spawn(|| {
///         with_gil(|| {
///             // A Python call failed on the worker: here, one raised by hand.
///             // SAFETY: attached (`with_gil`); the type is static, the message a literal.
///             unsafe { ffi::PyErr_SetString(ffi::PyExc_KeyError, c"on the worker".as_ptr()) };
///             PythonException::take().unwrap().unwrap()
///         })
///     })
///     .join()
///     .unwrap()
/// });
///
/// // Readable without the GIL, on any thread.
/// assert_eq!(result.type_name(), "KeyError");
/// assert_eq!(result.message(), "'on the worker'");
///
/// // Back on the attached thread: set it again, as an extension function would before
/// // returning NULL.
/// result.restore()?;
/// // SAFETY: attached (`_gil`); compares against a static type object.
/// unsafe {
///     assert_eq!(ffi::PyErr_ExceptionMatches(ffi::PyExc_KeyError), 1);
///     ffi::PyErr_Clear();
/// }
/// # Ok::<(), gilguard::GilError>(())
/// ```
pub struct PythonException {
    /// A strong reference to the exception instance (with its traceback).
    exception: NonNull<PyObject>,
    /// `PyInterpreterState_GetID` of the interpreter it was taken in.
    interpreter: i64,
    /// Whether that is the main interpreter, which [`try_with_gil`] can attach to.
    main: bool,
    /// The runtime it was taken in.
    epoch: u64,
    type_name: String,
    message: String,
}

// SAFETY: the value is a strong reference plus plain data. CPython ties an object to an
// interpreter, not to a thread: any thread attached to that interpreter (holding its GIL)
// may use it and release it. This type touches the reference only in `restore` and `Drop`,
// and both first check that this thread is attached to the very interpreter it was taken in
// (by id, in the same runtime epoch), or attach to it (the main interpreter), or else
// leak it. Shared access (`&self`) reads only the Rust strings taken at capture.
unsafe impl Send for PythonException {}
// SAFETY: see `Send`: no `&self` method touches the Python object.
unsafe impl Sync for PythonException {}

impl PythonException {
    /// Takes the exception set on this thread, if any, clearing it (the error indicator is
    /// empty afterwards).
    ///
    /// Also reads `str(exception)` and the name of its type into Rust strings (a `str()`
    /// that raises gives `<str() failed>`); this runs Python code, with the exception
    /// already taken out.
    ///
    /// # Errors
    /// [`GilError::NotAttached`] if this thread is not attached, and
    /// [`GilError::Unsupported`] if other code took every `Py_AtExit` slot (the crate could
    /// not tell this runtime from a later one); the exception stays set then.
    ///
    /// Returns `Ok(None)` when no exception is set.
    pub fn take() -> Result<Option<PythonException>, GilError> {
        let tstate = attached_thread_state();
        if tstate.is_null() {
            return Err(GilError::NotAttached);
        }
        // So that the epoch moves on when this runtime finalizes, whoever started it and in
        // whichever interpreter: `restore` and `Drop` rely on it.
        let epoch = runtime::watched_epoch()?;
        // SAFETY: `tstate` is attached to this thread, so live.
        // C preconditions: raw::ffi, PyThreadState_GetInterpreter, PyInterpreterState_GetID.
        let (interpreter, main) = unsafe {
            let interp = pyo3_ffi::PyThreadState_GetInterpreter(tstate);
            (
                pyo3_ffi::PyInterpreterState_GetID(interp),
                interp == ffi::main_interpreter(),
            )
        };
        // SAFETY: attached (above); the result is a new reference or null.
        let Some(exception) = NonNull::new(unsafe { ffi::take_raised_exception() }) else {
            return Ok(None);
        };
        // SAFETY: attached, no exception set; `exception` is a live instance.
        let (type_name, message) = unsafe { (type_name(exception), message(exception)) };
        Ok(Some(PythonException {
            exception,
            interpreter,
            main,
            epoch,
            type_name,
            message,
        }))
    }

    /// Sets the exception again as this thread's raised exception (replacing any that is
    /// set), unchanged: the same object, with its traceback. An extension function then
    /// returns `NULL` to let it propagate to its Python caller.
    ///
    /// # Errors
    /// [`GilError::NotInitialized`] if the runtime the exception was taken in has been
    /// finalized, and [`GilError::NotAttached`] if this thread is not attached to the
    /// interpreter it was taken in. The exception is then dropped (see the type's docs for
    /// what that does).
    pub fn restore(self) -> Result<(), GilError> {
        if !self.attached_to_its_interpreter() {
            return Err(if self.runtime_is_gone() {
                GilError::NotInitialized
            } else {
                GilError::NotAttached
            });
        }
        let exception = self.exception.as_ptr();
        // SAFETY: attached to the exception's interpreter (checked above). The indicator
        // takes a new reference; `self`'s own is released when it drops just below, still
        // attached.
        // C preconditions: raw::ffi, Py_INCREF.
        unsafe {
            pyo3_ffi::Py_INCREF(exception);
            ffi::set_raised_exception(exception);
        }
        drop(self);
        Ok(())
    }

    /// The name of the exception's type (`tp_name`: `"ValueError"`, or for a class defined
    /// in Python, its name), read when the exception was taken.
    #[must_use]
    pub fn type_name(&self) -> &str {
        &self.type_name
    }

    /// `str(exception)`, read when the exception was taken.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the runtime the exception came from has finalized (as far as the crate saw).
    fn runtime_is_gone(&self) -> bool {
        epoch() != self.epoch || !runtime::is_initialized()
    }

    /// Whether this thread is attached to the interpreter the exception came from, in the
    /// runtime it came from.
    fn attached_to_its_interpreter(&self) -> bool {
        if self.runtime_is_gone() {
            return false;
        }
        let tstate = attached_thread_state();
        // SAFETY: `tstate`, when not null, is attached to this thread, so live.
        // C preconditions: raw::ffi, PyThreadState_GetInterpreter, PyInterpreterState_GetID.
        !tstate.is_null()
            && unsafe {
                pyo3_ffi::PyInterpreterState_GetID(pyo3_ffi::PyThreadState_GetInterpreter(tstate))
            } == self.interpreter
    }
}

impl Drop for PythonException {
    fn drop(&mut self) {
        let exception = self.exception.as_ptr();
        if self.attached_to_its_interpreter() {
            // SAFETY: attached to the exception's interpreter; releases the reference this
            // value owns (may run Python code: finalizers).
            // C preconditions: raw::ffi, Py_DECREF.
            unsafe { pyo3_ffi::Py_DECREF(exception) };
            return;
        }
        if self.main && !self.runtime_is_gone() {
            // Fails (and leaks) if the runtime is finalizing or gone.
            let _ = try_with_gil(|| {
                // SAFETY: attached to the main interpreter (`try_with_gil`), of the runtime
                // the exception was taken in (same epoch); releases the owned reference.
                // C preconditions: raw::ffi, Py_DECREF.
                unsafe { pyo3_ffi::Py_DECREF(exception) };
            });
        }
        // Otherwise leaked: its interpreter may be gone, or only reachable by a handle.
    }
}

impl fmt::Debug for PythonException {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PythonException")
            .field("type_name", &self.type_name)
            .field("message", &self.message)
            .field("interpreter", &self.interpreter)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for PythonException {
    /// As Python prints the last line of a traceback: `ValueError: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            f.write_str(&self.type_name)
        } else {
            write!(f, "{}: {}", self.type_name, self.message)
        }
    }
}

impl std::error::Error for PythonException {}

/// `tp_name` of `exception`'s type.
///
/// # Safety
/// Attached to `exception`'s interpreter; `exception` is live.
unsafe fn type_name(exception: NonNull<PyObject>) -> String {
    // SAFETY: live object (caller); `tp_name` is a NUL-terminated string that lives as long
    // as the type, which the object keeps alive.
    unsafe {
        let name: *const c_char = (*pyo3_ffi::Py_TYPE(exception.as_ptr())).tp_name;
        CStr::from_ptr(name).to_string_lossy().into_owned()
    }
}

/// `str(exception)`, or `<str() failed>`.
///
/// # Safety
/// Attached to `exception`'s interpreter, with no exception set; `exception` is live.
unsafe fn message(exception: NonNull<PyObject>) -> String {
    // SAFETY: attached, nothing set (caller). `PyObject_Str` returns a new reference (or
    // null with an exception set, cleared here); the UTF-8 buffer belongs to the string and
    // is copied before the string is released.
    // C preconditions: raw::ffi, PyObject_Str, PyUnicode_AsUTF8AndSize.
    unsafe {
        let text = pyo3_ffi::PyObject_Str(exception.as_ptr());
        if text.is_null() {
            pyo3_ffi::PyErr_Clear();
            return String::from("<str() failed>");
        }
        let mut len = 0;
        let utf8 = pyo3_ffi::PyUnicode_AsUTF8AndSize(text, &mut len);
        let message = if utf8.is_null() {
            pyo3_ffi::PyErr_Clear();
            String::from("<str() failed>")
        } else {
            let bytes = core::slice::from_raw_parts(utf8.cast::<u8>(), len as usize);
            String::from_utf8_lossy(bytes).into_owned()
        };
        pyo3_ffi::Py_DECREF(text);
        message
    }
}

static_assertions::assert_impl_all!(PythonException: Send, Sync, std::error::Error);
