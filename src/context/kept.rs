//! The main-interpreter thread state this crate keeps for the thread, as the context records
//! it. Making, adopting and deleting one is the runtime layer's (`runtime::native_thread`).

use core::cell::Cell;
use core::ptr;

use crate::context::guard_count::ThreadGuards;
use crate::raw::epoch::epoch;
use crate::raw::ffi::PyThreadState;

/// The kept thread state and the thread's count of guards.
pub(crate) struct Kept {
    pub(crate) tstate: Cell<*mut PyThreadState>,
    /// The runtime epoch `tstate` belongs to: finalization frees it.
    pub(crate) epoch: Cell<u64>,
    /// Whether this crate created `tstate` and deletes it when the thread exits (the thread
    /// that started the runtime borrows the runtime's main thread state instead).
    pub(crate) owned: Cell<bool>,
    /// The count of guards this thread holds, for the shutdown gate, once registered.
    pub(crate) guards: Cell<Option<&'static ThreadGuards>>,
}

impl Kept {
    /// No kept thread state, no count.
    pub(crate) const fn new() -> Kept {
        Kept {
            tstate: Cell::new(ptr::null_mut()),
            epoch: Cell::new(0),
            owned: Cell::new(false),
            guards: Cell::new(None),
        }
    }

    /// Records `tstate`, of the runtime of `epoch`, as this thread's.
    pub(crate) fn keep(&self, tstate: *mut PyThreadState, epoch: u64, owned: bool) {
        self.tstate.set(tstate);
        self.epoch.set(epoch);
        self.owned.set(owned);
    }

    /// The kept thread state, or null if there is none or its runtime was finalized since.
    #[inline(always)]
    pub(crate) fn current(&self) -> *mut PyThreadState {
        if self.epoch.get() == epoch() {
            self.tstate.get()
        } else {
            ptr::null_mut()
        }
    }

    /// Whether `tstate` is the state kept in a runtime that has since been finalized, which
    /// freed it. Compares addresses only.
    pub(crate) fn is_stale(&self, tstate: *mut PyThreadState) -> bool {
        !tstate.is_null() && self.tstate.get() == tstate && self.epoch.get() != epoch()
    }
}
