//! Each interpreter's counters, found by the interpreter's id and the runtime epoch (ids are
//! unique within a runtime; a runtime started again gets a new epoch).

#![allow(unsafe_code, reason = "reads the interpreter of a live thread state")]

use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::raw::epoch::epoch;
use crate::raw::ffi::{self, PyThreadState};
use crate::stats::kind::KINDS;

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

/// Counters one interpreter's attaches and detaches add to, from any thread.
#[derive(Debug)]
pub(crate) struct Tally {
    pub(crate) key: InterpKey,
    pub(crate) attaches: [AtomicU64; KINDS],
    pub(crate) detaches: AtomicU64,
    pub(crate) wait_ns: AtomicU64,
    pub(crate) hold_ns: AtomicU64,
    pub(crate) longest_hold_ns: AtomicU64,
    /// A gauge, not a count: [`reset`](Tally::reset) leaves it alone.
    pub(crate) waiting_now: AtomicU64,
}

impl Tally {
    fn new(key: InterpKey) -> Tally {
        Tally {
            key,
            attaches: [const { AtomicU64::new(0) }; KINDS],
            detaches: AtomicU64::new(0),
            wait_ns: AtomicU64::new(0),
            hold_ns: AtomicU64::new(0),
            longest_hold_ns: AtomicU64::new(0),
            waiting_now: AtomicU64::new(0),
        }
    }

    pub(crate) fn reset(&self) {
        for count in &self.attaches {
            count.store(0, Ordering::Relaxed);
        }
        self.detaches.store(0, Ordering::Relaxed);
        self.wait_ns.store(0, Ordering::Relaxed);
        self.hold_ns.store(0, Ordering::Relaxed);
        self.longest_hold_ns.store(0, Ordering::Relaxed);
    }
}

/// Every interpreter seen since the process started. Leaked: a tally is a few hundred bytes,
/// one per interpreter ever attached, and threads keep `&'static` references to them.
static TALLIES: Mutex<Vec<&'static Tally>> = Mutex::new(Vec::new());

/// The tally of `key`, made on first use. Threads cache the last one they used, so this
/// lock is taken when a thread changes interpreters, not per attach.
pub(crate) fn tally_of(key: InterpKey) -> &'static Tally {
    let mut tallies = TALLIES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(tally) = tallies.iter().find(|tally| tally.key == key) {
        return tally;
    }
    let tally: &'static Tally = Box::leak(Box::new(Tally::new(key)));
    tallies.push(tally);
    tally
}

/// Every tally, in the order the interpreters were first seen.
pub(crate) fn all() -> Vec<&'static Tally> {
    TALLIES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
}
