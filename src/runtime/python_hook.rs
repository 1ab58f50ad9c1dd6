//! Rust functions registered with Python-level hooks (`atexit.register`,
//! `os.register_at_fork`), once per runtime.

#![allow(
    unsafe_code,
    reason = "registers Rust functions with Python-level hooks through the C API"
)]

use core::ffi::{CStr, c_ulong};
use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use pyo3_ffi::{PyCFunction, PyMethodDef, PyMethodDefPointer, PyObject};

use crate::raw::epoch::{NO_EPOCH, epoch};

/// A hook that is registered at most once per [runtime epoch](crate::raw::epoch).
pub(crate) struct PythonHook {
    /// The epoch whose runtime has the hook registered.
    registered: AtomicU64,
    /// The epoch in which a thread has taken on registering the hook, and that thread
    /// (`PyThread_get_thread_ident`), until it succeeds or gives up.
    claim: Mutex<Option<(u64, c_ulong)>>,
}

impl PythonHook {
    pub(crate) const fn new() -> PythonHook {
        PythonHook {
            registered: AtomicU64::new(NO_EPOCH),
            claim: Mutex::new(None),
        }
    }

    /// Whether the runtime of `epoch` has the hook.
    #[inline]
    pub(crate) fn is_registered(&self, epoch: u64) -> bool {
        self.registered.load(Ordering::Acquire) == epoch
    }

    /// Notes that the runtime of `epoch` has the hook: after a fork, the child's runtime
    /// (a new epoch) inherited it from the parent's.
    pub(crate) fn inherited(&self, epoch: u64) {
        self.registered.store(epoch, Ordering::Release);
    }

    /// Registers `definition` with the current runtime unless it was already: calls
    /// `module.function(callback)`, or `module.function(keyword=callback)`. A failure is
    /// reported as unraisable and leaves the hook unregistered.
    ///
    /// One thread registers; another that comes meanwhile waits for it with the GIL
    /// released, never holding it: the registration runs Python code, which may let other
    /// threads take the GIL and then needs it back. That Python code (an import hook) may
    /// also call back into this crate on the registering thread, which then returns at once
    /// instead of waiting for itself: the outer call completes the registration.
    ///
    /// # Safety
    /// The thread is attached to the main interpreter; `definition` is a `static`.
    pub(crate) unsafe fn register(
        &self,
        module: &CStr,
        function: &CStr,
        keyword: Option<&CStr>,
        definition: *mut PyMethodDef,
    ) {
        let epoch = epoch();
        let this_thread = crate::raw::ffi::thread_ident();
        loop {
            if self.is_registered(epoch) {
                return;
            }
            {
                let mut claim = self.claim.lock().unwrap_or_else(PoisonError::into_inner);
                match *claim {
                    Some((claimed, by)) if claimed == epoch && by == this_thread => return,
                    Some((claimed, _)) if claimed == epoch => {}
                    _ => {
                        *claim = Some((epoch, this_thread));
                        break; // this thread registers it
                    }
                }
            }
            // SAFETY: attached (caller): detaches for the wait, and re-attaches the same
            // thread state right after; nothing of this thread runs in between.
            // C preconditions: raw::ffi, PyEval_SaveThread, PyEval_RestoreThread.
            unsafe {
                let tstate = pyo3_ffi::PyEval_SaveThread();
                std::thread::sleep(Duration::from_millis(1));
                pyo3_ffi::PyEval_RestoreThread(tstate);
            }
        }
        // The caller may have an exception pending (the first `ThreadStateHandle` of a
        // runtime can be made anywhere): set aside for the calls below, which must start
        // without one.
        // SAFETY: attached (caller); put back below.
        let caller_error = unsafe { crate::raw::ffi::take_error() };
        // SAFETY: attached to the main interpreter (caller); `definition` outlives the
        // function object (static); every new reference is released; a failure's exception
        // is reported as unraisable (which clears it).
        // C preconditions: raw::ffi, PyImport_ImportModule, PyCFunction_NewEx,
        //     PyObject_GetAttrString, PyTuple_Pack, PyTuple_New, PyDict_New, PyDict_SetItemString,
        //     PyObject_Call, PyErr_WriteUnraisable, Py_XDECREF.
        let registered = unsafe {
            let module = pyo3_ffi::PyImport_ImportModule(module.as_ptr());
            let callback = pyo3_ffi::PyCFunction_NewEx(
                definition,
                core::ptr::null_mut(),
                core::ptr::null_mut(),
            );
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
        };
        // SAFETY: attached; what `take_error` took above.
        unsafe { crate::raw::ffi::restore_error(caller_error) };
        if registered {
            self.registered.store(epoch, Ordering::Release);
        }
        // Released either way; after a failure another caller may try again.
        *self.claim.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// The definition of a hook taking no arguments, for a `static mut` that
/// [`PythonHook::register`] hands to Python.
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

/// A new reference to `None`, what a hook returns.
///
/// # Safety
/// The thread is attached.
pub(crate) unsafe fn none() -> *mut PyObject {
    // SAFETY: attached (caller); `Py_None` is immortal or reference-counted, either way
    // the increment makes the returned reference new.
    // C preconditions: raw::ffi, Py_None, Py_INCREF.
    unsafe {
        let none = pyo3_ffi::Py_None();
        pyo3_ffi::Py_INCREF(none);
        none
    }
}
