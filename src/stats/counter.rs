//! Adding to the counters: durations as nanoseconds, and maxima.

use core::sync::atomic::{AtomicU64, Ordering};

/// Raises `max` to `value` if it is larger; a load first, so a hold that sets no record
/// writes nothing.
#[inline]
pub(crate) fn raise(max: &AtomicU64, value: u64) {
    if value > max.load(Ordering::Relaxed) {
        max.fetch_max(value, Ordering::Relaxed);
    }
}

/// Nanoseconds, saturated (585 years).
#[inline(always)]
pub(crate) fn nanos(duration: core::time::Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
