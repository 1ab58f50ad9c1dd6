//! Registering this crate's Python-level callbacks for the current runtime: the `atexit`
//! one of the shutdown gate and the after-fork one.

#![allow(
    unsafe_code,
    reason = "registers Python callbacks (C preconditions: raw::ffi)"
)]

use crate::raw::epoch::epoch;
use crate::runtime::{finalization, fork, shutdown};

/// Registers the `atexit` and after-fork callbacks for the current runtime, once. This
/// imports modules, which runs Python code: the guards layer calls it inside a frame that
/// lets that code call back into Rust (`guards::attach::install_hooks`).
///
/// # Safety
/// The thread is attached to the main interpreter.
pub(crate) unsafe fn install_hooks() {
    // SAFETY: the caller's.
    unsafe {
        shutdown::install();
        fork::install();
    }
    finalization::hooks_were_installed(epoch());
}
