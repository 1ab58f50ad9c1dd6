//! The runtime epoch: how many times `Py_FinalizeEx` has completed, as far as this crate has
//! seen (and how many forks started a new runtime in a child). Anything that must not
//! outlive a runtime (a kept thread state, a released frame, a handle, a registered hook)
//! records the epoch it was made in and is inert once the epoch has moved on.
//!
//! A leaf: it calls nothing. What advances it (the `Py_AtExit` callback, the after-fork
//! callback) lives in the runtime layer.

use core::sync::atomic::{AtomicU64, Ordering};

/// No epoch: the value of a record that names none (a gate that never closed, a hook never
/// registered). The counter never reaches it.
pub(crate) const NO_EPOCH: u64 = u64::MAX;

/// An epoch that is never current and never `NO_EPOCH`: compares unequal to every record.
pub(crate) const NEVER: u64 = u64::MAX - 1;

static EPOCH: AtomicU64 = AtomicU64::new(0);

/// The current runtime's epoch.
#[inline]
pub(crate) fn epoch() -> u64 {
    EPOCH.load(Ordering::Acquire)
}

/// Starts a new epoch (the runtime finished finalizing, or this is the child of a fork);
/// returns the old one.
pub(crate) fn advance() -> u64 {
    EPOCH.fetch_add(1, Ordering::AcqRel)
}
