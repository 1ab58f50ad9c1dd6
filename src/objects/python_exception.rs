//! [`PythonException`]: a Python exception, taken out of Python or made in Rust, carried
//! to the thread that raises it; [`ExceptionKind`], the built-in types one is made with; and
//! [`GilError::raise_in_python`], a refusal as a Python exception.

#![allow(
    unsafe_code,
    reason = "reads and sets the error indicator, and releases a reference (C preconditions: raw::ffi)"
)]

use core::fmt;
use core::ptr::NonNull;

use crate::context::attached::is_attached;
use crate::error::GilError;
use crate::interpreters::interpreter::Interpreter;
use crate::objects::owned_ref::OwnedRef;
use crate::raw::ffi::{self, ExceptionKind};

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
        PythonException::from(self.clone()).restore()
    }
}

/// A Python exception, taken out of an attached thread or made in Rust: `Send`, readable
/// on any thread without the GIL, and raised again where it is needed.
///
/// A native worker thread that calls Python (inside [`with_gil`](crate::with_gil)) cannot
/// let an exception propagate: its caller is the thread that started it, not Python. It
/// [`take`](PythonException::take)s the exception instead and returns it; the thread that
/// waits for the worker (typically inside [`without_gil`](crate::without_gil), whose result
/// must be `Send`) then [`restore`](PythonException::restore)s it, and its extension
/// function returns `NULL`, so the Python caller sees the original exception: same type,
/// same object, same traceback. [`boundary`](crate::boundary) does that last step for a
/// whole extension function, panics included.
///
/// One taken out of Python holds the exception as an [`OwnedRef`], which knows its
/// interpreter and runtime, releases it only there, and is restored only there. One made in
/// Rust ([`new`](PythonException::new), or converted from a [`GilError`] with `?`) names a
/// built-in type ([`ExceptionKind`]) and a message, and is created when it is raised, in any
/// interpreter. [`message`](PythonException::message) and
/// [`type_name`](PythonException::type_name) are Rust strings, so printing one (`Display`,
/// `Debug`) never touches Python.
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
///             PythonException::fetch()
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
    /// The exception instance (with its traceback) if it came from Python; `None` for one
    /// made in Rust, which is created when it is raised.
    object: Option<OwnedRef>,
    /// For one made in Rust, the type it is raised as.
    kind: ExceptionKind,
    type_name: String,
    message: String,
}

static_assertions::assert_impl_all!(PythonException: Send, Sync, std::error::Error);

impl PythonException {
    /// An exception of the built-in type `kind` with `message`, created when it is
    /// [`restore`](Self::restore)d, in whichever interpreter that is.
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::{ExceptionKind, PythonException, with_gil};
    ///
    /// gilguard::initialize()?;
    /// with_gil(|| {
    ///     PythonException::new(ExceptionKind::TypeError, "expected a list").restore()?;
    ///     let raised = PythonException::fetch();
    ///     assert_eq!(raised.to_string(), "TypeError: expected a list");
    ///     Ok::<(), gilguard::GilError>(())
    /// })?;
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    #[must_use]
    pub fn new(kind: ExceptionKind, message: impl Into<String>) -> PythonException {
        PythonException {
            object: None,
            kind,
            type_name: kind.name().to_owned(),
            message: message.into(),
        }
    }

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
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::{PythonException, with_gil};
    ///
    /// gilguard::initialize()?;
    /// assert!(with_gil(PythonException::take)?.is_none());
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    pub fn take() -> Result<Option<PythonException>, GilError> {
        // Named before the exception is taken: so that it stays set on a refusal, and the
        // runtime is watched (`OwnedRef` relies on it).
        let here = Interpreter::current()?;
        // SAFETY: attached (`current` checked it); the result is a new reference or null.
        let Some(exception) = NonNull::new(unsafe { ffi::take_raised_exception() }) else {
            return Ok(None);
        };
        // SAFETY: attached, no exception set; `exception` is a live instance.
        let (type_name, message) = unsafe {
            let message = ffi::str_of(exception.as_ptr());
            (ffi::type_name(exception.as_ptr()), message)
        };
        let message = message.unwrap_or_else(|| String::from("<str() failed>"));
        Ok(Some(PythonException {
            // SAFETY: a new reference of `here`, to which this thread is attached.
            object: Some(unsafe { OwnedRef::new(exception, here) }),
            kind: ExceptionKind::RuntimeError,
            type_name,
            message,
        }))
    }

    /// The exception set on this thread, taken out as [`take`](Self::take) does; for the
    /// moment right after a C call signalled failure. Never fails: if there is none to take
    /// (the call failed without setting one, the thread is not attached), it is a
    /// `SystemError` that says so.
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::{PythonException, ffi, with_gil};
    ///
    /// gilguard::initialize()?;
    /// let error = with_gil(|| {
    ///     // SAFETY: attached; a failing call, which sets `ImportError`.
    ///     let module = unsafe { ffi::PyImport_ImportModule(c"no_such_module".as_ptr()) };
    ///     assert!(module.is_null());
    ///     PythonException::fetch()
    /// });
    /// assert_eq!(error.type_name(), "ModuleNotFoundError");
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    #[must_use]
    pub fn fetch() -> PythonException {
        match PythonException::take() {
            Ok(Some(exception)) => exception,
            Ok(None) => PythonException::new(
                ExceptionKind::SystemError,
                "a C call failed without setting an exception",
            ),
            Err(error) => PythonException::new(
                ExceptionKind::SystemError,
                format!("no exception could be taken: {error}"),
            ),
        }
    }

    /// A `RuntimeError` for a Rust panic, with the panic's message if it had one, as
    /// [`std::panic::catch_unwind`] or [`JoinHandle::join`](std::thread::JoinHandle::join)
    /// hand it over.
    ///
    /// # Examples
    ///
    /// ```
    /// let panic = std::thread::spawn(|| panic!("worker {} failed", 3)).join().unwrap_err();
    /// let error = gilguard::PythonException::from_panic(panic);
    /// assert_eq!(error.to_string(), "RuntimeError: Rust panic: worker 3 failed");
    /// ```
    #[must_use]
    pub fn from_panic(payload: Box<dyn core::any::Any + Send>) -> PythonException {
        let text = match payload.downcast::<String>() {
            Ok(text) => *text,
            Err(payload) => match payload.downcast::<&'static str>() {
                Ok(text) => (*text).to_owned(),
                Err(_) => String::from("(a value that is not text)"),
            },
        };
        PythonException::new(ExceptionKind::RuntimeError, format!("Rust panic: {text}"))
    }

    /// Sets the exception as this thread's raised exception (replacing any that is set), so
    /// that an extension function returns `NULL` (or `-1`) to let it propagate to its
    /// Python caller. One taken out of Python is set again unchanged: the same object, with
    /// its traceback; one made in Rust is created now.
    ///
    /// # Errors
    /// [`GilError::NotAttached`] if this thread is not attached, or, for one taken out of
    /// Python, not to the interpreter it was taken in; [`GilError::NotInitialized`] if that
    /// interpreter's runtime has been finalized. The exception is then dropped (its
    /// reference released where that is sound, see [`OwnedRef`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::{ExceptionKind, GilError, PythonException};
    ///
    /// gilguard::initialize()?;
    /// let error = PythonException::new(ExceptionKind::ValueError, "bad");
    /// assert_eq!(error.restore(), Err(GilError::NotAttached)); // detached here
    /// # Ok::<(), GilError>(())
    /// ```
    pub fn restore(self) -> Result<(), GilError> {
        let Some(object) = &self.object else {
            if !is_attached() {
                return Err(GilError::NotAttached);
            }
            // SAFETY: attached (checked).
            unsafe { ffi::raise(self.kind, &self.message) };
            return Ok(());
        };
        match object.to_owned_ptr() {
            // SAFETY: attached to the exception's interpreter (`to_owned_ptr` checked it);
            // the indicator steals the new reference.
            Ok(exception) => unsafe { ffi::set_raised_exception(exception.as_ptr()) },
            Err(error) => {
                return Err(if object.interpreter().is_of_a_finalized_runtime() {
                    GilError::NotInitialized
                } else {
                    error
                });
            }
        }
        Ok(())
    }

    /// The name of the exception's type (`tp_name`: `"ValueError"`, or for a class defined
    /// in Python, its name).
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::{ExceptionKind, PythonException};
    ///
    /// assert_eq!(PythonException::new(ExceptionKind::KeyError, "k").type_name(), "KeyError");
    /// ```
    #[must_use]
    pub fn type_name(&self) -> &str {
        &self.type_name
    }

    /// `str(exception)`, read when the exception was taken (or the message it was made
    /// with).
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::{ExceptionKind, PythonException};
    ///
    /// assert_eq!(PythonException::new(ExceptionKind::KeyError, "k").message(), "k");
    /// ```
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The exception object, if it was taken out of Python.
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::{ExceptionKind, PythonException};
    ///
    /// assert!(PythonException::new(ExceptionKind::KeyError, "k").object().is_none());
    /// ```
    #[must_use]
    pub fn object(&self) -> Option<&OwnedRef> {
        self.object.as_ref()
    }
}

impl From<GilError> for PythonException {
    /// The exception [`GilError::raise_in_python`] raises: its `Display` text, as a
    /// `RuntimeError`, except [`GilError::Finalizing`] (`PythonFinalizationError` on 3.13+)
    /// and [`GilError::InvalidConfig`] (`ValueError`).
    fn from(error: GilError) -> PythonException {
        let kind = match error {
            GilError::Finalizing => ExceptionKind::PythonFinalizationError,
            GilError::InvalidConfig(_) => ExceptionKind::ValueError,
            _ => ExceptionKind::RuntimeError,
        };
        PythonException::new(kind, error.to_string())
    }
}

impl fmt::Debug for PythonException {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("PythonException");
        debug
            .field("type_name", &self.type_name)
            .field("message", &self.message);
        if let Some(object) = &self.object {
            debug.field("interpreter", &object.interpreter().id());
        }
        debug.finish_non_exhaustive()
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
