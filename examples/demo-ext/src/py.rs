//! Small C-API helpers shared by the module's functions: an owned reference that may travel
//! between threads, raising exceptions, and converting arguments.

use core::ffi::CStr;
use core::ptr::{self, NonNull};

use pyo3_ffi as ffi;

/// An owned (strong) reference to a Python object of one interpreter.
///
/// It may be moved to, or shared with, threads other than the one that created it, but it is
/// only dereferenced, called or released by a thread attached to the interpreter the object
/// belongs to. It has no `Drop`: releasing needs that interpreter's GIL, so whoever ends its
/// life calls [`PyObj::release`] while attached.
#[derive(Debug)]
pub struct PyObj(NonNull<ffi::PyObject>);

// SAFETY: a `PyObj` is an address plus one reference count it owns. Moving the address to
// another thread touches no Python state; every use of the object (calls, reference counting)
// goes through `unsafe` methods whose contract requires the caller to be attached to the
// object's interpreter, which serializes those uses with the rest of that interpreter.
unsafe impl Send for PyObj {}
// SAFETY: shared access only reads the address; see `Send`.
unsafe impl Sync for PyObj {}

impl PyObj {
    /// Takes a new strong reference to `object`.
    ///
    /// # Safety
    /// The thread is attached to the interpreter of `object`, a live object.
    pub unsafe fn new_ref(object: NonNull<ffi::PyObject>) -> PyObj {
        // SAFETY: attached and live (caller); paired with the `Py_DECREF` of `release`.
        unsafe { ffi::Py_INCREF(object.as_ptr()) };
        PyObj(object)
    }

    /// Takes ownership of a new reference returned by the C API; `None` if it returned null
    /// (with an exception set).
    pub fn from_owned(object: *mut ffi::PyObject) -> Option<PyObj> {
        NonNull::new(object).map(PyObj)
    }

    /// The object, borrowed.
    pub fn as_ptr(&self) -> *mut ffi::PyObject {
        self.0.as_ptr()
    }

    /// Hands the reference over, for instance as the return value to Python.
    pub fn into_ptr(self) -> *mut ffi::PyObject {
        self.0.as_ptr()
    }

    /// Gives the reference up without releasing it: for a thread that can no longer attach
    /// to the object's interpreter, where leaking is the only sound choice.
    pub fn leak(self) {}

    /// Releases the reference (`Py_DECREF`); this may run finalizers.
    ///
    /// # Safety
    /// The thread is attached to the object's interpreter.
    pub unsafe fn release(self) {
        // SAFETY: attached (caller); this is the reference `self` owns.
        unsafe { ffi::Py_DECREF(self.0.as_ptr()) };
    }
}

/// Sets `exception` (a borrowed exception type) with `message` and returns null, the C API's
/// "an exception was raised" result.
///
/// # Safety
/// The thread is attached, and `exception` is an exception type of its interpreter.
pub unsafe fn raise(exception: *mut ffi::PyObject, message: &str) -> *mut ffi::PyObject {
    // SAFETY: attached (caller); the message is copied, and the reference to it released
    // after `PyErr_SetObject` took its own.
    unsafe {
        let text = ffi::PyUnicode_FromStringAndSize(message.as_ptr().cast(), message.len() as _);
        if !text.is_null() {
            ffi::PyErr_SetObject(exception, text);
            ffi::Py_DECREF(text);
        }
    }
    ptr::null_mut()
}

/// `RuntimeError(message)`.
///
/// # Safety
/// The thread is attached.
pub unsafe fn runtime_error(message: &str) -> *mut ffi::PyObject {
    // SAFETY: attached (caller); `PyExc_RuntimeError` is initialized with the interpreter.
    unsafe { raise(ffi::PyExc_RuntimeError, message) }
}

/// `ValueError(message)`.
///
/// # Safety
/// The thread is attached.
pub unsafe fn value_error(message: &str) -> *mut ffi::PyObject {
    // SAFETY: attached (caller); `PyExc_ValueError` is initialized with the interpreter.
    unsafe { raise(ffi::PyExc_ValueError, message) }
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

/// A non-negative `int` argument as milliseconds; `None` with an exception set otherwise.
///
/// # Safety
/// The thread is attached and `object` is live.
pub unsafe fn milliseconds(object: *mut ffi::PyObject) -> Option<u64> {
    // SAFETY: attached, `object` live (caller). `-1` is ambiguous, hence `PyErr_Occurred`.
    let value = unsafe { ffi::PyLong_AsLongLong(object) };
    // SAFETY: attached.
    if value == -1 && unsafe { !ffi::PyErr_Occurred().is_null() } {
        return None;
    }
    match u64::try_from(value) {
        Ok(ms) => Some(ms),
        Err(_) => {
            // SAFETY: attached.
            unsafe { value_error("ms must not be negative") };
            None
        }
    }
}

/// The text of a `str`, copied; `None` with an exception set if `object` is not a `str` (or
/// cannot be encoded as UTF-8).
///
/// # Safety
/// The thread is attached and `object` is live.
pub unsafe fn to_string(object: *mut ffi::PyObject) -> Option<String> {
    let mut size: ffi::Py_ssize_t = 0;
    // SAFETY: attached, `object` live (caller). The UTF-8 buffer is owned by the `str`, which
    // outlives this function, and is copied before returning.
    unsafe {
        let data = ffi::PyUnicode_AsUTF8AndSize(object, &mut size);
        if data.is_null() {
            return None;
        }
        let bytes = core::slice::from_raw_parts(data.cast::<u8>(), usize::try_from(size).ok()?);
        Some(String::from_utf8_lossy(bytes).into_owned())
    }
}

/// `str(object)` as Rust text, `None` with an exception set on failure.
///
/// # Safety
/// The thread is attached and `object` is live.
pub unsafe fn str_of(object: *mut ffi::PyObject) -> Option<String> {
    // SAFETY: attached, `object` live (caller); the `str` is released after it is copied.
    unsafe {
        let text = PyObj::from_owned(ffi::PyObject_Str(object))?;
        let copied = to_string(text.as_ptr());
        text.release();
        copied
    }
}

/// `module.name`, imported, as a new reference; `None` with an exception set on failure.
///
/// # Safety
/// The thread is attached.
pub unsafe fn import_attribute(module: &CStr, name: &CStr) -> Option<PyObj> {
    // SAFETY: attached (caller); the module reference is released once the attribute is read.
    unsafe {
        let module = PyObj::from_owned(ffi::PyImport_ImportModule(module.as_ptr()))?;
        let attribute = ffi::PyObject_GetAttrString(module.as_ptr(), name.as_ptr());
        module.release();
        PyObj::from_owned(attribute)
    }
}
