//! The live workers of one interpreter, and the `atexit` hook that stops them before the
//! interpreter goes away.
//!
//! A worker thread holds a thread state of the interpreter its `Worker` was created in.
//! `Py_EndInterpreter` aborts if the interpreter still has other thread states, and once
//! `Py_FinalizeEx` has set the finalizing flag, a native thread that tries to attach is
//! killed (CPython <= 3.13) or hangs. Both run the interpreter's `atexit` callbacks before
//! either happens, so the hook registered here closes every live worker, drops the items
//! still queued, and waits (GIL released) until every worker thread is gone.

use std::sync::{Arc, Mutex, PoisonError};

use gilguard::{PythonException, boundary};
use pyo3_ffi as ffi;

use crate::worker::{self, Shared};
use crate::{ModuleState, py};

/// The workers of one module instance, that is, of one interpreter.
#[derive(Debug, Default)]
pub struct Registry {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Set by the `atexit` hook: no new worker may start after it ran.
    closed: bool,
    workers: Vec<Arc<Shared>>,
}

impl Registry {
    /// Registers a started worker; false if the interpreter is already shutting down.
    pub fn add(&self, worker: &Arc<Shared>) -> bool {
        let mut inner = self.lock();
        if inner.closed {
            return false;
        }
        inner.workers.push(Arc::clone(worker));
        true
    }

    /// Forgets a worker whose thread is gone.
    pub fn remove(&self, worker: &Arc<Shared>) {
        self.lock()
            .workers
            .retain(|other| !Arc::ptr_eq(other, worker));
    }

    /// Refuses new workers and hands over the live ones.
    fn close(&self) -> Vec<Arc<Shared>> {
        let mut inner = self.lock();
        inner.closed = true;
        std::mem::take(&mut inner.workers)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The `atexit` hook (`METH_NOARGS`, bound to the module): shuts down every live worker of
/// this interpreter, dropping their pending items.
///
/// # Safety
/// Called by CPython, attached, with the module as `module`.
pub unsafe extern "C" fn at_exit(
    module: *mut ffi::PyObject,
    _unused: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    boundary(|| {
        // SAFETY: `module` is this module, whose state `exec` initialized; attached.
        let registry = unsafe { ModuleState::of(module).registry() };
        if let Some(registry) = registry {
            // Attached to the interpreter of this module, which created these workers.
            worker::shut_down(&registry.close());
        }
        // SAFETY: attached.
        Ok(unsafe { py::none() })
    })
}

/// `atexit.register(hook)` for a hook bound to `module`.
///
/// # Safety
/// Called from the module's `exec`, attached, with the module being executed.
pub unsafe fn register_at_exit(module: *mut ffi::PyObject) -> Result<(), PythonException> {
    // The definition must outlive every function object made from it, which `static` does.
    // CPython only reads it.
    static mut AT_EXIT: ffi::PyMethodDef = ffi::PyMethodDef {
        ml_name: c"_stop_workers_at_exit".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunction: at_exit,
        },
        ml_flags: ffi::METH_NOARGS,
        ml_doc: c"Stops this interpreter's Worker threads (registered with atexit).".as_ptr(),
    };
    // SAFETY: attached (caller). `&raw mut` makes no reference to the `static mut`, and
    // CPython never writes through the pointer. Every new reference is an `OwnedRef`.
    unsafe {
        let hook = py::owned(ffi::PyCFunction_NewEx(
            &raw mut AT_EXIT,
            module,
            core::ptr::null_mut(),
        ))?;
        let register = py::import_attribute(c"atexit", c"register")?;
        py::owned(ffi::PyObject_CallOneArg(register.as_ptr(), hook.as_ptr()))?;
    }
    Ok(())
}
