//! `gilguard_demo`: a CPython extension module written on `pyo3-ffi` and `gilguard`, with
//! no `pyo3`.
//!
//! * `busy(ms)` and `f(callback, ms)` ([`busy`]): Rust work with the GIL released.
//! * `Worker(callback, capacity=0)` ([`worker_type`], [`worker`], [`registry`]): a native
//!   thread that calls back into the interpreter the `Worker` was created in.
//! * `run_in_subinterpreters(scripts, threads=1, own_gil=False)` ([`subinterpreters`]).
//! * `gil_stats()`, `gil_stats_reset()` ([`gil_stats`]): gilguard's `stats` snapshot as a
//!   dict: attaches, waits and holds per interpreter and per call site.
//! * `panic_for_tests(message)` ([`panic_for_tests`]): a test hook that panics.
//!
//! Every function Python calls runs its body in [`gilguard::boundary`]: errors, returned with
//! `?` as [`gilguard::PythonException`]s, become the Python exception, and a panic becomes a
//! `RuntimeError` instead of aborting the process. The slots that cannot report an error
//! (`m_traverse`, `m_clear`, `m_free`, `tp_dealloc`) say why they are not wrapped, and are
//! written not to panic.
//!
//! An object that is stored or crosses threads (a `Worker`'s callback and queued items, a
//! callback's exception on its way to `join`) is a [`gilguard::OwnedRef`], which is `Send`
//! and `Sync` and releases its reference only where that is sound. The module has no
//! `unsafe impl Send` or `Sync` of its own.
//!
//! The module uses multi-phase initialization: every interpreter that imports it gets its own
//! module object, module state ([`ModuleState`]) and `Worker` type, and nothing mutable is
//! shared between interpreters. So it declares support for sub-interpreters with their own
//! GIL (3.12+), and imports in `InterpreterConfig::isolated()` interpreters.

mod busy;
mod errors;
mod gil_stats;
mod py;
mod registry;
mod subinterpreters;
mod worker;
mod worker_type;

use core::ffi::{c_int, c_void};
use core::ptr;
use std::sync::Arc;

use gilguard::{PythonException, boundary};
use pyo3_ffi as ffi;

use crate::registry::Registry;

/// The per-interpreter state of the module (`m_size` bytes, zeroed by CPython before `exec`
/// fills it in).
#[repr(C)]
#[derive(Debug)]
pub(crate) struct ModuleState {
    /// This module's `Worker` type, a strong reference (also reachable as `module.Worker`,
    /// but that attribute can be replaced). A raw pointer, not an `OwnedRef`: it never leaves
    /// its interpreter's module object, the collector visits it (`traverse`) and `clear`
    /// drops it, and CPython zero-fills the state, which is a valid null pointer but not
    /// documented as a valid `Option<OwnedRef>`.
    worker_type: *mut ffi::PyObject,
    /// `Arc::into_raw` of the interpreter's worker registry; null until `exec`, and after
    /// `m_free`.
    registry: *const Registry,
}

impl ModuleState {
    /// The state of `module`.
    ///
    /// # Safety
    /// Attached; `module` is a `gilguard_demo` module object, of this interpreter.
    pub(crate) unsafe fn of<'a>(module: *mut ffi::PyObject) -> &'a ModuleState {
        // SAFETY: a module made from `MODULE` has a state of `ModuleState`'s size (caller),
        // allocated with the module and zeroed, which is a valid `ModuleState`; it is only
        // written by `exec` and the GC hooks, which do not overlap with its readers.
        unsafe { &*ffi::PyModule_GetState(module).cast::<ModuleState>() }
    }

    /// The state of the module that created `kind`; `None`, with an exception set, if `kind`
    /// has no module.
    ///
    /// # Safety
    /// Attached; `kind` is a live type, made by `exec` (`PyType_FromModuleAndSpec`) if it
    /// has a module.
    pub(crate) unsafe fn of_type<'a>(kind: *mut ffi::PyTypeObject) -> Option<&'a ModuleState> {
        // SAFETY: as in `of`; the type keeps its module alive.
        unsafe {
            ffi::PyType_GetModuleState(kind)
                .cast::<ModuleState>()
                .as_ref()
        }
    }

    /// The interpreter's worker registry, `None` before `exec`.
    pub(crate) fn registry(&self) -> Option<Arc<Registry>> {
        if self.registry.is_null() {
            return None;
        }
        // SAFETY: a non-null `registry` came from `Arc::into_raw` in `exec`, and the state
        // still owns that count (only `m_free` gives it up, after which no one reads it).
        unsafe {
            Arc::increment_strong_count(self.registry);
            Some(Arc::from_raw(self.registry))
        }
    }
}

/// `Py_mod_exec`: fills in the module object CPython created for one interpreter.
///
/// # Safety
/// Called by CPython, attached, with a fresh module made from `MODULE`.
unsafe extern "C" fn exec(module: *mut ffi::PyObject) -> c_int {
    boundary(|| {
        // SAFETY: attached; the state is this module's (`m_size` > 0) and not shared with any
        // other interpreter. The type's reference is kept by the state (released in `clear`),
        // and the spec is only read by CPython.
        unsafe {
            let state = ffi::PyModule_GetState(module).cast::<ModuleState>();
            let spec = &raw mut worker_type::SPEC;
            let worker_type =
                py::checked(ffi::PyType_FromModuleAndSpec(module, spec, ptr::null_mut()))?;
            (*state).worker_type = worker_type;
            (*state).registry = Arc::into_raw(Arc::new(Registry::default()));
            if ffi::PyObject_SetAttrString(module, c"Worker".as_ptr(), worker_type) != 0 {
                return Err(PythonException::fetch());
            }
            registry::register_at_exit(module)?;
        }
        Ok(0)
    })
}

/// `m_traverse`: the state's reference to the `Worker` type, which refers back to the module.
///
/// Not run in `boundary`: the collector calls it during a collection, where no Python code
/// may run and no exception may be set, and its result is `visit`'s, not an error signal.
/// Nothing here panics.
///
/// # Safety
/// Called by CPython's collector with a module made from `MODULE`.
unsafe extern "C" fn traverse(
    module: *mut ffi::PyObject,
    visit: ffi::visitproc,
    arg: *mut c_void,
) -> c_int {
    // SAFETY: the state belongs to `module`; it may still be all zeroes (before `exec`).
    unsafe {
        let state = ffi::PyModule_GetState(module).cast::<ModuleState>();
        if state.is_null() || (*state).worker_type.is_null() {
            return 0;
        }
        visit((*state).worker_type, arg)
    }
}

/// `m_clear`: drops the state's reference to the `Worker` type.
///
/// Not run in `boundary`: the collector (or the module's deallocation) calls it, and expects
/// it to clear, not to raise. Nothing here panics.
///
/// # Safety
/// Called by CPython, attached, with a module made from `MODULE`.
unsafe extern "C" fn clear(module: *mut ffi::PyObject) -> c_int {
    // SAFETY: attached; the state belongs to `module`. The pointer is nulled before the
    // reference is released, as `Py_CLEAR` does, since releasing it may run code.
    unsafe {
        let state = ffi::PyModule_GetState(module).cast::<ModuleState>();
        if state.is_null() {
            return 0;
        }
        let worker_type = core::mem::replace(&mut (*state).worker_type, ptr::null_mut());
        if !worker_type.is_null() {
            ffi::Py_DECREF(worker_type);
        }
    }
    0
}

/// `m_free`: releases the state when the module object is deallocated. By then every
/// `Worker` of the module is gone (each keeps its type, and so the module, alive), and the
/// `atexit` hook or their deallocation stopped their threads.
///
/// Not run in `boundary`: it returns nothing, and CPython expects no exception from it.
/// Nothing here panics.
///
/// # Safety
/// Called by CPython, attached, with a module made from `MODULE`.
unsafe extern "C" fn free(module: *mut c_void) {
    let module = module.cast::<ffi::PyObject>();
    // SAFETY: as `clear`; the registry's count taken in `exec` is given up exactly once, as
    // the pointer is nulled.
    unsafe {
        clear(module);
        let state = ffi::PyModule_GetState(module).cast::<ModuleState>();
        if state.is_null() {
            return;
        }
        let registry = core::mem::replace(&mut (*state).registry, ptr::null());
        if !registry.is_null() {
            drop(Arc::from_raw(registry));
        }
    }
}

/// `panic_for_tests(message)` (`METH_O`), a test hook: panics with `message`.
///
/// No other function of the module can be made to panic from Python. The tests call it from
/// Python code in the main interpreter, in a `Worker`'s callback and in a sub-interpreter, to
/// check that a panic reaches its caller as a `RuntimeError` (through [`boundary`]) and
/// leaves the module usable.
///
/// # Safety
/// Called by CPython, attached, with a live argument.
unsafe extern "C" fn panic_for_tests(
    _module: *mut ffi::PyObject,
    message: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    boundary(|| -> Result<*mut ffi::PyObject, PythonException> {
        // SAFETY: attached with a live argument (CPython's calling convention).
        let message = unsafe { py::to_string(message) }?;
        panic!("{message}")
    })
}

/// The module's functions. CPython keeps pointers into this table, so it is `static`; it is
/// only read.
static mut METHODS: [ffi::PyMethodDef; 7] = [
    ffi::PyMethodDef {
        ml_name: c"busy".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunction: busy::busy,
        },
        ml_flags: ffi::METH_O,
        ml_doc: c"busy(ms)\n--\n\nComputes for about ms milliseconds with the GIL released; returns a checksum that depends only on ms.".as_ptr(),
    },
    ffi::PyMethodDef {
        ml_name: c"f".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunctionFast: busy::f,
        },
        ml_flags: ffi::METH_FASTCALL,
        ml_doc: c"f(callback, ms)\n--\n\nms of work without the GIL, callback() with it, ms more without it; returns what callback returned.".as_ptr(),
    },
    ffi::PyMethodDef {
        ml_name: c"run_in_subinterpreters".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunctionWithKeywords: subinterpreters::run_in_subinterpreters,
        },
        ml_flags: ffi::METH_VARARGS | ffi::METH_KEYWORDS,
        ml_doc: c"run_in_subinterpreters(scripts, threads=1, own_gil=False)\n--\n\nRuns each script in a sub-interpreter of its own, once on each of threads native threads; returns str(result) of each interpreter's global result.".as_ptr(),
    },
    ffi::PyMethodDef {
        ml_name: c"panic_for_tests".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunction: panic_for_tests,
        },
        ml_flags: ffi::METH_O,
        ml_doc: c"panic_for_tests(message)\n--\n\nTest hook: panics in Rust with message, which reaches the caller as RuntimeError.".as_ptr(),
    },
    ffi::PyMethodDef {
        ml_name: c"gil_stats".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunction: gil_stats::gil_stats,
        },
        ml_flags: ffi::METH_NOARGS,
        ml_doc: c"gil_stats()\n--\n\ngilguard's GIL statistics: attaches, waits and holds in total, per interpreter and per call site (times in seconds).".as_ptr(),
    },
    ffi::PyMethodDef {
        ml_name: c"gil_stats_reset".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunction: gil_stats::gil_stats_reset,
        },
        ml_flags: ffi::METH_NOARGS,
        ml_doc: c"gil_stats_reset()\n--\n\nSets gilguard's GIL statistics to zero.".as_ptr(),
    },
    ffi::PyMethodDef::zeroed(),
];

/// The end of a slot list.
const END: ffi::PyModuleDef_Slot = ffi::PyModuleDef_Slot {
    slot: 0,
    value: ptr::null_mut(),
};

/// Every interpreter gets its own module object and state, `Worker` type and registry, and
/// no Python object is shared between interpreters: the module supports sub-interpreters with
/// their own GIL.
#[cfg(Py_3_12)]
const MULTIPLE_INTERPRETERS: ffi::PyModuleDef_Slot = ffi::PyModuleDef_Slot {
    slot: ffi::Py_mod_multiple_interpreters,
    value: ffi::Py_MOD_PER_INTERPRETER_GIL_SUPPORTED,
};
#[cfg(not(Py_3_12))]
const MULTIPLE_INTERPRETERS: ffi::PyModuleDef_Slot = END;

/// `Py_MOD_GIL_USED`: the module has not been made or tested for free-threaded builds. It
/// reads borrowed items of lists that another thread could change without a GIL (the
/// `scripts` argument), and gilguard, which it builds on, is not tested there either. The
/// slot only matters on free-threaded builds, where importing the module then keeps the GIL
/// enabled; regular builds ignore it.
#[cfg(Py_3_13)]
const GIL: ffi::PyModuleDef_Slot = ffi::PyModuleDef_Slot {
    slot: ffi::Py_mod_gil,
    value: ffi::Py_MOD_GIL_USED,
};
#[cfg(not(Py_3_13))]
const GIL: ffi::PyModuleDef_Slot = END;

/// The slots; on versions without a slot, its place holds an early end marker.
static mut SLOTS: [ffi::PyModuleDef_Slot; 4] = [
    ffi::PyModuleDef_Slot {
        slot: ffi::Py_mod_exec,
        value: exec as *mut c_void,
    },
    MULTIPLE_INTERPRETERS,
    GIL,
    END,
];

/// The module definition. CPython initializes its object header once
/// (`PyModuleDef_Init`) and otherwise only reads it.
static mut MODULE: ffi::PyModuleDef = ffi::PyModuleDef {
    m_base: ffi::PyModuleDef_HEAD_INIT,
    m_name: c"gilguard_demo".as_ptr(),
    m_doc: c"A CPython extension module built on pyo3-ffi and gilguard.".as_ptr(),
    m_size: size_of::<ModuleState>() as ffi::Py_ssize_t,
    m_methods: &raw mut METHODS as *mut ffi::PyMethodDef,
    m_slots: &raw mut SLOTS as *mut ffi::PyModuleDef_Slot,
    m_traverse: Some(traverse),
    m_clear: Some(clear),
    m_free: Some(free),
};

/// The module's entry point: returns the definition, and CPython creates and executes a
/// module from it for each interpreter that imports `gilguard_demo` (multi-phase
/// initialization).
#[unsafe(no_mangle)]
pub extern "C" fn PyInit_gilguard_demo() -> *mut ffi::PyObject {
    boundary(|| {
        // SAFETY: called by the import machinery, attached. `&raw mut` makes no reference to
        // the `static mut`; `PyModuleDef_Init` initializes the definition's header once and
        // returns it as an object.
        py::checked(unsafe { ffi::PyModuleDef_Init(&raw mut MODULE) })
    })
}
