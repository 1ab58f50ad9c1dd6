//! What the statistics remember per thread: the call site of the public entry point running,
//! the hold in progress, the holds that a release or a suspension interrupted, and the last
//! interpreter's tally. A thread-local of its own, beside the frame stack's context: it is
//! only there with the feature, and like the context it is `const` and has no destructor.

use core::cell::Cell;
use std::time::Instant;

use crate::stats::interp::{InterpKey, Tally, tally_of};
use crate::stats::kind::AttachKind;
use crate::stats::sites::Site;

/// A hold in progress: since when, after how long a wait, where, of which interpreter,
/// begun by which kind of attach (counted when the hold ends, with it).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hold {
    pub(crate) since: Instant,
    pub(crate) wait_ns: u64,
    pub(crate) site: Site,
    pub(crate) tally: &'static Tally,
    pub(crate) kind: AttachKind,
}

/// What a release or a suspension interrupted, for the restore that ends it: where the
/// restore's wait (and hold) is counted, in which interpreter, and whether the crate started
/// the interrupted hold (if Python or another owner attached the thread, the hold the restore
/// begins ends where the crate cannot see, so only the restore's wait is counted).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Resume {
    pub(crate) site: Site,
    pub(crate) tally: &'static Tally,
    pub(crate) holds: bool,
}

/// Releases nested deeper than this on one thread are counted, but their restores are
/// attributed as if they had interrupted nothing of the crate's.
const RESUME_DEPTH: usize = 16;

#[derive(Debug)]
pub(crate) struct ThreadStats {
    pub(crate) site: Cell<Option<Site>>,
    pub(crate) hold: Cell<Option<Hold>>,
    resume: [Cell<Option<Resume>>; RESUME_DEPTH],
    /// May exceed [`RESUME_DEPTH`]; the entries above it are not stored.
    depth: Cell<usize>,
    cached: Cell<Option<&'static Tally>>,
}

impl ThreadStats {
    const fn new() -> ThreadStats {
        ThreadStats {
            site: Cell::new(None),
            hold: Cell::new(None),
            resume: [const { Cell::new(None) }; RESUME_DEPTH],
            depth: Cell::new(0),
            cached: Cell::new(None),
        }
    }

    /// The tally of `key`, from the cache if it is the last one this thread used.
    #[inline(always)]
    pub(crate) fn tally(&self, key: InterpKey) -> &'static Tally {
        match self.cached.get() {
            Some(tally) if tally.key == key => tally,
            _ => self.tally_slow(key),
        }
    }

    #[cold]
    #[inline(never)]
    fn tally_slow(&self, key: InterpKey) -> &'static Tally {
        let tally = tally_of(key);
        self.cached.set(Some(tally));
        tally
    }

    pub(crate) fn push_resume(&self, resume: Resume) {
        let depth = self.depth.get();
        if let Some(slot) = self.resume.get(depth) {
            slot.set(Some(resume));
        }
        self.depth.set(depth + 1);
    }

    /// The newest interrupted hold, if one was stored; `None` also when there is none at all
    /// (a restore after a release of a thread the statistics never saw attach).
    pub(crate) fn pop_resume(&self) -> Option<Resume> {
        let depth = self.depth.get().checked_sub(1)?;
        self.depth.set(depth);
        self.resume.get(depth).and_then(Cell::take)
    }
}

thread_local! {
    static THREAD: ThreadStats = const { ThreadStats::new() };
}

/// Runs `f` with this thread's statistics; does nothing once the thread-local is gone (it has
/// no destructor, so only in a thread's last moments, if at all).
#[inline(always)]
pub(crate) fn with<T: Default>(f: impl FnOnce(&ThreadStats) -> T) -> T {
    THREAD.try_with(f).unwrap_or_default()
}
