//! An exception as text that may leave its interpreter: the traceback Python would print,
//! formatted inside the interpreter that raised it.
//!
//! An exception that stays in its interpreter (a `Worker` callback's, raised again by
//! `join`) is carried as a [`PythonException`] itself, object and traceback included.

use core::ptr;

use gilguard::PythonException;
use pyo3_ffi as ffi;

use crate::py;

/// `exception` as Python prints it (`traceback.format_exception`), if it was taken out of
/// the interpreter this thread is attached to and no other exception is set; otherwise, or
/// if formatting fails, its last line (`ValueError: message`).
pub fn text(exception: &PythonException) -> String {
    let Some(object) = exception.object().filter(|object| object.is_usable()) else {
        return exception.to_string();
    };
    // SAFETY: attached to the object's interpreter (`is_usable`); the indicator is only read.
    if unsafe { !ffi::PyErr_Occurred().is_null() } {
        return exception.to_string(); // Python code must not run with an exception set
    }
    // SAFETY: as just checked, with no exception set; the object is a live exception instance
    // while `exception` holds it. An error raised while formatting is taken (and dropped).
    unsafe { format_exception(object.as_ptr()) }.unwrap_or_else(|_| exception.to_string())
}

/// `"".join(traceback.format_exception(type(value), value, value.__traceback__))`: the
/// three-argument form, which every supported version accepts.
///
/// # Safety
/// The thread is attached to the interpreter of `value`, a live exception instance, with no
/// exception set.
unsafe fn format_exception(value: *mut ffi::PyObject) -> Result<String, PythonException> {
    // SAFETY: attached, `value` live (caller). The argument list ends with a null pointer as
    // `PyObject_CallFunctionObjArgs` requires; the type and traceback are kept alive by
    // `value` and `traceback` while they are used; every new reference is an `OwnedRef`.
    unsafe {
        let format = py::import_attribute(c"traceback", c"format_exception")?;
        let traceback = match ffi::PyException_GetTraceback(value) {
            none if none.is_null() => None,
            traceback => Some(py::owned(traceback)?),
        };
        let traceback_or_none = traceback.as_ref().map_or(ffi::Py_None(), |tb| tb.as_ptr());
        let lines = py::owned(ffi::PyObject_CallFunctionObjArgs(
            format.as_ptr(),
            ffi::Py_TYPE(value).cast::<ffi::PyObject>(),
            value,
            traceback_or_none,
            ptr::null_mut::<ffi::PyObject>(),
        ))?;
        let empty = py::owned(ffi::PyUnicode_FromStringAndSize(c"".as_ptr(), 0))?;
        let joined = py::owned(ffi::PyUnicode_Join(empty.as_ptr(), lines.as_ptr()))?;
        py::to_string(joined.as_ptr())
    }
}
