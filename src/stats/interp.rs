//! Each interpreter's counters, found by the interpreter's id and the runtime epoch (ids are
//! unique within a runtime; a runtime started again gets a new epoch).

#![allow(unsafe_code, reason = "reads the interpreter of a live thread state")]

use core::sync::atomic::{AtomicU64, Ordering};

use crate::raw::epoch::epoch;
use crate::raw::ffi::{self, PyThreadState};
use crate::stats::chain::Chain;

/// Which interpreter: its id and its runtime's epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct InterpKey {
    pub(crate) id: i64,
    pub(crate) epoch: u64,
}

impl InterpKey {
    /// The main interpreter (id 0) of the current runtime.
    #[inline(always)]
    pub(crate) fn main() -> InterpKey {
        InterpKey {
            id: 0,
            epoch: epoch(),
        }
    }

    /// The interpreter of `tstate`.
    ///
    /// # Safety
    /// `tstate` is live.
    pub(crate) unsafe fn of(tstate: *mut PyThreadState) -> InterpKey {
        // SAFETY: live (caller), so is its interpreter.
        let id = unsafe { ffi::interpreter_id(ffi::interpreter_of(tstate)) };
        InterpKey { id, epoch: epoch() }
    }
}

/// What only an interpreter has: its nested attaches (other than those to a main
/// interpreter, which threads count in their blocks, `block.rs`). Its attaches, waits and
/// holds are the sums of its call sites' in threads' tables (`sites.rs`), so that an attach
/// adds to one set of counters; the threads waiting for it now are in their blocks.
#[derive(Debug)]
pub(crate) struct Tally {
    pub(crate) key: InterpKey,
    pub(crate) nested: AtomicU64,
}

impl Tally {
    fn new(key: InterpKey) -> Tally {
        Tally {
            key,
            nested: AtomicU64::new(0),
        }
    }

    pub(crate) fn reset(&self) {
        self.nested.store(0, Ordering::Relaxed);
    }
}

/// Every interpreter seen since the process started. Leaked: a tally is a few dozen bytes,
/// one per interpreter ever attached, and threads keep `&'static` references to them.
static TALLIES: Chain<Tally> = Chain::new();

/// The tally of `key`, made on first use. Threads cache the last one they used, so this list
/// is searched when a thread changes interpreters, not per attach. Two threads that make the
/// same interpreter's tally at once make two: a snapshot adds them up.
pub(crate) fn tally_of(key: InterpKey) -> &'static Tally {
    match TALLIES.iter().find(|tally| tally.key == key) {
        Some(tally) => tally,
        None => TALLIES.push(Tally::new(key)),
    }
}

/// Every tally, in the order the interpreters were first seen.
pub(crate) fn all() -> impl Iterator<Item = &'static Tally> {
    TALLIES.iter()
}
