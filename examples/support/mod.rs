//! Small helpers for the embedding examples: running Python source and exposing Rust
//! functions to it through the raw C API. Every function here needs the calling thread to
//! be attached (to whichever interpreter the code should run in), and panics if it is not.
#![allow(dead_code)]

use std::ffi::{CStr, CString};
use std::ptr;

use pyo3_ffi as ffi;

/// Panics unless the calling thread is attached: the precondition of every helper here.
fn require_attached() {
    assert!(
        gilguard::is_attached(),
        "the Python helpers need an attached thread"
    );
}

/// `__main__.__dict__`, borrowed.
fn main_globals() -> *mut ffi::PyObject {
    require_attached();
    // SAFETY: attached (checked); `__main__` always exists and outlives the call.
    unsafe { ffi::PyModule_GetDict(ffi::PyImport_AddModule(c"__main__".as_ptr())) }
}

/// Runs `code` in `__main__`.
///
/// # Panics
/// If the code raises; the traceback is printed first.
pub fn run(code: &str) {
    require_attached();
    let source = CString::new(code).expect("no NUL in Python source");
    // SAFETY: attached (checked); the result is checked and released.
    unsafe {
        let globals = main_globals();
        let result = ffi::PyRun_String(source.as_ptr(), ffi::Py_file_input, globals, globals);
        if result.is_null() {
            ffi::PyErr_Print();
            panic!("Python code raised:\n{code}");
        }
        ffi::Py_DECREF(result);
    }
}

/// Evaluates `expression` in `__main__` and returns its `str()`.
///
/// # Panics
/// If the expression raises.
pub fn eval_str(expression: &str) -> String {
    require_attached();
    let source = CString::new(expression).expect("no NUL in Python source");
    // SAFETY: attached (checked); results are checked, the text is copied before release.
    unsafe {
        let globals = main_globals();
        let result = ffi::PyRun_String(source.as_ptr(), ffi::Py_eval_input, globals, globals);
        if result.is_null() {
            ffi::PyErr_Print();
            panic!("Python expression raised: {expression}");
        }
        let text = ffi::PyObject_Str(result);
        ffi::Py_DECREF(result);
        assert!(!text.is_null(), "str() raised for {expression}");
        let utf8 = ffi::PyUnicode_AsUTF8(text);
        assert!(!utf8.is_null(), "str() of {expression} is not UTF-8");
        let owned = CStr::from_ptr(utf8).to_string_lossy().into_owned();
        ffi::Py_DECREF(text);
        owned
    }
}

/// Makes `function` callable from Python as `__main__.<name>`. `flags` is the calling
/// convention (`METH_NOARGS`, `METH_O`, `METH_VARARGS`).
pub fn define(name: &'static CStr, function: ffi::PyCFunction, flags: std::ffi::c_int) {
    /// Every definition, so that they stay reachable (for LeakSanitizer) after the
    /// interpreters holding their function objects are gone.
    static DEFINITIONS: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());
    let def = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: name.as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunction: function,
        },
        ml_flags: flags,
        ml_doc: ptr::null(),
    }));
    DEFINITIONS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(ptr::from_mut(def) as usize);
    require_attached();
    // SAFETY: attached (checked); `def` is leaked so it outlives the function object; the dict takes
    // its own reference.
    unsafe {
        let callable = ffi::PyCFunction_NewEx(def, ptr::null_mut(), ptr::null_mut());
        assert!(!callable.is_null(), "PyCFunction_NewEx failed");
        assert_eq!(
            ffi::PyDict_SetItemString(main_globals(), name.as_ptr(), callable),
            0
        );
        ffi::Py_DECREF(callable);
    }
}

/// A new reference to `None`, the result of a C function that returns nothing.
pub fn none() -> *mut ffi::PyObject {
    require_attached();
    // SAFETY: attached (checked); `Py_None` is a valid object for the life of the runtime.
    unsafe {
        let none = ffi::Py_None();
        ffi::Py_INCREF(none);
        none
    }
}

/// A Python `str`, as a new reference.
pub fn string(text: &str) -> *mut ffi::PyObject {
    require_attached();
    // SAFETY: attached (checked); the pointer and length describe valid UTF-8.
    unsafe { ffi::PyUnicode_FromStringAndSize(text.as_ptr().cast(), text.len() as ffi::Py_ssize_t) }
}

/// The contents of a Python `str`, copied.
///
/// # Safety
/// `object` is a live `str`.
pub unsafe fn to_string(object: *mut ffi::PyObject) -> String {
    require_attached();
    // SAFETY: attached (checked), `object` is a `str` (caller); the text is copied before
    // the object can go.
    unsafe {
        let utf8 = ffi::PyUnicode_AsUTF8(object);
        assert!(!utf8.is_null(), "the string is not UTF-8");
        CStr::from_ptr(utf8).to_string_lossy().into_owned()
    }
}
