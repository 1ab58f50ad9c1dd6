//! The crate's Python-level callbacks: the shutdown gate's `atexit` one, the after-fork one.

#![allow(
    unsafe_code,
    reason = "registers Python callbacks (C preconditions: raw::ffi)"
)]

use crate::raw::epoch::epoch;
use crate::runtime::{finalization, fork, shutdown};

/// Registers them, once per runtime; runs Python code (see `guards::attach::install_hooks`).
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
