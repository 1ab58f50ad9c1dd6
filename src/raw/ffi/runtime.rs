//! The runtime and interpreters: whether the runtime runs, starting it, watching its end,
//! and making and ending sub-interpreters.

#![allow(unsafe_code, reason = "the C layer: every wrapper calls C")]

use pyo3_ffi::PyThreadState;
#[cfg(Py_3_12)]
pub(crate) use pyo3_ffi::{
    PyInterpreterConfig, PyInterpreterConfig_OWN_GIL, PyInterpreterConfig_SHARED_GIL,
};

#[cfg(not(Py_3_13))]
unsafe extern "C" {
    /// Public as `Py_IsFinalizing` only from 3.13; exported under this name since 3.7.
    fn _Py_IsFinalizing() -> core::ffi::c_int;
}

/// `Py_IsInitialized()`.
#[inline]
pub(crate) fn is_initialized() -> bool {
    // SAFETY: reads a flag of the runtime; documented as callable before initialization.
    unsafe { pyo3_ffi::Py_IsInitialized() != 0 }
}

/// `Py_IsFinalizing()` (3.13+) or `_Py_IsFinalizing()`: true from the moment
/// `Py_FinalizeEx` marks the runtime as finalizing until it is re-initialized.
#[inline]
pub(crate) fn is_finalizing() -> bool {
    // SAFETY: reads `_PyRuntime`'s finalizing pointer; no precondition on any version.
    unsafe {
        #[cfg(Py_3_13)]
        let finalizing = pyo3_ffi::Py_IsFinalizing();
        #[cfg(not(Py_3_13))]
        let finalizing = _Py_IsFinalizing();
        finalizing != 0
    }
}

/// CPython's message for a failed `PyStatus`.
#[cfg(Py_3_12)]
fn status_message(status: &pyo3_ffi::PyStatus) -> String {
    let text = |pointer: *const core::ffi::c_char| {
        if pointer.is_null() {
            return None;
        }
        // SAFETY: a non-null string of a `PyStatus` is static and NUL-terminated.
        let text = unsafe { core::ffi::CStr::from_ptr(pointer) };
        Some(text.to_string_lossy().into_owned())
    };
    match (text(status.func), text(status.err_msg)) {
        (Some(func), Some(message)) => format!("{func}: {message}"),
        (None, Some(message)) => message,
        _ => format!("exit status {}", status.exitcode),
    }
}

/// `Py_InitializeEx(0)`: starts the runtime without Python's signal handlers, leaving this
/// thread attached to the new main thread state.
///
/// # Safety
/// The runtime is neither initialized nor finalizing, and no other thread initializes it at
/// the same time.
pub(crate) unsafe fn initialize() {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::Py_InitializeEx(0) }
}

/// `Py_AtExit(callback)`: registers `callback` for the end of `Py_FinalizeEx`; false when the
/// 32 slots are taken.
///
/// # Safety
/// The runtime is initialized, and this thread is attached (before 3.12 the slot table has
/// no lock of its own: the one GIL guards it).
pub(crate) unsafe fn at_exit(callback: extern "C" fn()) -> bool {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::Py_AtExit(Some(callback)) == 0 }
}

/// A new sub-interpreter, `Py_NewInterpreterFromConfig` (3.12+) or `Py_NewInterpreter`: on
/// success its first thread state is attached in place of the caller's (swapped out without
/// being detached properly: the caller brings it back); on failure CPython's message.
///
/// # Safety
/// This thread is attached to the main interpreter. With `OWN_GIL`, `config` has
/// `use_main_obmalloc == 0` and `check_multi_interp_extensions == 1`.
#[cfg(Py_3_12)]
pub(crate) unsafe fn new_interpreter(
    config: &PyInterpreterConfig,
) -> Result<*mut PyThreadState, String> {
    let mut tstate = core::ptr::null_mut();
    // SAFETY: the caller's; `PyStatus_Exception` only inspects the value.
    let status = unsafe { pyo3_ffi::Py_NewInterpreterFromConfig(&mut tstate, config) };
    // SAFETY: as above.
    if unsafe { pyo3_ffi::PyStatus_Exception(status) } != 0 || tstate.is_null() {
        return Err(status_message(&status));
    }
    Ok(tstate)
}

/// [`new_interpreter`] before 3.12, with the legacy settings only.
///
/// # Safety
/// This thread is attached to the main interpreter.
#[cfg(not(Py_3_12))]
pub(crate) unsafe fn new_interpreter() -> Result<*mut PyThreadState, String> {
    // SAFETY: the caller's.
    let tstate = unsafe { pyo3_ffi::Py_NewInterpreter() };
    if tstate.is_null() {
        return Err("Py_NewInterpreter failed".into());
    }
    Ok(tstate)
}

/// `Py_EndInterpreter(tstate)`: ends `tstate`'s interpreter, leaving nothing attached (before
/// 3.12 with the one GIL still held).
///
/// # Safety
/// `tstate` is attached, is its interpreter's only thread state (3.13+ abort with "not the
/// last thread" otherwise), and runs no frame.
pub(crate) unsafe fn end_interpreter(tstate: *mut PyThreadState) {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::Py_EndInterpreter(tstate) }
}

#[cfg(all(test, Py_3_12))]
mod tests {
    #[test]
    fn status_message_carries_cpythons_text() {
        // SAFETY: builds a status value; needs no runtime.
        let status = unsafe { pyo3_ffi::PyStatus_Error(c"per-interpreter GIL failed".as_ptr()) };
        assert_eq!(super::status_message(&status), "per-interpreter GIL failed");
    }
}
