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

#![allow(
    unsafe_code,
    reason = "registers a Python callback (C preconditions: raw::ffi)"
)]

use crate::context::queries;
use crate::raw::ffi;
use crate::runtime::python_hook::PythonHook;
use crate::runtime::{finalization, native_thread, shutdown};

/// The after-fork callback.
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

/// The callback, run in the child, by the forking thread, attached to the main
/// interpreter: its current thread state is the only one left.
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
