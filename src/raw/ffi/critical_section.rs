//! Critical sections (free-threaded builds). Each wrapper requires: this thread attached;
//! the objects (or the mutex) alive until the matching end; the section at one address from
//! begin to end (the thread state links to it), and ended while it is this thread's newest
//! (CPython pops the top of its list without checking).

#![allow(unsafe_code, reason = "the C layer: every wrapper calls C")]

#[cfg(Py_3_14)]
pub(crate) use pyo3_ffi::PyMutex;
#[cfg(Py_GIL_DISABLED)]
pub(crate) use pyo3_ffi::{PyCriticalSection, PyCriticalSection2};

#[cfg(Py_GIL_DISABLED)]
use pyo3_ffi::PyObject;

#[cfg(Py_GIL_DISABLED)]
/// # Safety
/// As the module says.
#[inline]
pub(crate) unsafe fn begin(section: *mut PyCriticalSection, object: *mut PyObject) {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::PyCriticalSection_Begin(section, object) }
}

#[cfg(Py_GIL_DISABLED)]
/// # Safety
/// As the module says.
#[inline]
pub(crate) unsafe fn begin2(section: *mut PyCriticalSection2, a: *mut PyObject, b: *mut PyObject) {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::PyCriticalSection2_Begin(section, a, b) }
}

/// # Safety
/// As the module says.
#[cfg(all(Py_GIL_DISABLED, Py_3_14))]
#[inline]
pub(crate) unsafe fn begin_mutex(section: *mut PyCriticalSection, mutex: *mut PyMutex) {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::PyCriticalSection_BeginMutex(section, mutex) }
}

#[cfg(Py_GIL_DISABLED)]
/// # Safety
/// As the module says.
#[inline]
pub(crate) unsafe fn end(section: *mut PyCriticalSection) {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::PyCriticalSection_End(section) }
}

#[cfg(Py_GIL_DISABLED)]
/// # Safety
/// As the module says.
#[inline]
pub(crate) unsafe fn end2(section: *mut PyCriticalSection2) {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::PyCriticalSection2_End(section) }
}
