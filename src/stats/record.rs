//! The hooks the guards call, with the feature on: at a public entry point ([`enter`]), around
//! the C call that attaches ([`before_attach`], [`attached`]), around the one that detaches
//! ([`detaching`], then [`detached`], or [`released`] for a release), around a release's
//! restore ([`before_restore`], [`restored`]), and at a nested attach ([`nested_main`],
//! [`nested`]).

use core::panic::Location;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::raw::epoch::{NO_EPOCH, epoch};
use crate::runtime;
use crate::stats::clock;
use crate::stats::interp::{InterpKey, Tally};
use crate::stats::kind::AttachKind;
use crate::stats::long_hold;
use crate::stats::sites::Site;
use crate::stats::thread::{self, Hold, Resume, ThreadStats};

/// An attach waiting for its GIL: since when (clock ticks), for which site and interpreter.
#[derive(Debug)]
pub(crate) struct Waiting {
    since: u64,
    site: Site,
    tally: &'static Tally,
    /// Whether the hold that follows is the crate's to end (see [`Resume::holds`]).
    holds: bool,
}

/// Notes the call site of a public entry point, for the attaches it makes.
#[inline(always)]
pub(crate) fn enter(site: Site) {
    thread::with(|stats| {
        long_hold::report_deferred(stats);
        stats.site.set(Some(site));
    });
}

/// Called when a public entry point's guard operation has returned: reports the long holds
/// it ended, now that the frame stack is consistent again.
#[inline(always)]
pub(crate) fn settled() {
    thread::with(long_hold::report_deferred);
}

/// The site of this thread's public entry point, or this function's if none was noted (an
/// attach the crate makes for itself).
#[inline(always)]
fn site(stats: &ThreadStats) -> Site {
    stats.site.get().unwrap_or_else(|| Location::caller())
}

/// The epoch of the runtime [`watch`] last asked to watch.
static WATCHING: AtomicU64 = AtomicU64::new(NO_EPOCH);

/// Makes sure the epoch moves on when the runtime of `epoch` finalizes, so that a runtime the
/// host starts again (whose interpreters' ids start again) is counted apart; called attached.
/// Asked once per runtime: without a `Py_AtExit` slot left, its runtimes stay merged.
#[inline(always)]
fn watch(epoch: u64) {
    if WATCHING.load(Ordering::Relaxed) != epoch {
        watch_slow(epoch);
    }
}

#[cold]
#[inline(never)]
fn watch_slow(epoch: u64) {
    WATCHING.store(epoch, Ordering::Relaxed);
    let _ = runtime::watch_finalization(epoch);
}

/// Counts a nested attach to the main interpreter.
#[inline(always)]
pub(crate) fn nested_main() {
    let epoch = epoch();
    watch(epoch);
    thread::with(|stats| stats.block().count_nested(epoch));
}

/// Counts a nested attach to `key`'s interpreter.
#[inline]
pub(crate) fn nested(key: InterpKey) {
    watch(key.epoch);
    thread::with(|stats| {
        stats.tally(key).nested.fetch_add(1, Ordering::Relaxed);
    });
}

/// Called just before the C call that attaches to `key`'s interpreter on a detached thread.
#[inline(always)]
pub(crate) fn before_attach(key: InterpKey) -> Option<Waiting> {
    thread::with(|stats| {
        let tally = stats.tally(key);
        stats.block().wait_for(Some(tally));
        Some(Waiting {
            since: clock::now(),
            site: site(stats),
            tally,
            holds: true,
        })
    })
}

/// Called right after the C call that [`before_attach`] preceded, returned having attached:
/// starts the hold, which counts the attach and its wait when it ends; or, for a hold the
/// crate will not see end, counts them now.
#[inline(always)]
pub(crate) fn attached(waiting: Option<Waiting>, kind: AttachKind) {
    let Some(waiting) = waiting else { return };
    let now = clock::now();
    let wait = now.saturating_sub(waiting.since);
    watch(waiting.tally.key.epoch);
    thread::with(|stats| {
        let block = stats.block();
        block.wait_for(None);
        if waiting.holds {
            stats.hold.set(Some(Hold {
                since: now,
                wait,
                site: waiting.site,
                tally: waiting.tally,
                kind,
            }));
        } else if let Some(slot) = block.table().slot((waiting.site, waiting.tally, kind)) {
            slot.attach(wait);
        }
    });
}

/// Called when an attach that [`attached`] counted fails after all (the C call could not
/// attach): forgets the wait, counts nothing.
#[inline]
pub(crate) fn not_attached(waiting: Option<Waiting>) {
    if waiting.is_some() {
        thread::with(|stats| stats.block().wait_for(None));
    }
}

/// Called just before the C call that detaches: a hold ends when the thread asks to
/// detach (CPython may keep it waiting in that call until another thread has taken the GIL,
/// which is neither holding nor waiting to attach).
#[inline(always)]
pub(crate) fn detaching() -> u64 {
    clock::now()
}

/// Called after a detach that undoes an attach, with the time of [`detaching`]: ends this
/// thread's hold, if one is in progress.
#[inline(always)]
pub(crate) fn detached(at: u64) {
    thread::with(|stats| {
        if let Some(hold) = stats.hold.take() {
            end(stats, hold, at);
        }
    });
}

/// Called just after a release (or a suspension) detached a thread state of `key()`'s
/// interpreter, with the time of [`detaching`]: ends the hold in progress, and remembers it
/// for the restore.
#[inline]
pub(crate) fn released(at: u64, key: impl FnOnce() -> InterpKey) {
    thread::with(|stats| {
        let resume = match stats.hold.take() {
            Some(hold) => {
                end(stats, hold, at);
                Resume {
                    site: hold.site,
                    tally: hold.tally,
                    holds: true,
                }
            }
            None => {
                // Attached by someone else (Python calling an extension, typically): its
                // hold is not known, its detach still counts.
                let tally = stats.tally(key());
                let site = site(stats);
                if let Some(slot) = stats
                    .block()
                    .table()
                    .slot((site, tally, AttachKind::Restore))
                {
                    slot.release();
                }
                Resume {
                    site,
                    tally,
                    holds: false,
                }
            }
        };
        stats.push_resume(resume);
    });
}

/// Called just before the C call that undoes a release (or a suspension).
#[inline]
pub(crate) fn before_restore() -> Option<Waiting> {
    thread::with(|stats| {
        let resume = stats.pop_resume()?;
        stats.block().wait_for(Some(resume.tally));
        Some(Waiting {
            since: clock::now(),
            site: resume.site,
            tally: resume.tally,
            holds: resume.holds,
        })
    })
}

/// Called right after the C call that [`before_restore`] preceded.
#[inline]
pub(crate) fn restored(waiting: Option<Waiting>) {
    attached(waiting, AttachKind::Restore);
}

/// Ends `hold` at `at`: counts its attach, wait, hold and detach in its slot, and notes it
/// for the long-hold callback ([`settled`] reports it).
#[inline(always)]
fn end(stats: &ThreadStats, hold: Hold, at: u64) {
    let ticks = at.saturating_sub(hold.since);
    if let Some(slot) = stats
        .block()
        .table()
        .slot((hold.site, hold.tally, hold.kind))
    {
        slot.attach(hold.wait);
        slot.hold(ticks);
    }
    long_hold::check(stats, hold.site, hold.tally.key.id, ticks);
}
