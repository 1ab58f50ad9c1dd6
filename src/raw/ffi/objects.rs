//! Objects: reference counts, and the few calls the crate makes on them. Each needs this
//! thread attached to the objects' interpreter; references are new or borrowed as the C API
//! documents, and releasing one may run Python code.

#![allow(unsafe_code, reason = "the C layer: every wrapper calls C")]

use core::ffi::CStr;

pub(crate) use pyo3_ffi::{Py_ssize_t, PyCFunction, PyMethodDef, PyMethodDefPointer, PyObject};

/// # Safety
/// Attached to `object`'s interpreter; `object` is live.
#[inline(always)]
pub(crate) unsafe fn incref(object: *mut PyObject) {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::Py_INCREF(object) }
}

/// # Safety
/// Attached to `object`'s interpreter; the caller owns the reference it gives up.
#[inline(always)]
pub(crate) unsafe fn decref(object: *mut PyObject) {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::Py_DECREF(object) }
}

/// A new reference to `None`.
///
/// # Safety
/// This thread is attached.
#[inline]
pub(crate) unsafe fn new_none() -> *mut PyObject {
    // SAFETY: attached (caller); `Py_None` is immortal or counted, and the increment makes
    // the returned reference new either way.
    unsafe {
        let none = pyo3_ffi::Py_None();
        pyo3_ffi::Py_INCREF(none);
        none
    }
}

/// The name of `object`'s type (`tp_name`), copied.
///
/// # Safety
/// `object` is live (its type, which it keeps alive, holds the name).
pub(crate) unsafe fn type_name(object: *mut PyObject) -> String {
    // SAFETY: the caller's; `tp_name` is a NUL-terminated string that lives as long as the
    // type.
    unsafe { CStr::from_ptr((*pyo3_ffi::Py_TYPE(object)).tp_name) }
        .to_string_lossy()
        .into_owned()
}

/// `str(object)` as a Rust string; `None`, with the indicator cleared, if `str()` raised.
///
/// # Safety
/// Attached to `object`'s interpreter, with no exception set; `object` is live.
pub(crate) unsafe fn str_of(object: *mut PyObject) -> Option<String> {
    // SAFETY: the caller's. `PyObject_Str` returns a new reference or null with an exception
    // set; the UTF-8 buffer belongs to the string and is copied before it is released.
    unsafe {
        let text = pyo3_ffi::PyObject_Str(object);
        if text.is_null() {
            pyo3_ffi::PyErr_Clear();
            return None;
        }
        let mut len = 0;
        let utf8 = pyo3_ffi::PyUnicode_AsUTF8AndSize(text, &mut len);
        let copy = if utf8.is_null() {
            pyo3_ffi::PyErr_Clear();
            None
        } else {
            let bytes = core::slice::from_raw_parts(utf8.cast::<u8>(), len as usize);
            Some(String::from_utf8_lossy(bytes).into_owned())
        };
        pyo3_ffi::Py_DECREF(text);
        copy
    }
}

/// A new `str` with `text`; null with `MemoryError` set if it cannot be made.
///
/// # Safety
/// This thread is attached.
pub(crate) unsafe fn new_str(text: &str) -> *mut PyObject {
    // SAFETY: the caller's; the bytes are copied.
    unsafe { pyo3_ffi::PyUnicode_FromStringAndSize(text.as_ptr().cast(), text.len() as isize) }
}

/// Calls `module.function(callback)`, or `module.function(**{keyword: callback})`, with
/// `definition` made into a function object; the call's exception, if any, is reported as
/// unraisable (which clears it). Returns whether it succeeded.
///
/// # Safety
/// This thread is attached, with no exception set; `definition` is a `static` (the function
/// object points to it for its whole life).
pub(crate) unsafe fn call_with_function(
    module: &CStr,
    function: &CStr,
    keyword: Option<&CStr>,
    definition: *mut PyMethodDef,
) -> bool {
    // SAFETY: attached (caller); every new reference is released, and a failure's exception
    // reported as unraisable.
    unsafe {
        let module = pyo3_ffi::PyImport_ImportModule(module.as_ptr());
        let callback =
            pyo3_ffi::PyCFunction_NewEx(definition, core::ptr::null_mut(), core::ptr::null_mut());
        let register = if module.is_null() {
            core::ptr::null_mut()
        } else {
            pyo3_ffi::PyObject_GetAttrString(module, function.as_ptr())
        };
        let args = match (callback.is_null(), keyword) {
            (true, _) => core::ptr::null_mut(),
            (false, None) => pyo3_ffi::PyTuple_Pack(1, callback),
            (false, Some(_)) => pyo3_ffi::PyTuple_New(0),
        };
        let kwargs = match keyword {
            None => core::ptr::null_mut(),
            Some(_) => pyo3_ffi::PyDict_New(),
        };
        // `args` is only made when `callback` exists.
        let ready = !register.is_null()
            && !args.is_null()
            && keyword.is_none_or(|keyword| {
                !kwargs.is_null()
                    && pyo3_ffi::PyDict_SetItemString(kwargs, keyword.as_ptr(), callback) == 0
            });
        let result = if ready {
            pyo3_ffi::PyObject_Call(register, args, kwargs)
        } else {
            core::ptr::null_mut()
        };
        let ok = !result.is_null();
        if !ok {
            pyo3_ffi::PyErr_WriteUnraisable(core::ptr::null_mut());
        }
        for object in [result, kwargs, args, register, callback, module] {
            pyo3_ffi::Py_XDECREF(object);
        }
        ok
    }
}

/// The definition of a function taking no arguments, for a `static mut` that
/// [`call_with_function`] hands to Python.
pub(crate) const fn no_args_method(
    name: &'static CStr,
    function: PyCFunction,
    doc: &'static CStr,
) -> PyMethodDef {
    PyMethodDef {
        ml_name: name.as_ptr(),
        ml_meth: PyMethodDefPointer {
            PyCFunction: function,
        },
        ml_flags: pyo3_ffi::METH_NOARGS,
        ml_doc: doc.as_ptr(),
    }
}

/// Runs `code` (statements) in a fresh namespace with the builtins; a failure is reported as
/// unraisable.
///
/// # Safety
/// This thread is attached, with no exception set.
pub(crate) unsafe fn run_statements(code: &CStr) {
    // SAFETY: attached (caller); every new reference is released, and a failure reported as
    // unraisable.
    unsafe {
        let namespace = pyo3_ffi::PyDict_New();
        if namespace.is_null()
            || pyo3_ffi::PyDict_SetItemString(
                namespace,
                c"__builtins__".as_ptr(),
                pyo3_ffi::PyEval_GetBuiltins(),
            ) != 0
        {
            pyo3_ffi::PyErr_WriteUnraisable(core::ptr::null_mut());
            pyo3_ffi::Py_XDECREF(namespace);
            return;
        }
        let result =
            pyo3_ffi::PyRun_String(code.as_ptr(), pyo3_ffi::Py_file_input, namespace, namespace);
        if result.is_null() {
            pyo3_ffi::PyErr_WriteUnraisable(core::ptr::null_mut());
        } else {
            pyo3_ffi::Py_DECREF(result);
        }
        pyo3_ffi::Py_DECREF(namespace);
    }
}

/// Imports `module` for its effect; a failure is reported as unraisable.
///
/// # Safety
/// This thread is attached, with no exception set.
pub(crate) unsafe fn import(module: &CStr) {
    // SAFETY: attached (caller); the module reference is released.
    unsafe {
        let imported = pyo3_ffi::PyImport_ImportModule(module.as_ptr());
        if imported.is_null() {
            pyo3_ffi::PyErr_WriteUnraisable(core::ptr::null_mut());
        } else {
            pyo3_ffi::Py_DECREF(imported);
        }
    }
}
