//! The shutdown gate: keeps threads Python did not create out of a runtime that is shutting
//! down, and lets the guards they already hold finish first.
//!
//! `Py_FinalizeEx` joins the non-daemon `threading` threads, runs the `atexit` callbacks,
//! and only then sets CPython's finalizing flag and deletes every other thread state. A
//! native thread that tries to attach after the flag is set is ended with `pthread_exit`
//! (CPython 3.13 and older; `pyo3-ffi` turns that into parking the thread forever, since a
//! forced unwind through Rust frames is undefined) or hangs (3.14+), and checking the flag
//! first leaves a window between the check and the attach.
//!
//! The gate closes that window for every attach that starts after shutdown begins: an
//! `atexit` callback, which runs before the flag is set and holds the GIL, closes the gate
//! (from then on attaching is refused with `GilError::Finalizing`), then releases the GIL
//! and waits, up to [`set_shutdown_timeout`], until the native threads have dropped the
//! guards they hold, so that their last callbacks complete and release the GIL properly.
//!
//! Every attach of a native thread to the thread state this crate keeps for it (`WithGil`,
//! `with_gil`, `GilGuard`) is counted before it starts, and a fence between each side's
//! write and read (asymmetric where the system allows, see [`crate::raw::asymmetric_fence`])
//! makes sure that shutdown either refuses such an attach or waits for it.
//!
//! What remains before 3.15 (documented in `docs/reliability.md`): a guard held past the
//! timeout re-attaches after the flag is set, and attaches this crate does not make
//! (foreign code's own `PyGILState_Ensure`, `pyo3`) are not waited for; a
//! `ThreadStateHandle`'s attaches are counted like a native thread's guards. Late threads
//! end parked (3.9–3.13) or blocked (3.14), never in undefined behaviour: CPython checks its flag
//! before it touches the thread state of a late thread. From 3.15 a native thread also holds
//! a PEP 788 interpreter guard while it holds guards of this crate: CPython does not set its
//! flag while one is open, so a thread that drops its guards in time never meets it, and a
//! thread that starts attaching once the flag is set is refused by CPython's own answer,
//! even where the gate is not installed or never closes. CPython waits for these guards
//! without a time limit; the `atexit` callback closes those still open when its timeout
//! passes, so that the exit stays bounded.

mod at_exit;
mod gate;

pub use at_exit::set_shutdown_timeout;
pub(crate) use at_exit::{end_interpreters_with, install};
pub(crate) use gate::{
    admit, admit_handle, admit_handle_if_open, admit_if_open, after_fork, closed, dismiss,
    is_open_for, register_thread, runtime_finalized, unregister_thread,
};
