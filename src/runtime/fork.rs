//! The child of a `fork()`: CPython deleted every thread state but the forking thread's
//! current one, and every sub-interpreter. The after-fork callback (run after `os.fork()`
//! and by `PyOS_AfterFork_Child()`, which a C or Rust caller of `fork()` must call) starts a
//! new runtime epoch, making every interpreter and handle from before the fork inert
//! (`GilError::InterpreterEnded`; dropping does nothing), forgets the native threads' kept
//! thread states, and empties the forking thread's frames that name a deleted one.

#![allow(
    unsafe_code,
    reason = "registers a Python callback (C preconditions: raw::ffi)"
)]

use crate::context::queries;
use crate::raw::ffi;
use crate::runtime::python_hook::PythonHook;
use crate::runtime::{finalization, native_thread, shutdown};

static HOOK: PythonHook = PythonHook::new();

/// Registers the after-fork callback for the current runtime, once.
///
/// # Safety
/// The thread is attached to the main interpreter.
pub(crate) unsafe fn install() {
    // SAFETY: attached to the main interpreter (caller); `AFTER_FORK` is a static.
    unsafe {
        HOOK.register(
            c"os",
            c"register_at_fork",
            Some(c"after_in_child"),
            &raw mut AFTER_FORK,
        );
    }
}

static mut AFTER_FORK: ffi::PyMethodDef = ffi::no_args_method(
    c"_gilguard_after_fork_in_child",
    after_fork_in_child,
    c"Forgets the thread states gilguard knew before the fork.",
);

/// Run in the child by the forking thread, attached to the main interpreter: its current
/// thread state is the only one left.
unsafe extern "C" fn after_fork_in_child(
    _module: *mut ffi::PyObject,
    _args: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let survivor = ffi::current_thread_state();
    let epoch = finalization::after_fork();
    HOOK.inherited(epoch);
    let kept_frames = queries::forget_thread_states_except(survivor);
    let guards = native_thread::after_fork(survivor, epoch);
    shutdown::after_fork(epoch, guards.map(|guards| (guards, kept_frames)));
    // SAFETY: attached.
    unsafe { ffi::new_none() }
}
