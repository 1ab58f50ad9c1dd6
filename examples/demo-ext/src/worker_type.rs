//! The Python type `Worker(callback, capacity=0)`: a heap type created per module (so per
//! interpreter) from [`SPEC`], in front of [`crate::worker`].

use core::ffi::{c_char, c_int, c_void};
use core::ptr;
use std::sync::Arc;
use std::time::Duration;

use gilguard::{ExceptionKind, PythonException, boundary, without_gil};
use pyo3_ffi as ffi;

use crate::ModuleState;
use crate::py;
use crate::registry::Registry;
use crate::worker::{self, Refused, Shared};

/// How long `join` and a blocked `submit` wait with the GIL released before they take it
/// back to check for signals: short enough that Ctrl-C feels immediate.
const SIGNAL_CHECK_INTERVAL: Duration = Duration::from_millis(50);

const DOC: &core::ffi::CStr = c"Worker(callback, capacity=0)
--

Calls callback(item) on a native thread, with the GIL, once per submitted item, in
submission order. submit(item) queues an item; with capacity > 0 it blocks (GIL released)
while capacity items are waiting. join() closes the queue, waits (GIL released) until every
item was processed, and returns how many were; if a callback raised, join() raises the first
such exception instead. At interpreter exit, or when a Worker is dropped without join(),
items not yet processed are dropped.";

/// The instance layout.
#[repr(C)]
struct WorkerObject {
    ob_base: ffi::PyObject,
    /// `None` only between allocation and the end of `__new__`.
    inner: Option<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    /// The interpreter's registry, which this worker is in until its thread is gone.
    registry: Arc<Registry>,
}

/// `RuntimeError(message)`, made in Rust.
fn runtime_error(message: impl Into<String>) -> PythonException {
    PythonException::new(ExceptionKind::RuntimeError, message)
}

/// `Worker.__new__(callback, capacity=0)`.
///
/// # Safety
/// Called by CPython, attached, with `subtype` the module's `Worker` type.
unsafe extern "C" fn worker_new(
    subtype: *mut ffi::PyTypeObject,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    boundary(|| {
        let mut callback: *mut ffi::PyObject = ptr::null_mut();
        let mut capacity: ffi::Py_ssize_t = 0;
        let mut names = [
            c"callback".as_ptr().cast_mut(),
            c"capacity".as_ptr().cast_mut(),
            ptr::null_mut::<c_char>(),
        ];
        // SAFETY: attached; the format string matches the out-pointers ("O": a borrowed
        // object, "n": a `Py_ssize_t`), and `names` ends with null. The keyword list's pointer
        // type differs between versions (`char **` before 3.13), which `cast` follows.
        let parsed = unsafe {
            ffi::PyArg_ParseTupleAndKeywords(
                args,
                kwargs,
                c"O|n:Worker".as_ptr(),
                names.as_mut_ptr().cast(),
                &mut callback as *mut *mut ffi::PyObject,
                &mut capacity as *mut ffi::Py_ssize_t,
            )
        };
        if parsed == 0 {
            return Err(PythonException::fetch());
        }
        // SAFETY: attached; `callback` is a live borrowed argument.
        if unsafe { ffi::PyCallable_Check(callback) } == 0 {
            let message = "callback must be callable";
            return Err(PythonException::new(ExceptionKind::TypeError, message));
        }
        let capacity = usize::try_from(capacity).map_err(|_| {
            PythonException::new(ExceptionKind::ValueError, "capacity must not be negative")
        })?;
        // SAFETY: `subtype` is a module's `Worker` type (it cannot be subclassed), created by
        // `PyType_FromModuleAndSpec` in that module's `exec`; `None` has an exception set.
        let state = unsafe { ModuleState::of_type(subtype) }.ok_or_else(PythonException::fetch)?;
        let registry = state
            .registry()
            .ok_or_else(|| runtime_error("the gilguard_demo module is not initialized"))?;

        // SAFETY: attached; allocation of an instance of a heap type (which counts a reference
        // to the type, released in `worker_dealloc`). Dropping `object` on an error below
        // deallocates it, shutting down its worker if it has one.
        let object = unsafe { py::owned(ffi::PyType_GenericAlloc(subtype, 0)) }?;
        let instance = object.as_ptr().cast::<WorkerObject>();
        // SAFETY: `object` is freshly allocated with `WorkerObject`'s size (the spec's
        // basicsize) and zeroed; writing the field initializes it without reading the zeroes.
        unsafe { ptr::addr_of_mut!((*instance).inner).write(None) };

        // The interpreter this call runs in, which the worker must call back into (maybe a
        // sub-interpreter, not the main one): the callback's, which it remembers.
        // SAFETY: attached; `callback` is live.
        let callback = unsafe { py::borrowed(callback) }?;
        // SAFETY: the callback's interpreter is not ended while the thread lives: `join`,
        // `worker_dealloc` and the `atexit` hook (which `Py_EndInterpreter` and
        // `Py_FinalizeEx` run first) wait for the thread, and the registry refuses new
        // workers once the hook ran.
        let shared = unsafe { Shared::start(callback, capacity) }
            .map_err(|error| runtime_error(format!("cannot start a worker thread: {error}")))?;
        let registered = registry.add(&shared);
        // SAFETY: `inner` was initialized above; nothing else refers to `object` yet.
        unsafe { (*instance).inner = Some(Inner { shared, registry }) };
        if !registered {
            // Dropping `object` deallocates it, which shuts the fresh worker down again.
            return Err(runtime_error("the interpreter is shutting down"));
        }
        Ok(object.to_owned_ptr()?.as_ptr())
    })
}

/// The worker behind `object`.
///
/// # Safety
/// Attached; `object` is a live `Worker`.
unsafe fn inner_of<'a>(object: *mut ffi::PyObject) -> Result<&'a Inner, PythonException> {
    // SAFETY: `object` is a `WorkerObject` (caller), alive for the duration of the method
    // call that borrows it; `inner` is only replaced in `__new__` and `dealloc`.
    let inner = unsafe { (*object.cast::<WorkerObject>()).inner.as_ref() };
    inner.ok_or_else(|| runtime_error("uninitialized Worker"))
}

/// `Worker.submit(item)` (`METH_O`).
///
/// # Safety
/// Called by CPython, attached, with a live `Worker` and argument.
unsafe extern "C" fn submit(
    object: *mut ffi::PyObject,
    item: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    boundary(|| {
        // SAFETY: forwarded from CPython's calling convention.
        let inner = unsafe { inner_of(object) }?;
        // SAFETY: attached; `item` is a live argument. The queue takes this reference over;
        // a refused one is dropped (released) on return, outside the queue's lock.
        let mut pending = unsafe { py::borrowed(item) }?;
        loop {
            let (item, reason) = match inner.shared.try_push(pending) {
                // SAFETY: attached.
                Ok(()) => return Ok(unsafe { py::none() }),
                Err(refused) => refused,
            };
            let message = match reason {
                Refused::Closed => Some("submit() on a Worker that was joined (or shut down)"),
                Refused::Full if inner.shared.on_worker_thread() => Some(
                    "submit() from the Worker's own callback on a full queue would wait for itself",
                ),
                Refused::Full => None,
            };
            if let Some(message) = message {
                return Err(runtime_error(message));
            }
            pending = item;
            let shared = Arc::clone(&inner.shared);
            without_gil(move || shared.wait_for_space(SIGNAL_CHECK_INTERVAL));
            // SAFETY: attached again; on -1 the signal handler's exception is set.
            if unsafe { ffi::PyErr_CheckSignals() } != 0 {
                return Err(PythonException::fetch());
            }
        }
    })
}

/// `Worker.join()` (`METH_NOARGS`).
///
/// # Safety
/// Called by CPython, attached, with a live `Worker`.
unsafe extern "C" fn join(
    object: *mut ffi::PyObject,
    _unused: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    boundary(|| {
        // SAFETY: forwarded from CPython's calling convention.
        let inner = unsafe { inner_of(object) }?;
        let shared = &inner.shared;
        if shared.on_worker_thread() {
            return Err(runtime_error("join() from the Worker's own callback"));
        }
        let nothing_dropped = shared.close(false);
        debug_assert!(nothing_dropped.is_empty());
        loop {
            let waiting = Arc::clone(shared);
            if without_gil(move || waiting.wait_finished(SIGNAL_CHECK_INTERVAL)) {
                break;
            }
            // SAFETY: attached again; on -1 the signal handler's exception is set. The queue
            // stays closed and the worker keeps going; a later `join` waits again.
            if unsafe { ffi::PyErr_CheckSignals() } != 0 {
                return Err(PythonException::fetch());
            }
        }
        let reaping = Arc::clone(shared);
        without_gil(move || reaping.reap());
        inner.registry.remove(shared);
        // Leftover items are dropped (released) here, attached, outside the queue's lock.
        let (outcome, _leftovers) = shared.take_outcome();
        if let Some(error) = outcome.error {
            // Taken on the worker thread, in this interpreter: raised again as it was, the
            // same object with its traceback.
            return Err(error);
        }
        if let Some(message) = outcome.attach_error {
            let message = format!("the worker thread could not attach: {message}");
            return Err(runtime_error(message));
        }
        // SAFETY: attached; a new reference, or null with an exception set.
        py::checked(unsafe { ffi::PyLong_FromSize_t(outcome.processed) })
    })
}

/// `tp_dealloc`: a `Worker` dropped without `join` stops its thread, dropping pending items.
///
/// Not run in `boundary`: CPython ignores what `tp_dealloc` returns (nothing) and expects no
/// exception from it, so there is nothing to turn an error into. Instead nothing here may
/// panic: no `expect`, and [`worker::shut_down`] is written not to.
///
/// # Safety
/// Called by CPython, attached, with a `Worker` whose reference count reached zero.
unsafe extern "C" fn worker_dealloc(object: *mut ffi::PyObject) {
    // SAFETY: `object` is a `WorkerObject` nobody else refers to any more; `inner` was
    // initialized right after allocation.
    let inner = unsafe { (*object.cast::<WorkerObject>()).inner.take() };
    if let Some(Inner { shared, registry }) = inner {
        // Deallocation may happen while an exception propagates; the shutdown runs Python
        // code (finalizers of dropped items), which must not see or clobber it. (`take` only
        // fails where the crate cannot tell runtimes apart, leaving the exception set.)
        let propagating = PythonException::take().ok().flatten();
        // Attached to the worker's interpreter (a `Worker` only lives there).
        let gone = worker::shut_down(core::slice::from_ref(&shared));
        if let Some(error) = propagating {
            // Taken here, so attached to its interpreter: `restore` cannot fail.
            let _ = error.restore();
        }
        if !gone.is_empty() {
            registry.remove(&shared);
        }
        // Otherwise this runs inside the worker's own callback: it stays registered, so that
        // the `atexit` hook waits for its thread.
    }
    // SAFETY: heap type instances own a reference to their type, released after the memory
    // is freed with the type's `tp_free` (the inherited `PyObject_Free` here; a heap type
    // always has one, so the `None` branch, a leak, is only there not to panic).
    unsafe {
        let kind = ffi::Py_TYPE(object);
        if let Some(free) = (*kind).tp_free {
            free(object.cast::<c_void>());
        }
        ffi::Py_DECREF(kind.cast());
    }
}

/// The methods of `Worker`; CPython keeps a pointer to this table in every type made from
/// [`SPEC`], so it is `static`.
static mut METHODS: [ffi::PyMethodDef; 3] = [
    ffi::PyMethodDef {
        ml_name: c"submit".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer { PyCFunction: submit },
        ml_flags: ffi::METH_O,
        ml_doc: c"submit(item)\n--\n\nQueues item for callback(item); blocks (GIL released) while a bounded queue is full.".as_ptr(),
    },
    ffi::PyMethodDef {
        ml_name: c"join".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer { PyCFunction: join },
        ml_flags: ffi::METH_NOARGS,
        ml_doc: c"join()\n--\n\nCloses the queue, waits (GIL released) for every item, returns how many were processed; raises the first callback exception instead, if any.".as_ptr(),
    },
    ffi::PyMethodDef::zeroed(),
];

static mut SLOTS: [ffi::PyType_Slot; 5] = [
    ffi::PyType_Slot {
        slot: ffi::Py_tp_new,
        pfunc: worker_new as *mut c_void,
    },
    ffi::PyType_Slot {
        slot: ffi::Py_tp_dealloc,
        pfunc: worker_dealloc as *mut c_void,
    },
    ffi::PyType_Slot {
        slot: ffi::Py_tp_methods,
        pfunc: &raw mut METHODS as *mut c_void,
    },
    ffi::PyType_Slot {
        slot: ffi::Py_tp_doc,
        pfunc: DOC.as_ptr() as *mut c_void,
    },
    ffi::PyType_Slot {
        slot: 0,
        pfunc: ptr::null_mut(),
    },
];

/// The spec every module instance creates its own `Worker` type from.
///
/// Not GC-tracked: an instance holds no Python reference itself; the callback belongs to the
/// worker thread. A callback that refers back to its `Worker` keeps both alive until `join()`
/// or interpreter exit, a cycle through a thread that the collector could not break anyway.
pub static mut SPEC: ffi::PyType_Spec = ffi::PyType_Spec {
    name: c"gilguard_demo.Worker".as_ptr(),
    basicsize: size_of::<WorkerObject>() as c_int,
    itemsize: 0,
    flags: ffi::Py_TPFLAGS_DEFAULT as _,
    slots: &raw mut SLOTS as *mut ffi::PyType_Slot,
};
