//! Each thread's claims on interpreters: at most one [`ThreadStateHandle`] per (thread,
//! interpreter), and which thread states this thread's handles own.
//!
//! [`ThreadStateHandle`]: crate::ThreadStateHandle

use core::cell::RefCell;
use core::mem::ManuallyDrop;
use std::sync::Arc;

use crate::raw::ffi::PyThreadState;

use crate::interpreters::interpreter::Interpreter;
use crate::interpreters::interpreter_end::Record;
use crate::raw::epoch::epoch;

thread_local! {
    /// The handles of this thread. `ManuallyDrop`, so that it has no destructor and works
    /// in the destructors of other thread-locals, however late they run; the buffer is freed
    /// when it empties.
    static HANDLES: RefCell<ManuallyDrop<Vec<Claim>>> =
        const { RefCell::new(ManuallyDrop::new(Vec::new())) };
}

/// This thread's claim on an interpreter: at most one handle per (thread, interpreter).
struct Claim {
    interpreter: usize,
    /// The handle's thread state, null until it is created.
    tstate: *mut PyThreadState,
    /// The interpreter's record if this crate created it (the shutdown may then end it and
    /// delete the thread state).
    record: Option<Arc<Record>>,
    /// The runtime epoch the handle was made in.
    epoch: u64,
}

impl Claim {
    /// Whether the handle's thread state still exists, as far as the crate knows.
    fn is_current(&self) -> bool {
        match &self.record {
            Some(record) => record.is_usable(),
            None => self.epoch == epoch(),
        }
    }
}

/// Claims `interpreter` for a new handle of this thread; false if it already has one.
pub(crate) fn claim(interpreter: &Interpreter) -> bool {
    // Before a thread's exit or a shutdown can meet the claim.
    super::register_upcalls();
    let key = interpreter.as_ptr() as usize;
    HANDLES.with(|handles| {
        let mut handles = handles.borrow_mut();
        if let Some(index) = handles.iter().position(|claim| claim.interpreter == key) {
            if handles[index].is_current() {
                return false;
            }
            // The handle of an interpreter that was ended (at shutdown, or with its
            // runtime), whose address a new one was given.
            handles.swap_remove(index);
        }
        handles.push(Claim {
            interpreter: key,
            tstate: core::ptr::null_mut(),
            record: crate::interpreters::interpreter_end::record_of(interpreter.as_ptr()),
            epoch: interpreter.epoch(),
        });
        true
    })
}

/// Records the thread state of this thread's handle for `interpreter`.
pub(crate) fn record_thread_state(interpreter: usize, tstate: *mut PyThreadState) {
    HANDLES.with(|handles| {
        let mut handles = handles.borrow_mut();
        if let Some(claim) = handles
            .iter_mut()
            .find(|claim| claim.interpreter == interpreter)
        {
            claim.tstate = tstate;
        }
    });
}

/// Gives up this thread's claim on `interpreter`.
pub(crate) fn unclaim(interpreter: usize) {
    HANDLES.with(|handles| {
        let mut handles = handles.borrow_mut();
        handles.retain(|claim| claim.interpreter != interpreter);
        if handles.is_empty() {
            handles.shrink_to_fit(); // frees the buffer
        }
    });
}

/// Forgets this thread's claims, when it exits: a handle that was leaked (or is dropped
/// by a later thread-local destructor, which claims again) keeps nothing alive after the
/// thread.
pub(crate) fn forget_claims() {
    HANDLES.with(|handles| {
        let mut handles = handles.borrow_mut();
        handles.clear();
        handles.shrink_to_fit(); // frees the buffer
    });
}

/// Whether `tstate` is the thread state of one of this thread's handles, still alive.
pub(crate) fn is_handle_state(tstate: *mut PyThreadState) -> bool {
    HANDLES.with(|handles| {
        handles
            .borrow()
            .iter()
            .any(|claim| claim.tstate == tstate && claim.is_current())
    })
}
