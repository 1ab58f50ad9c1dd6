//! This thread's claims on interpreters: at most one
//! [`ThreadStateHandle`](crate::ThreadStateHandle) per (thread, interpreter), and which
//! thread states this thread's handles own.

use core::cell::RefCell;
use core::mem::ManuallyDrop;
use core::ptr;
use std::sync::Arc;

use crate::raw::epoch::epoch;
use crate::raw::ffi::{PyInterpreterState, PyThreadState};

/// Whether an interpreter this crate created is still alive and may be used; implemented
/// by its record (`interpreters::interpreter_end`).
pub(crate) trait InterpreterLife: Send + Sync {
    fn is_usable(&self) -> bool;
}

/// The handles of this thread. `ManuallyDrop`, like the rest of the context: the buffer is
/// freed when it empties.
pub(crate) struct Claims(RefCell<ManuallyDrop<Vec<Claim>>>);

/// This thread's claim on an interpreter.
struct Claim {
    interpreter: *mut PyInterpreterState,
    /// The handle's thread state, null until it is created.
    tstate: *mut PyThreadState,
    /// The interpreter's record if this crate created it (the shutdown may then end it, and
    /// the thread state with it).
    life: Option<Arc<dyn InterpreterLife>>,
    /// The runtime epoch the handle was made in.
    epoch: u64,
}

impl Claim {
    /// Whether the handle's thread state still exists, as far as the crate knows.
    fn is_current(&self) -> bool {
        match &self.life {
            Some(life) => life.is_usable(),
            None => self.epoch == epoch(),
        }
    }
}

impl Claims {
    /// No claim.
    pub(crate) const fn new() -> Claims {
        Claims(RefCell::new(ManuallyDrop::new(Vec::new())))
    }

    /// Claims `interpreter` (of the runtime of `epoch`, with `life` if this crate created it)
    /// for a new handle of this thread; false if the thread already has one.
    pub(crate) fn claim(
        &self,
        interpreter: *mut PyInterpreterState,
        life: Option<Arc<dyn InterpreterLife>>,
        epoch: u64,
    ) -> bool {
        let mut claims = self.0.borrow_mut();
        if let Some(index) = claims.iter().position(|c| c.interpreter == interpreter) {
            if claims[index].is_current() {
                return false;
            }
            // The handle of an interpreter that was ended (at shutdown, or with its runtime),
            // whose address a new one was given.
            claims.swap_remove(index);
        }
        claims.push(Claim {
            interpreter,
            tstate: ptr::null_mut(),
            life,
            epoch,
        });
        true
    }

    /// Records the thread state of this thread's handle for `interpreter`.
    pub(crate) fn record_thread_state(
        &self,
        interpreter: *mut PyInterpreterState,
        tstate: *mut PyThreadState,
    ) {
        let mut claims = self.0.borrow_mut();
        if let Some(claim) = claims.iter_mut().find(|c| c.interpreter == interpreter) {
            claim.tstate = tstate;
        }
    }

    /// Gives up this thread's claim on `interpreter`.
    pub(crate) fn unclaim(&self, interpreter: *mut PyInterpreterState) {
        let mut claims = self.0.borrow_mut();
        claims.retain(|claim| claim.interpreter != interpreter);
        if claims.is_empty() {
            claims.shrink_to_fit(); // frees the buffer
        }
    }

    /// Forgets every claim, when the thread exits: a handle that was leaked (or is dropped by
    /// a later thread-local destructor, which claims again) keeps nothing alive after it.
    pub(crate) fn forget_all(&self) {
        let mut claims = self.0.borrow_mut();
        claims.clear();
        claims.shrink_to_fit(); // frees the buffer
    }

    /// Whether `tstate` is the thread state of one of these handles, still alive.
    pub(crate) fn is_handle_state(&self, tstate: *mut PyThreadState) -> bool {
        self.0
            .borrow()
            .iter()
            .any(|claim| claim.tstate == tstate && claim.is_current())
    }
}
