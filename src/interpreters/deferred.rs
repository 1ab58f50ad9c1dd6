//! References to objects of an interpreter that no thread could attach when they were
//! dropped (a sub-interpreter the dropping thread holds no thread state of): released the
//! next time this crate runs code in that interpreter, and never in another interpreter or
//! a later runtime.

#![allow(
    unsafe_code,
    reason = "releases references (C preconditions: raw::ffi)"
)]

use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::raw::ffi::{self, PyObject};

use crate::interpreters::interpreter::Interpreter;
use crate::raw::epoch::epoch;

/// A deferred release: the interpreter and the object's address.
type Pending = (Interpreter, usize);

static PENDING: Mutex<Vec<Pending>> = Mutex::new(Vec::new());
/// Whether `PENDING` may hold anything: one load where nothing was ever deferred.
static ANY: AtomicBool = AtomicBool::new(false);

/// Keeps `object`, a strong reference of `interpreter`, for [`release_here`] in that
/// interpreter.
pub(crate) fn defer(interpreter: Interpreter, object: NonNull<PyObject>) {
    let mut pending = PENDING.lock().unwrap_or_else(PoisonError::into_inner);
    pending.push((interpreter, object.as_ptr() as usize));
    ANY.store(true, Ordering::Release);
}

/// Releases the references deferred for `here`, the interpreter this thread is attached to,
/// and forgets those of finalized runtimes (their objects are gone).
///
/// # Safety
/// This thread is attached to `here`, named in the current runtime.
pub(crate) unsafe fn release_here(here: Interpreter) {
    if !ANY.load(Ordering::Acquire) {
        return;
    }
    let current = epoch();
    let mine: Vec<usize> = {
        let mut pending = PENDING.lock().unwrap_or_else(PoisonError::into_inner);
        pending.retain(|(interpreter, _)| interpreter.epoch() == current);
        let (mine, others): (Vec<_>, Vec<_>) = pending
            .drain(..)
            .partition(|(interpreter, _)| *interpreter == here);
        *pending = others;
        ANY.store(!pending.is_empty(), Ordering::Release);
        mine.into_iter().map(|(_, object)| object).collect()
    };
    for object in mine {
        // SAFETY: attached to `here` (caller), whose object this strong reference is, given up
        // by its owner; released once, outside the lock (the Python code it runs may defer more).
        unsafe { ffi::decref(object as *mut PyObject) };
    }
}
