//! Each thread's block: what only that thread writes, with plain loads and stores, and any
//! thread reads: its nested attaches to the main interpreter (the hottest path of all, a few
//! nanoseconds without the feature, where a shared atomic counter would cost more than the
//! attach itself), the interpreter it is waiting to attach to right now, and its table of
//! call sites (`sites.rs`).
//!
//! A block outlives its thread (a snapshot still reads it) and is handed to the next thread
//! that needs one, keeping its counts, so there are never more blocks than threads alive at
//! once.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crate::raw::epoch::epoch;
use crate::stats::chain::Chain;
use crate::stats::interp::{InterpKey, Tally, tally_of};
use crate::stats::sites::{Table, add};

/// One thread's figures. Only the thread that owns the block writes `epoch`, `count`,
/// `waiting_on`, `generation` and `table`; [`reset`] writes `base`; `free` is set when its
/// thread exits, and cleared by the next thread to take it.
#[derive(Debug)]
pub(crate) struct Block {
    /// The runtime whose main interpreter `count` counts nested attaches to.
    epoch: AtomicU64,
    count: AtomicU64,
    base: AtomicU64,
    /// The address of the tally of the interpreter this thread waits to attach to, or 0.
    waiting_on: AtomicUsize,
    /// The [`GENERATION`] that `table` counts since.
    generation: AtomicU64,
    table: Table,
    free: AtomicBool,
}

/// Advanced by [`reset`]: a table of an earlier generation counts from zero at its thread's
/// next attach, and reads as zero until then.
static GENERATION: AtomicU64 = AtomicU64::new(0);

impl Block {
    /// Counts a nested attach to the main interpreter of the runtime of epoch `now`.
    #[inline(always)]
    pub(crate) fn count_nested(&self, now: u64) {
        if self.epoch.load(Ordering::Relaxed) == now {
            add(&self.count, 1);
        } else {
            self.count_in_new_runtime(now);
        }
    }

    /// [`count_nested`](Block::count_nested) when the block counts an earlier runtime: that
    /// count moves to its interpreter's shared counter.
    #[cold]
    #[inline(never)]
    fn count_in_new_runtime(&self, now: u64) {
        let (then, count) = self.read();
        let key = InterpKey { id: 0, epoch: then };
        tally_of(key).nested.fetch_add(count, Ordering::Relaxed);
        self.count.store(1, Ordering::Relaxed);
        self.base.store(0, Ordering::Relaxed);
        self.epoch.store(now, Ordering::Relaxed);
    }

    /// Notes that this thread waits to attach to `tally`'s interpreter (`Some`), or no
    /// longer does (`None`).
    #[inline(always)]
    pub(crate) fn wait_for(&self, tally: Option<&'static Tally>) {
        let address = tally.map_or(0, |tally| core::ptr::from_ref(tally) as usize);
        self.waiting_on.store(address, Ordering::Relaxed);
    }

    /// The address of the tally of the interpreter this thread waits to attach to, or 0.
    pub(crate) fn waiting_on(&self) -> usize {
        self.waiting_on.load(Ordering::Relaxed)
    }

    /// The nested attaches since the last [`reset`], and their runtime.
    pub(crate) fn read(&self) -> (u64, u64) {
        let count = self.count.load(Ordering::Relaxed);
        let base = self.base.load(Ordering::Relaxed);
        (
            self.epoch.load(Ordering::Relaxed),
            count.saturating_sub(base),
        )
    }

    /// The table to count in, for its thread: cleared first if a reset came since.
    #[inline(always)]
    pub(crate) fn table(&self) -> &Table {
        let generation = GENERATION.load(Ordering::Relaxed);
        if self.generation.load(Ordering::Relaxed) != generation {
            self.table.clear();
            // Release: a snapshot that sees this generation sees the zeros.
            self.generation.store(generation, Ordering::Release);
        }
        &self.table
    }

    /// The table, for a snapshot; `None` if it still counts from before the last reset.
    pub(crate) fn table_since_reset(&self) -> Option<&Table> {
        let current = GENERATION.load(Ordering::Relaxed);
        (self.generation.load(Ordering::Acquire) == current).then_some(&self.table)
    }

    /// Hands the block to the next thread that needs one.
    pub(crate) fn give_back(&self) {
        self.waiting_on.store(0, Ordering::Relaxed);
        // Release: the next owner sees this thread's last figures.
        self.free.store(true, Ordering::Release);
    }
}

/// Every block ever made.
static BLOCKS: Chain<Block> = Chain::new();

/// A block of an exited thread, or a new one.
pub(crate) fn take_or_make() -> &'static Block {
    let free = BLOCKS.iter().find(|block| {
        block
            .free
            .compare_exchange(true, false, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    });
    free.unwrap_or_else(|| {
        BLOCKS.push(Block {
            epoch: AtomicU64::new(epoch()),
            count: AtomicU64::new(0),
            base: AtomicU64::new(0),
            waiting_on: AtomicUsize::new(0),
            generation: AtomicU64::new(GENERATION.load(Ordering::Relaxed)),
            table: Table::new(),
            free: AtomicBool::new(false),
        })
    })
}

/// Every block.
pub(crate) fn all() -> impl Iterator<Item = &'static Block> {
    BLOCKS.iter()
}

/// Counts from zero again: the nested count so far becomes the base, and every table starts
/// a new generation.
pub(crate) fn reset() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
    for block in all() {
        block
            .base
            .store(block.count.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}
