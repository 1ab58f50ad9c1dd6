//! Each thread's block: what only that thread writes, with plain loads and stores, and any
//! thread reads: its nested attaches to the main interpreter (the hottest path of all, a few
//! nanoseconds without the feature, where a shared atomic counter would cost more than the
//! attach itself) and the interpreter it is waiting to attach to right now.
//!
//! A block outlives its thread (a snapshot still reads it) and is handed to the next thread
//! that needs one, keeping its counts, so there are never more blocks than threads alive at
//! once.

use core::cell::Cell;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crate::raw::epoch::epoch;
use crate::stats::chain::Chain;
use crate::stats::interp::{InterpKey, Tally, tally_of};

/// One thread's count of nested attaches to the main interpreter of runtime `epoch`, and the
/// tally of the interpreter it waits for (its address; 0 when it does not wait). Only the
/// thread that owns the block writes `epoch`, `count` and `waiting_on`; [`reset`] writes
/// `base`; `free` is set when its thread exits, and cleared by the next thread to take it.
#[derive(Debug)]
pub(crate) struct Block {
    epoch: AtomicU64,
    count: AtomicU64,
    base: AtomicU64,
    waiting_on: AtomicUsize,
    free: AtomicBool,
}

impl Block {
    /// Counts one.
    #[inline(always)]
    fn add_one(&self) {
        // The owner is the only writer: no read-modify-write needed.
        let count = self.count.load(Ordering::Relaxed);
        self.count.store(count + 1, Ordering::Relaxed);
    }

    /// The address of the tally of the interpreter this thread waits to attach to, or 0.
    pub(crate) fn waiting_on(&self) -> usize {
        self.waiting_on.load(Ordering::Relaxed)
    }

    /// The count since the last [`reset`], and its runtime.
    pub(crate) fn read(&self) -> (u64, u64) {
        let count = self.count.load(Ordering::Relaxed);
        let base = self.base.load(Ordering::Relaxed);
        (
            self.epoch.load(Ordering::Relaxed),
            count.saturating_sub(base),
        )
    }
}

/// Every block ever made.
static BLOCKS: Chain<Block> = Chain::new();

/// Hands the thread's block back when the thread exits, and stops the thread from using it
/// (a guard dropped later in the thread's teardown gets a block of its own, which it keeps).
/// A thread-local of its own: [`MINE`] has no destructor, so that it works to the end.
struct ReturnOnExit;

impl Drop for ReturnOnExit {
    fn drop(&mut self) {
        if let Some(block) = MINE.with(Cell::take) {
            block.waiting_on.store(0, Ordering::Relaxed);
            // Release: the next owner sees this thread's last count.
            block.free.store(true, Ordering::Release);
        }
    }
}

thread_local! {
    /// This thread's block.
    static MINE: Cell<Option<&'static Block>> = const { Cell::new(None) };
    static RETURN_ON_EXIT: ReturnOnExit = const { ReturnOnExit };
}

/// Notes that this thread waits to attach to `tally`'s interpreter (`Some`), or no longer
/// does (`None`).
#[inline(always)]
pub(crate) fn wait_for(tally: Option<&'static Tally>) {
    let address = tally.map_or(0, |tally| core::ptr::from_ref(tally) as usize);
    MINE.with(|mine| match mine.get() {
        Some(block) => block.waiting_on.store(address, Ordering::Relaxed),
        None => mine_slow(mine).waiting_on.store(address, Ordering::Relaxed),
    });
}

/// Counts a nested attach to the main interpreter.
#[inline(always)]
pub(crate) fn count_nested() {
    MINE.with(|mine| match mine.get() {
        Some(block) if block.epoch.load(Ordering::Relaxed) == epoch() => block.add_one(),
        _ => count_slow(mine),
    });
}

/// This thread's block, for a thread that has none yet.
#[cold]
#[inline(never)]
fn mine_slow(mine: &Cell<Option<&'static Block>>) -> &'static Block {
    let block = take_or_make();
    mine.set(Some(block));
    // Registers the destructor; fails in the thread's teardown, where the block is not
    // handed back (it stays counted).
    let _ = RETURN_ON_EXIT.try_with(|_| ());
    block
}

/// [`count_nested`] for a thread without a block, or whose block counts an earlier runtime.
#[cold]
#[inline(never)]
fn count_slow(mine: &Cell<Option<&'static Block>>) {
    let block = mine.get().unwrap_or_else(|| mine_slow(mine));
    let now = epoch();
    let (then, count) = block.read();
    if then != now {
        // The earlier runtime's count moves to its interpreter's shared counter.
        let key = InterpKey { id: 0, epoch: then };
        tally_of(key).nested.fetch_add(count, Ordering::Relaxed);
        block.count.store(0, Ordering::Relaxed);
        block.base.store(0, Ordering::Relaxed);
        block.epoch.store(now, Ordering::Relaxed);
    }
    block.add_one();
}

/// A block of an exited thread, or a new one.
fn take_or_make() -> &'static Block {
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
            free: AtomicBool::new(false),
        })
    })
}

/// Every block.
pub(crate) fn all() -> impl Iterator<Item = &'static Block> {
    BLOCKS.iter()
}

/// Counts from zero again: the count so far becomes the base.
pub(crate) fn reset() {
    for block in all() {
        block
            .base
            .store(block.count.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}
