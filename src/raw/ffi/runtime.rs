//! The runtime and sub-interpreters: starting, watching and ending them.

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

#[inline]
pub(crate) fn is_initialized() -> bool {
    // SAFETY: reads a flag of the runtime; documented as callable before initialization.
    unsafe { pyo3_ffi::Py_IsInitialized() != 0 }
}

/// True from `Py_FinalizeEx` marking the runtime finalizing until it is initialized again.
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

/// Starts the runtime without Python's signal handlers; leaves this thread attached.
///
/// # Safety
/// The runtime is neither initialized nor finalizing, nor being initialized by another thread.
pub(crate) unsafe fn initialize() {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::Py_InitializeEx(0) }
}

/// Registers `callback` for the end of `Py_FinalizeEx`; false when the 32 slots are taken.
///
/// # Safety
/// The runtime is initialized and this thread attached (before 3.12 the GIL guards the slots).
pub(crate) unsafe fn at_exit(callback: extern "C" fn()) -> bool {
    // SAFETY: the caller's.
    unsafe { pyo3_ffi::Py_AtExit(Some(callback)) == 0 }
}

/// A new sub-interpreter, its first thread state attached in place of the caller's (swapped
/// out without being detached properly: the caller brings it back); or CPython's message.
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

/// Leaves nothing attached (before 3.12, with the one GIL still held).
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
