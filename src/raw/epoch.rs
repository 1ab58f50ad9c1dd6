//! The runtime epoch, advanced when a watched runtime finishes finalizing or a fork's child
//! starts anew. What must not outlive a runtime records it, and is inert once it moves on.

use core::sync::atomic::{AtomicU64, Ordering};

/// No epoch, for a record that names none; the counter never reaches it.
pub(crate) const NO_EPOCH: u64 = u64::MAX;

/// Never current and never `NO_EPOCH`: unequal to every record.
pub(crate) const NEVER: u64 = u64::MAX - 1;

static EPOCH: AtomicU64 = AtomicU64::new(0);

#[inline]
pub(crate) fn epoch() -> u64 {
    EPOCH.load(Ordering::Acquire)
}

/// Starts a new epoch; returns the old one.
pub(crate) fn advance() -> u64 {
    EPOCH.fetch_add(1, Ordering::AcqRel)
}
