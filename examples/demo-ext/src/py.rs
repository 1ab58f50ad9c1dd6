//! Small C-API helpers shared by the module's functions: results of C calls as `Result`s
//! (null means "an exception is set"), owned references as [`OwnedRef`]s, and arguments
//! converted to Rust values.

use core::ffi::CStr;
use core::ptr::NonNull;

use gilguard::{ExceptionKind, OwnedRef, PythonException};
use pyo3_ffi as ffi;

/// `object`, the result of a C call that returns null with an exception set on failure.
pub fn checked(object: *mut ffi::PyObject) -> Result<*mut ffi::PyObject, PythonException> {
    if object.is_null() {
        Err(PythonException::fetch())
    } else {
        Ok(object)
    }
}

/// Takes over `object`, a new reference a C call returned, or takes that call's exception if
/// it returned null. The reference is released when the last clone is dropped.
///
/// # Safety
/// The thread is attached; `object` is null or a new reference of this interpreter, which
/// the caller gives up.
pub unsafe fn owned(object: *mut ffi::PyObject) -> Result<OwnedRef, PythonException> {
    let object = NonNull::new(object).ok_or_else(PythonException::fetch)?;
    // SAFETY: a new reference of the interpreter this thread is attached to (caller).
    Ok(unsafe { OwnedRef::from_owned(object) }?)
}

/// A new reference to `object`, a borrowed one (an argument), to keep or send to a thread.
///
/// # Safety
/// The thread is attached to the interpreter of `object`, a live object.
pub unsafe fn borrowed(object: *mut ffi::PyObject) -> Result<OwnedRef, PythonException> {
    // CPython never passes null arguments; a null here would be a bug in the caller.
    let object = NonNull::new(object).ok_or_else(|| {
        PythonException::new(ExceptionKind::SystemError, "a null object argument")
    })?;
    // SAFETY: attached to the interpreter of the live `object` (caller).
    Ok(unsafe { OwnedRef::from_borrowed(object) }?)
}

/// `None`, as a new reference.
///
/// # Safety
/// The thread is attached.
pub unsafe fn none() -> *mut ffi::PyObject {
    // SAFETY: attached (caller); `None` is immortal on 3.12+ and counted before.
    unsafe {
        let none = ffi::Py_None();
        ffi::Py_INCREF(none);
        none
    }
}

/// A non-negative `int` argument as milliseconds.
///
/// # Safety
/// The thread is attached and `object` is live.
pub unsafe fn milliseconds(object: *mut ffi::PyObject) -> Result<u64, PythonException> {
    // SAFETY: attached, `object` live (caller). `-1` is ambiguous, hence `PyErr_Occurred`.
    let value = unsafe { ffi::PyLong_AsLongLong(object) };
    // SAFETY: attached; the error indicator is only read.
    if value == -1 && unsafe { !ffi::PyErr_Occurred().is_null() } {
        return Err(PythonException::fetch());
    }
    let negative = "ms must not be negative";
    u64::try_from(value).map_err(|_| PythonException::new(ExceptionKind::ValueError, negative))
}

/// The text of a `str`, copied; an error if `object` is not a `str` (or cannot be encoded
/// as UTF-8).
///
/// # Safety
/// The thread is attached and `object` is live.
pub unsafe fn to_string(object: *mut ffi::PyObject) -> Result<String, PythonException> {
    let mut size: ffi::Py_ssize_t = 0;
    // SAFETY: attached, `object` live (caller). The UTF-8 buffer is owned by the `str`, which
    // outlives this function, and is copied before returning; `size` is its length.
    unsafe {
        let data = ffi::PyUnicode_AsUTF8AndSize(object, &mut size);
        if data.is_null() {
            return Err(PythonException::fetch());
        }
        let bytes = core::slice::from_raw_parts(data.cast::<u8>(), size.max(0) as usize);
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }
}

/// `str(object)` as Rust text.
///
/// # Safety
/// The thread is attached and `object` is live.
pub unsafe fn str_of(object: *mut ffi::PyObject) -> Result<String, PythonException> {
    // SAFETY: attached, `object` live (caller); the `str` is released after it is copied.
    unsafe {
        let text = owned(ffi::PyObject_Str(object))?;
        to_string(text.as_ptr())
    }
}

/// `module.name`, imported.
///
/// # Safety
/// The thread is attached.
pub unsafe fn import_attribute(module: &CStr, name: &CStr) -> Result<OwnedRef, PythonException> {
    // SAFETY: attached (caller); the module reference is released once the attribute is read.
    unsafe {
        let module = owned(ffi::PyImport_ImportModule(module.as_ptr()))?;
        owned(ffi::PyObject_GetAttrString(module.as_ptr(), name.as_ptr()))
    }
}
