//! What the statistics remember per thread, for that thread only: its block (`block.rs`),
//! the call site of the public entry point running, the hold in progress, the holds that a
//! release or a suspension interrupted, the last interpreter's tally, and whether long holds
//! wait to be reported. A thread-local of its own, beside the frame stack's context: it is
//! only there with the feature, and like the context it is `const` and has no destructor.

use core::cell::Cell;

use crate::stats::block::{self, Block};
use crate::stats::interp::{InterpKey, Tally, tally_of};
use crate::stats::kind::AttachKind;
use crate::stats::sites::Site;

/// A hold in progress: since when (clock ticks), after how long a wait, where, of which
/// interpreter, begun by which kind of attach (counted when the hold ends, with it).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hold {
    pub(crate) since: u64,
    pub(crate) wait: u64,
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
    /// The interrupted holds, an array a field: a `Resume` copied whole out of fields just
    /// written one by one (a restore follows its release soon) would wait for the stores to
    /// drain instead of reading them forwarded.
    resume_sites: [Cell<Option<Site>>; RESUME_DEPTH],
    resume_tallies: [Cell<Option<&'static Tally>>; RESUME_DEPTH],
    resume_holds: [Cell<bool>; RESUME_DEPTH],
    /// May exceed [`RESUME_DEPTH`]; the entries above it are not stored.
    depth: Cell<usize>,
    cached: Cell<Option<&'static Tally>>,
    block: Cell<Option<&'static Block>>,
    /// Whether long holds wait to be reported (`long_hold.rs`).
    pub(crate) long_holds: Cell<bool>,
}

impl ThreadStats {
    const fn new() -> ThreadStats {
        ThreadStats {
            site: Cell::new(None),
            hold: Cell::new(None),
            resume_sites: [const { Cell::new(None) }; RESUME_DEPTH],
            resume_tallies: [const { Cell::new(None) }; RESUME_DEPTH],
            resume_holds: [const { Cell::new(false) }; RESUME_DEPTH],
            depth: Cell::new(0),
            cached: Cell::new(None),
            block: Cell::new(None),
            long_holds: Cell::new(false),
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

    /// This thread's block, taken on first use.
    #[inline(always)]
    pub(crate) fn block(&self) -> &'static Block {
        match self.block.get() {
            Some(block) => block,
            None => self.block_slow(),
        }
    }

    #[cold]
    #[inline(never)]
    fn block_slow(&self) -> &'static Block {
        let block = block::take_or_make();
        self.block.set(Some(block));
        // Registers the destructor; fails in the thread's teardown, where the block is not
        // handed back (it stays counted).
        let _ = RETURN_ON_EXIT.try_with(|_| ());
        block
    }

    pub(crate) fn push_resume(&self, resume: Resume) {
        let depth = self.depth.get();
        if depth < RESUME_DEPTH {
            self.resume_sites[depth].set(Some(resume.site));
            self.resume_tallies[depth].set(Some(resume.tally));
            self.resume_holds[depth].set(resume.holds);
        }
        self.depth.set(depth + 1);
    }

    /// The newest interrupted hold, if one was stored; `None` also when there is none at all
    /// (a restore after a release of a thread the statistics never saw attach).
    pub(crate) fn pop_resume(&self) -> Option<Resume> {
        let depth = self.depth.get().checked_sub(1)?;
        self.depth.set(depth);
        if depth >= RESUME_DEPTH {
            return None;
        }
        Some(Resume {
            site: self.resume_sites[depth].take()?,
            tally: self.resume_tallies[depth].get()?,
            holds: self.resume_holds[depth].get(),
        })
    }
}

/// Hands the thread's block back when the thread exits, and stops the thread from using it
/// (a guard dropped later in the thread's teardown gets a block of its own, which it keeps).
/// A thread-local of its own: [`THREAD`] has no destructor, so that it works to the end.
struct ReturnOnExit;

impl Drop for ReturnOnExit {
    fn drop(&mut self) {
        if let Ok(Some(block)) = THREAD.try_with(|stats| stats.block.take()) {
            block.give_back();
        }
    }
}

thread_local! {
    static THREAD: ThreadStats = const { ThreadStats::new() };
    static RETURN_ON_EXIT: ReturnOnExit = const { ReturnOnExit };
}

/// Runs `f` with this thread's statistics; does nothing once the thread-local is gone (it has
/// no destructor, so only in a thread's last moments, if at all).
#[inline(always)]
pub(crate) fn with<T: Default>(f: impl FnOnce(&ThreadStats) -> T) -> T {
    THREAD.try_with(f).unwrap_or_default()
}
