//! The callback for a hold at least as long as a threshold.

use core::cell::Cell;
use core::panic::AssertUnwindSafe;
use core::panic::Location;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use std::panic;
use std::sync::{Arc, RwLock};

use crate::stats::clock::Scale;
use crate::stats::sites::Site;
use crate::stats::thread::ThreadStats;

/// A hold at least as long as the threshold given to [`on_long_hold`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use gilguard::stats::{self, LongHold};
///
/// stats::on_long_hold(Duration::from_millis(100), |hold: &LongHold| {
///     eprintln!("{}:{} held the GIL for {:?}", hold.site.file(), hold.site.line(), hold.hold);
/// });
/// # stats::clear_long_hold();
/// ```
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct LongHold {
    /// Where the attach that began the hold was asked for (the caller of
    /// [`with_gil`](crate::with_gil), [`WithGil::acquire`](crate::WithGil::acquire), ...; for
    /// a hold that began with a restore, of the guard whose hold the release interrupted).
    pub site: &'static Location<'static>,
    /// How long it held.
    pub hold: Duration,
    /// The id of the interpreter it held ([`Interpreter::id`](crate::Interpreter::id)).
    pub interpreter: i64,
}

type Callback = Arc<dyn Fn(&LongHold) + Send + Sync>;

/// The threshold in clock ticks; `u64::MAX` when no callback is set, so that the check at
/// each detach is one load and one compare.
static THRESHOLD: AtomicU64 = AtomicU64::new(u64::MAX);
static CALLBACK: RwLock<Option<Callback>> = RwLock::new(None);

/// Calls `callback` after every hold at least as long as `threshold`, on the thread that
/// held, once the guard operation that ended the hold has returned (usually detached, so the
/// callback runs without the GIL; it may use guards). Holds that end inside the callback
/// itself are counted but not reported to it. A panic in the callback leaves the guard
/// operation that reported it (complete), unless a panic is already unwinding through it (a
/// guard dropped by unwinding), where it is dropped. Replaces the callback set before.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::time::{Duration, Instant};
/// use gilguard::{stats, with_gil};
///
/// static LONG: AtomicUsize = AtomicUsize::new(0);
/// gilguard::initialize()?;
/// stats::on_long_hold(Duration::from_millis(5), |_| {
///     LONG.fetch_add(1, Ordering::Relaxed);
/// });
/// with_gil(|| {
///     let start = Instant::now();
///     while start.elapsed() < Duration::from_millis(10) {}
/// });
/// stats::clear_long_hold();
/// assert!(LONG.load(Ordering::Relaxed) >= 1);
/// # Ok::<(), gilguard::GilError>(())
/// ```
pub fn on_long_hold(threshold: Duration, callback: impl Fn(&LongHold) + Send + Sync + 'static) {
    let mut slot = CALLBACK
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    *slot = Some(Arc::new(callback));
    THRESHOLD.store(Scale::now().ticks(threshold), Ordering::Relaxed);
}

/// Removes the callback [`on_long_hold`] set, if any.
///
/// # Examples
///
/// ```
/// gilguard::stats::clear_long_hold();
/// ```
pub fn clear_long_hold() {
    THRESHOLD.store(u64::MAX, Ordering::Relaxed);
    *CALLBACK
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
}

/// The long holds of this thread that ended inside a guard operation, reported when it has
/// returned: a hold ends in the middle of the frame stack's bookkeeping, where a callback
/// that uses guards would find the stack half changed. Whether any are noted is the flag
/// `ThreadStats::long_holds`, which the guards check.
struct Deferred {
    holds: Cell<Vec<LongHold>>,
    /// Whether the callback is running on this thread; the holds it ends are not reported.
    reporting: Cell<bool>,
}

thread_local! {
    static DEFERRED: Deferred = const {
        Deferred {
            holds: Cell::new(Vec::new()),
            reporting: Cell::new(false),
        }
    };
}

/// Notes a hold of `ticks` at `site` for the callback if it is at least the threshold.
#[inline(always)]
pub(crate) fn check(stats: &ThreadStats, site: Site, interpreter: i64, ticks: u64) {
    if ticks >= THRESHOLD.load(Ordering::Relaxed) {
        defer(stats, site, interpreter, ticks);
    }
}

#[cold]
#[inline(never)]
fn defer(stats: &ThreadStats, site: Site, interpreter: i64, ticks: u64) {
    let hold = LongHold {
        site,
        hold: Scale::now().duration(ticks),
        interpreter,
    };
    let _ = DEFERRED.try_with(|deferred| {
        if !deferred.reporting.get() {
            let mut holds = deferred.holds.take();
            holds.push(hold);
            deferred.holds.set(holds);
            stats.long_holds.set(true);
        }
    });
}

/// Reports the holds noted since the last call; called where no guard operation is under way
/// on this thread (a public entry point's start and end).
#[inline(always)]
pub(crate) fn report_deferred(stats: &ThreadStats) {
    if stats.long_holds.get() {
        stats.long_holds.set(false);
        report();
    }
}

#[cold]
#[inline(never)]
fn report() {
    let Ok(holds) = DEFERRED.try_with(|deferred| {
        deferred.reporting.set(true);
        deferred.holds.take()
    }) else {
        return;
    };
    // Also if the callback panics.
    let _reported = scopeguard::guard((), |()| {
        let _ = DEFERRED.try_with(|deferred| deferred.reporting.set(false));
    });
    // Cloned out of the lock: the callback may set another one.
    let callback = CALLBACK
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    let Some(callback) = callback else { return };
    // A panicking callback must not abort a guard's drop during unwinding: the panic goes on
    // only where no other is under way.
    let mut panicked = None;
    for hold in &holds {
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| callback(hold))) {
            panicked.get_or_insert(payload);
        }
    }
    if let Some(payload) = panicked.filter(|_| !std::thread::panicking()) {
        panic::resume_unwind(payload);
    }
}
