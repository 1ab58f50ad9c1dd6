//! A Python exception taken out of the thread state, so that it can be kept, raised again on
//! another thread of the same interpreter, or turned into text that may leave the
//! interpreter.

use core::ptr;

use pyo3_ffi as ffi;

use crate::py::{self, PyObj};

/// A fetched exception. CPython 3.12 keeps the raised exception as one object; before, it is
/// a (type, value, traceback) triple, normalized here so that the value is an instance.
#[derive(Debug)]
pub struct CapturedError {
    #[cfg(Py_3_12)]
    exception: PyObj,
    #[cfg(not(Py_3_12))]
    kind: PyObj,
    #[cfg(not(Py_3_12))]
    value: Option<PyObj>,
    #[cfg(not(Py_3_12))]
    traceback: Option<PyObj>,
}

impl CapturedError {
    /// Takes the exception that is set, clearing it; `None` if none is.
    ///
    /// # Safety
    /// The thread is attached.
    pub unsafe fn fetch() -> Option<CapturedError> {
        #[cfg(Py_3_12)]
        {
            // SAFETY: attached (caller); returns the raised exception as a new reference, or
            // null, and clears it.
            let exception = unsafe { ffi::PyErr_GetRaisedException() };
            Some(CapturedError {
                exception: PyObj::from_owned(exception)?,
            })
        }
        #[cfg(not(Py_3_12))]
        {
            let (mut kind, mut value, mut traceback) =
                (ptr::null_mut(), ptr::null_mut(), ptr::null_mut());
            // SAFETY: attached (caller). Fetching hands over three new (or null) references
            // and clears the error; normalizing replaces them with new references and makes
            // `value` an instance carrying its traceback, as 3.12 keeps it.
            unsafe {
                ffi::PyErr_Fetch(&mut kind, &mut value, &mut traceback);
                if kind.is_null() {
                    return None;
                }
                ffi::PyErr_NormalizeException(&mut kind, &mut value, &mut traceback);
                if !value.is_null() && !traceback.is_null() {
                    ffi::PyException_SetTraceback(value, traceback);
                }
            }
            Some(CapturedError {
                kind: PyObj::from_owned(kind)?,
                value: PyObj::from_owned(value),
                traceback: PyObj::from_owned(traceback),
            })
        }
    }

    /// Raises the exception again, unchanged (type, value and traceback).
    ///
    /// # Safety
    /// The thread is attached to the interpreter the exception was fetched in.
    pub unsafe fn restore(self) {
        // SAFETY: attached to the exception's interpreter (caller); restoring steals the
        // references this value owns.
        unsafe {
            #[cfg(Py_3_12)]
            ffi::PyErr_SetRaisedException(self.exception.into_ptr());
            #[cfg(not(Py_3_12))]
            ffi::PyErr_Restore(
                self.kind.into_ptr(),
                self.value.map_or(ptr::null_mut(), PyObj::into_ptr),
                self.traceback.map_or(ptr::null_mut(), PyObj::into_ptr),
            );
        }
    }

    /// Drops the exception.
    ///
    /// # Safety
    /// The thread is attached to the interpreter the exception was fetched in.
    pub unsafe fn release(self) {
        // SAFETY: raising it and clearing it releases every reference it owns.
        unsafe {
            self.restore();
            ffi::PyErr_Clear();
        }
    }

    /// The exception formatted as Python prints it (`traceback.format_exception`), consuming
    /// it. Falls back to `str(exception)` if formatting itself fails.
    ///
    /// # Safety
    /// The thread is attached to the interpreter the exception was fetched in, and no
    /// exception is set.
    pub unsafe fn into_text(self) -> String {
        // SAFETY: attached (caller); every reference made here is released, and any error
        // raised while formatting is cleared.
        unsafe {
            let (kind, value, traceback) = self.parts();
            let text = format_exception(kind, value, traceback)
                .or_else(|| {
                    ffi::PyErr_Clear();
                    py::str_of(value)
                })
                .unwrap_or_else(|| {
                    ffi::PyErr_Clear();
                    "<exception that cannot be formatted>".to_owned()
                });
            self.release();
            text
        }
    }

    /// Borrowed (type, value, traceback); the traceback is `None` when there is none.
    ///
    /// # Safety
    /// The thread is attached.
    unsafe fn parts(&self) -> (*mut ffi::PyObject, *mut ffi::PyObject, *mut ffi::PyObject) {
        #[cfg(Py_3_12)]
        {
            let value = self.exception.as_ptr();
            // SAFETY: attached (caller), `value` is a live exception instance. The traceback
            // reference is released at once: the exception keeps the traceback alive.
            unsafe {
                let mut traceback = ffi::PyException_GetTraceback(value);
                if traceback.is_null() {
                    traceback = ffi::Py_None();
                } else {
                    ffi::Py_DECREF(traceback);
                }
                (ffi::Py_TYPE(value).cast(), value, traceback)
            }
        }
        #[cfg(not(Py_3_12))]
        {
            let none = || {
                // SAFETY: attached (caller); `None` lives as long as the interpreter.
                unsafe { ffi::Py_None() }
            };
            (
                self.kind.as_ptr(),
                self.value.as_ref().map_or_else(none, PyObj::as_ptr),
                self.traceback.as_ref().map_or_else(none, PyObj::as_ptr),
            )
        }
    }
}

/// The text of the exception that is set, which is cleared; empty if none is set.
///
/// # Safety
/// The thread is attached.
pub unsafe fn take_error_text() -> String {
    // SAFETY: attached (caller); after fetching, no exception is set.
    unsafe { CapturedError::fetch().map_or_else(String::new, |error| error.into_text()) }
}

/// `"".join(traceback.format_exception(kind, value, traceback))`.
///
/// # Safety
/// The thread is attached, and the three objects are live.
unsafe fn format_exception(
    kind: *mut ffi::PyObject,
    value: *mut ffi::PyObject,
    traceback: *mut ffi::PyObject,
) -> Option<String> {
    // SAFETY: attached and live (caller); the argument list ends with a null pointer as
    // `PyObject_CallFunctionObjArgs` requires, and every new reference is released.
    unsafe {
        let format = py::import_attribute(c"traceback", c"format_exception")?;
        let lines = PyObj::from_owned(ffi::PyObject_CallFunctionObjArgs(
            format.as_ptr(),
            kind,
            value,
            traceback,
            ptr::null_mut::<ffi::PyObject>(),
        ));
        format.release();
        let lines = lines?;
        let empty = PyObj::from_owned(ffi::PyUnicode_FromStringAndSize(c"".as_ptr(), 0));
        let joined = empty.and_then(|empty| {
            let joined = PyObj::from_owned(ffi::PyUnicode_Join(empty.as_ptr(), lines.as_ptr()));
            empty.release();
            joined
        });
        lines.release();
        let joined = joined?;
        let text = py::to_string(joined.as_ptr());
        joined.release();
        text
    }
}
