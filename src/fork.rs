//! `fork()` in the child: CPython deletes every thread state but the forking thread's
//! current one (and every sub-interpreter), so nothing this crate recorded about the others
//! may be used any more.
//!
//! CPython runs the `os.register_at_fork(after_in_child=...)` callbacks both after
//! `os.fork()` and in `PyOS_AfterFork_Child()`, which a C or Rust caller of `fork()` must
//! call in the child. The callback registered here starts a new runtime epoch, so that
//! every [`SubInterpreter`](crate::SubInterpreter), [`Interpreter`](crate::Interpreter) and
//! [`ThreadStateHandle`](crate::ThreadStateHandle) from before the fork becomes inert (using
//! it is refused with `GilError::InterpreterEnded`, dropping it does nothing), forgets the
//! thread states kept for native threads, and empties the forking thread's frames that
//! name a deleted thread state, so that undoing them does nothing.

use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::{ffi, native_thread, runtime, shutdown, stack};

/// The runtime epoch whose fork callback is registered.
static INSTALLED: AtomicU64 = AtomicU64::new(u64::MAX);

/// Registers the after-fork callback for the current runtime, once.
///
/// # Safety
/// The thread is attached to the main interpreter.
pub(crate) unsafe fn install() {
    let epoch = runtime::epoch();
    if INSTALLED.load(Ordering::Acquire) == epoch {
        return;
    }
    static INSTALLING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = INSTALLING.lock().unwrap_or_else(PoisonError::into_inner);
    if INSTALLED.load(Ordering::Acquire) == epoch {
        return;
    }
    // SAFETY: attached to the main interpreter (caller); `AFTER_FORK` is static; every new
    // reference is released; a failure leaves the callback unregistered and is reported as
    // unraisable.
    let registered = unsafe {
        let os = pyo3_ffi::PyImport_ImportModule(c"os".as_ptr());
        let callback = pyo3_ffi::PyCFunction_NewEx(
            &raw mut AFTER_FORK,
            core::ptr::null_mut(),
            core::ptr::null_mut(),
        );
        let register = if os.is_null() {
            core::ptr::null_mut()
        } else {
            pyo3_ffi::PyObject_GetAttrString(os, c"register_at_fork".as_ptr())
        };
        let (args, kwargs) = (pyo3_ffi::PyTuple_New(0), pyo3_ffi::PyDict_New());
        let ready = !register.is_null()
            && !callback.is_null()
            && !args.is_null()
            && !kwargs.is_null()
            && pyo3_ffi::PyDict_SetItemString(kwargs, c"after_in_child".as_ptr(), callback) == 0;
        let result = if ready {
            pyo3_ffi::PyObject_Call(register, args, kwargs)
        } else {
            core::ptr::null_mut()
        };
        let ok = !result.is_null();
        if !ok {
            pyo3_ffi::PyErr_WriteUnraisable(core::ptr::null_mut());
        }
        for object in [result, kwargs, args, register, callback, os] {
            pyo3_ffi::Py_XDECREF(object);
        }
        ok
    };
    if registered {
        INSTALLED.store(epoch, Ordering::Release);
    }
}

static mut AFTER_FORK: pyo3_ffi::PyMethodDef = pyo3_ffi::PyMethodDef {
    ml_name: c"_gilguard_after_fork_in_child".as_ptr(),
    ml_meth: pyo3_ffi::PyMethodDefPointer {
        PyCFunction: after_fork_in_child,
    },
    ml_flags: pyo3_ffi::METH_NOARGS,
    ml_doc: c"Forgets the thread states gilguard knew before the fork.".as_ptr(),
};

/// The callback, run in the child, by the forking thread, attached to the main
/// interpreter: its current thread state is the only one left.
unsafe extern "C" fn after_fork_in_child(
    _module: *mut pyo3_ffi::PyObject,
    _args: *mut pyo3_ffi::PyObject,
) -> *mut pyo3_ffi::PyObject {
    let survivor = ffi::current_thread_state();
    let epoch = runtime::after_fork();
    INSTALLED.store(epoch, Ordering::Release);
    let kept_frames = stack::forget_thread_states_except(survivor);
    let held = native_thread::after_fork(survivor, epoch);
    shutdown::after_fork(epoch, held.map(|held| (held, kept_frames)));
    // SAFETY: attached; returns a new reference to `None`.
    unsafe {
        let none = pyo3_ffi::Py_None();
        pyo3_ffi::Py_INCREF(none);
        none
    }
}
