//! Critical sections (free-threaded builds): `Py_BEGIN_CRITICAL_SECTION` and its variants.
//! Each needs this thread attached; the objects (or the mutex) stay alive until the matching
//! end; a section struct stays at one address from its begin to its end (the thread state
//! links to it), and ends while it is this thread's newest section (CPython pops the top of
//! its list without checking).

#![allow(unsafe_code, reason = "the C layer: every wrapper calls C")]

#[cfg(Py_3_13)]
pub(crate) use pyo3_ffi::PyMutex;
#[cfg(Py_GIL_DISABLED)]
pub(crate) use pyo3_ffi::{PyCriticalSection, PyCriticalSection2};

#[cfg(Py_GIL_DISABLED)]
use pyo3_ffi::PyObject;

/// `PyCriticalSection_Begin(section, object)`.
#[cfg(Py_GIL_DISABLED)]
///
/// # Safety
/// As the module says.
#[inline]
pub(crate) unsafe fn begin(section: *mut PyCriticalSection, object: *mut PyObject) {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::PyCriticalSection_Begin(section, object) }
}

/// `PyCriticalSection2_Begin(section, a, b)`.
#[cfg(Py_GIL_DISABLED)]
///
/// # Safety
/// As the module says.
#[inline]
pub(crate) unsafe fn begin2(section: *mut PyCriticalSection2, a: *mut PyObject, b: *mut PyObject) {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::PyCriticalSection2_Begin(section, a, b) }
}

/// `PyCriticalSection_BeginMutex(section, mutex)` (3.14+).
///
/// # Safety
/// As the module says.
#[cfg(all(Py_GIL_DISABLED, Py_3_14))]
#[inline]
pub(crate) unsafe fn begin_mutex(section: *mut PyCriticalSection, mutex: *mut PyMutex) {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::PyCriticalSection_BeginMutex(section, mutex) }
}

/// `PyCriticalSection_End(section)`.
#[cfg(Py_GIL_DISABLED)]
///
/// # Safety
/// As the module says.
#[inline]
pub(crate) unsafe fn end(section: *mut PyCriticalSection) {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::PyCriticalSection_End(section) }
}

/// `PyCriticalSection2_End(section)`.
#[cfg(Py_GIL_DISABLED)]
///
/// # Safety
/// As the module says.
#[inline]
pub(crate) unsafe fn end2(section: *mut PyCriticalSection2) {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::PyCriticalSection2_End(section) }
}
