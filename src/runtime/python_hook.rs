//! Rust functions registered with Python-level hooks (`atexit.register`,
//! `os.register_at_fork`), once per runtime.

#![allow(
    unsafe_code,
    reason = "registers Rust functions with Python-level hooks through the C API"
)]

use core::ffi::{CStr, c_ulong};
use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::raw::epoch::{NO_EPOCH, epoch};
use crate::raw::ffi::{self, PyMethodDef};

/// A hook that is registered at most once per [runtime epoch](crate::raw::epoch).
pub(crate) struct PythonHook {
    /// The epoch whose runtime has the hook registered.
    registered: AtomicU64,
    /// The epoch in which a thread has taken on registering the hook, and that thread
    /// (`PyThread_get_thread_ident`), until it succeeds or gives up.
    claim: Mutex<Option<(u64, c_ulong)>>,
}

impl PythonHook {
    pub(crate) const fn new() -> PythonHook {
        PythonHook {
            registered: AtomicU64::new(NO_EPOCH),
            claim: Mutex::new(None),
        }
    }

    /// Whether the runtime of `epoch` has the hook.
    #[inline]
    pub(crate) fn is_registered(&self, epoch: u64) -> bool {
        self.registered.load(Ordering::Acquire) == epoch
    }

    /// Notes that the runtime of `epoch` has the hook: after a fork, the child's runtime
    /// (a new epoch) inherited it from the parent's.
    pub(crate) fn inherited(&self, epoch: u64) {
        self.registered.store(epoch, Ordering::Release);
    }

    /// Registers `definition` with the current runtime unless it is already: calls
    /// `module.function(callback)`, or `module.function(keyword=callback)`. A failure is
    /// reported as unraisable and leaves the hook unregistered.
    ///
    /// One thread registers; others wait for it detached, since the registration runs Python
    /// code, which may let them take the GIL and then needs it back. A call back into this
    /// crate from that code (an import hook) returns at once: the outer call completes.
    ///
    /// # Safety
    /// The thread is attached to the main interpreter; `definition` is a `static`.
    pub(crate) unsafe fn register(
        &self,
        module: &CStr,
        function: &CStr,
        keyword: Option<&CStr>,
        definition: *mut PyMethodDef,
    ) {
        let epoch = epoch();
        let this_thread = crate::raw::ffi::thread_ident();
        loop {
            if self.is_registered(epoch) {
                return;
            }
            {
                let mut claim = self.claim.lock().unwrap_or_else(PoisonError::into_inner);
                match *claim {
                    Some((claimed, by)) if claimed == epoch && by == this_thread => return,
                    Some((claimed, _)) if claimed == epoch => {}
                    _ => {
                        *claim = Some((epoch, this_thread));
                        break; // this thread registers it
                    }
                }
            }
            // SAFETY: attached (caller): detaches for the wait, and re-attaches the same
            // thread state right after; nothing of this thread runs in between.
            unsafe {
                let tstate = ffi::save_thread();
                std::thread::sleep(Duration::from_millis(1));
                ffi::restore_thread(tstate);
            }
        }
        // SAFETY: attached (caller). A pending exception of the caller's (a runtime's first
        // handle can be made anywhere) is set aside, as the calls below must start without one.
        let caller_error = unsafe { ffi::take_error() };
        // SAFETY: attached, with no exception set (taken above); `definition` is a static.
        let registered = unsafe { ffi::call_with_function(module, function, keyword, definition) };
        // SAFETY: attached; what `take_error` took above.
        unsafe { ffi::restore_error(caller_error) };
        if registered {
            self.registered.store(epoch, Ordering::Release);
        }
        // Released either way; after a failure another caller may try again.
        *self.claim.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}
