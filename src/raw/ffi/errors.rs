//! The error indicator and exception objects: taking, restoring and raising exceptions.
//! The thread is attached, to the interpreter the objects belong to; taking the indicator
//! hands its references to the caller, and restoring or setting it steals them.

#![allow(unsafe_code, reason = "the C layer: every wrapper calls C")]

use pyo3_ffi::PyObject;

/// A thread's pending exception, taken out of its error indicator by [`take_error`].
#[cfg(Py_3_12)]
pub(crate) struct SavedError(*mut PyObject);
/// A thread's pending exception, taken out of its error indicator by [`take_error`].
#[cfg(not(Py_3_12))]
pub(crate) struct SavedError([*mut PyObject; 3]);

/// Takes the attached thread's pending exception, if any, out of its error indicator, so
/// that Python code run before [`restore_error`] starts with none (CPython functions must
/// not be called with one set) and cannot lose it.
///
/// # Safety
/// The thread is attached; the result is passed to [`restore_error`] on this thread.
pub(crate) unsafe fn take_error() -> SavedError {
    // SAFETY: attached (caller); takes over the references the indicator held.
    unsafe {
        #[cfg(Py_3_12)]
        let saved = SavedError(pyo3_ffi::PyErr_GetRaisedException());
        #[cfg(not(Py_3_12))]
        let saved = {
            let mut parts = [core::ptr::null_mut(); 3];
            let [kind, value, traceback] = &mut parts;
            pyo3_ffi::PyErr_Fetch(kind, value, traceback);
            SavedError(parts)
        };
        saved
    }
}

/// Puts back what [`take_error`] took, replacing whatever the indicator holds by then.
///
/// # Safety
/// The thread is attached.
pub(crate) unsafe fn restore_error(saved: SavedError) {
    // SAFETY: attached (caller); hands the references back to the indicator (all null
    // clears it).
    unsafe {
        #[cfg(Py_3_12)]
        pyo3_ffi::PyErr_SetRaisedException(saved.0);
        #[cfg(not(Py_3_12))]
        {
            let [kind, value, traceback] = saved.0;
            pyo3_ffi::PyErr_Restore(kind, value, traceback);
        }
    }
}

/// The attached thread's raised exception as one object (a new reference, normalized: an
/// instance carrying its traceback, as 3.12 keeps it), clearing the error indicator; null if
/// none is set.
///
/// # Safety
/// The thread is attached.
pub(crate) unsafe fn take_raised_exception() -> *mut PyObject {
    #[cfg(Py_3_12)]
    {
        // SAFETY: attached (caller); hands over the indicator's reference.
        unsafe { pyo3_ffi::PyErr_GetRaisedException() }
    }
    #[cfg(not(Py_3_12))]
    {
        let [mut kind, mut value, mut traceback] = [core::ptr::null_mut(); 3];
        // SAFETY: attached (caller). The three references fetched (then normalized) are owned
        // here: `value` is returned, keeping its own reference to the traceback; the others go.
        unsafe {
            pyo3_ffi::PyErr_Fetch(&mut kind, &mut value, &mut traceback);
            if kind.is_null() {
                return core::ptr::null_mut();
            }
            pyo3_ffi::PyErr_NormalizeException(&mut kind, &mut value, &mut traceback);
            if !value.is_null() && !traceback.is_null() {
                pyo3_ffi::PyException_SetTraceback(value, traceback);
            }
            pyo3_ffi::Py_XDECREF(traceback);
            pyo3_ffi::Py_XDECREF(kind);
        }
        value
    }
}

/// Sets `exception` (an instance of an exception type, as [`take_raised_exception`] returns
/// it) as the attached thread's raised exception, stealing the reference.
///
/// # Safety
/// The thread is attached to the interpreter `exception` belongs to; `exception` is a
/// strong reference to an exception instance, given up here.
pub(crate) unsafe fn set_raised_exception(exception: *mut PyObject) {
    #[cfg(Py_3_12)]
    {
        // SAFETY: attached, an exception instance (caller); steals the reference.
        unsafe { pyo3_ffi::PyErr_SetRaisedException(exception) };
    }
    #[cfg(not(Py_3_12))]
    {
        // SAFETY: attached, an exception instance (caller); `PyErr_Restore` steals three
        // references: a new one to the type, the caller's instance, the traceback's (or null).
        unsafe {
            let kind = pyo3_ffi::Py_TYPE(exception).cast::<PyObject>();
            pyo3_ffi::Py_INCREF(kind);
            let traceback = pyo3_ffi::PyException_GetTraceback(exception);
            pyo3_ffi::PyErr_Restore(kind, exception, traceback);
        }
    }
}

/// `PythonFinalizationError` (3.13+), a subclass of `RuntimeError`. `pyo3-ffi` 0.30 does not
/// declare it; CPython 3.13 exports it (`Include/cpython/pyerrors.h`).
#[cfg(Py_3_13)]
fn python_finalization_error() -> *mut PyObject {
    unsafe extern "C" {
        static mut PyExc_PythonFinalizationError: *mut PyObject;
    }
    // SAFETY: a static CPython sets once at start-up and never writes again; read by value.
    unsafe { PyExc_PythonFinalizationError }
}

/// A built-in Python exception type, for a [`PythonException`](crate::PythonException) made
/// in Rust.
///
/// # Examples
///
/// ```
/// use gilguard::{ExceptionKind, PythonException};
///
/// let error = PythonException::new(ExceptionKind::ValueError, "n must be positive");
/// assert_eq!(error.to_string(), "ValueError: n must be positive");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExceptionKind {
    /// `ArithmeticError`.
    ArithmeticError,
    /// `AttributeError`.
    AttributeError,
    /// `BufferError`.
    BufferError,
    /// `IndexError`.
    IndexError,
    /// `KeyError`.
    KeyError,
    /// `LookupError`.
    LookupError,
    /// `MemoryError`.
    MemoryError,
    /// `NotImplementedError`.
    NotImplementedError,
    /// `OSError`.
    OSError,
    /// `OverflowError`.
    OverflowError,
    /// `PythonFinalizationError` on CPython 3.13+, `RuntimeError` (its base class) before.
    PythonFinalizationError,
    /// `RuntimeError`.
    RuntimeError,
    /// `SystemError`: an internal error, such as a C call that failed without setting an
    /// exception.
    SystemError,
    /// `TimeoutError`.
    TimeoutError,
    /// `TypeError`.
    TypeError,
    /// `ValueError`.
    ValueError,
    /// `ZeroDivisionError`.
    ZeroDivisionError,
}

impl ExceptionKind {
    /// The type's name, as Python prints it.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(gilguard::ExceptionKind::KeyError.name(), "KeyError");
    /// ```
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            ExceptionKind::ArithmeticError => "ArithmeticError",
            ExceptionKind::AttributeError => "AttributeError",
            ExceptionKind::BufferError => "BufferError",
            ExceptionKind::IndexError => "IndexError",
            ExceptionKind::KeyError => "KeyError",
            ExceptionKind::LookupError => "LookupError",
            ExceptionKind::MemoryError => "MemoryError",
            ExceptionKind::NotImplementedError => "NotImplementedError",
            ExceptionKind::OSError => "OSError",
            ExceptionKind::OverflowError => "OverflowError",
            #[cfg(Py_3_13)]
            ExceptionKind::PythonFinalizationError => "PythonFinalizationError",
            #[cfg(not(Py_3_13))]
            ExceptionKind::PythonFinalizationError => "RuntimeError",
            ExceptionKind::RuntimeError => "RuntimeError",
            ExceptionKind::SystemError => "SystemError",
            ExceptionKind::TimeoutError => "TimeoutError",
            ExceptionKind::TypeError => "TypeError",
            ExceptionKind::ValueError => "ValueError",
            ExceptionKind::ZeroDivisionError => "ZeroDivisionError",
        }
    }

    /// The type object: a static object that every interpreter shares and none frees.
    pub(crate) fn type_object(self) -> *mut PyObject {
        // SAFETY: reads statics CPython sets at start-up and never writes again.
        unsafe {
            match self {
                ExceptionKind::ArithmeticError => pyo3_ffi::PyExc_ArithmeticError,
                ExceptionKind::AttributeError => pyo3_ffi::PyExc_AttributeError,
                ExceptionKind::BufferError => pyo3_ffi::PyExc_BufferError,
                ExceptionKind::IndexError => pyo3_ffi::PyExc_IndexError,
                ExceptionKind::KeyError => pyo3_ffi::PyExc_KeyError,
                ExceptionKind::LookupError => pyo3_ffi::PyExc_LookupError,
                ExceptionKind::MemoryError => pyo3_ffi::PyExc_MemoryError,
                ExceptionKind::NotImplementedError => pyo3_ffi::PyExc_NotImplementedError,
                ExceptionKind::OSError => pyo3_ffi::PyExc_OSError,
                ExceptionKind::OverflowError => pyo3_ffi::PyExc_OverflowError,
                #[cfg(Py_3_13)]
                ExceptionKind::PythonFinalizationError => python_finalization_error(),
                #[cfg(not(Py_3_13))]
                ExceptionKind::PythonFinalizationError => pyo3_ffi::PyExc_RuntimeError,
                ExceptionKind::RuntimeError => pyo3_ffi::PyExc_RuntimeError,
                ExceptionKind::SystemError => pyo3_ffi::PyExc_SystemError,
                ExceptionKind::TimeoutError => pyo3_ffi::PyExc_TimeoutError,
                ExceptionKind::TypeError => pyo3_ffi::PyExc_TypeError,
                ExceptionKind::ValueError => pyo3_ffi::PyExc_ValueError,
                ExceptionKind::ZeroDivisionError => pyo3_ffi::PyExc_ZeroDivisionError,
            }
        }
    }
}

/// Sets an exception of `kind` with `message` as this thread's (replacing any); a message
/// that cannot be made leaves CPython's `MemoryError` set instead.
///
/// # Safety
/// This thread is attached.
pub(crate) unsafe fn raise(kind: ExceptionKind, message: &str) {
    // SAFETY: attached (caller). The type is a static object shared by every interpreter;
    // the message is a new reference released after `PyErr_SetObject`, which takes its own.
    unsafe {
        let message = super::objects::new_str(message);
        if !message.is_null() {
            pyo3_ffi::PyErr_SetObject(kind.type_object(), message);
            pyo3_ffi::Py_DECREF(message);
        }
    }
}
