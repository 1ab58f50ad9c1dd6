//! PEP 788 (CPython 3.15) finalization guards, which `pyo3-ffi` 0.30 does not declare: as in
//! CPython 3.15.2's `pystate.h` (CI runs them there). None needs an attached thread state.

#![allow(unsafe_code, reason = "declares CPython 3.15 functions")]

/// `PyInterpreterGuard`: while one is open, the interpreter does not start finalizing.
#[repr(C)]
pub(crate) struct PyInterpreterGuard {
    _opaque: [u8; 0],
}

/// `PyInterpreterView`: names an interpreter that may already be gone.
#[repr(C)]
pub(crate) struct PyInterpreterView {
    _opaque: [u8; 0],
}

unsafe extern "C" {
    /// A view of the main interpreter; null if it has finalized or memory ran out.
    pub(crate) fn PyInterpreterView_FromMain() -> *mut PyInterpreterView;
    /// A guard through `view`; null, without an exception, if the interpreter is gone or
    /// finalizing.
    pub(crate) fn PyInterpreterGuard_FromView(
        view: *mut PyInterpreterView,
    ) -> *mut PyInterpreterGuard;
    /// Closes (and frees) a guard.
    pub(crate) fn PyInterpreterGuard_Close(guard: *mut PyInterpreterGuard);
}
