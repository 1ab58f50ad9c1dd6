//! A thread's table of call sites: a fixed open-addressing table in the thread's block, keyed
//! by the `Location` that `#[track_caller]` hands the public entry points, the interpreter
//! and the kind of attach. Only the block's thread writes it, so counting is a plain load and
//! store (no read-modify-write, no cache line shared with other threads); a snapshot reads
//! every block's table and adds them up. An interpreter's figures and a site's are both sums
//! of slots, so that an attach adds to one slot only.

use core::panic::Location;
use core::ptr;
use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::stats::interp::Tally;
use crate::stats::kind::AttachKind;

/// A call site: where a public entry point was called.
pub(crate) type Site = &'static Location<'static>;

/// What a slot counts: attaches at `site` to `tally`'s interpreter, of `kind`.
pub(crate) type SlotKey = (Site, &'static Tally, AttachKind);

/// Slots per thread; a thread runs far fewer call sites of the guards (times interpreters and
/// kinds). Once its table is full, further keys are counted in [`Table::overflow`] only.
const SLOTS: usize = 128;

/// Adds to a counter only its block's thread writes (no read-modify-write needed).
#[inline(always)]
pub(crate) fn add(counter: &AtomicU64, value: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(value),
        Ordering::Relaxed,
    );
}

/// Raises a maximum only its block's thread writes.
#[inline(always)]
fn raise(max: &AtomicU64, value: u64) {
    if value > max.load(Ordering::Relaxed) {
        max.store(value, Ordering::Relaxed);
    }
}

/// One key's figures; times in clock ticks (`clock.rs`).
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) key: OnceLock<SlotKey>,
    pub(crate) attaches: AtomicU64,
    pub(crate) wait: AtomicU64,
    pub(crate) longest_wait: AtomicU64,
    pub(crate) holds: AtomicU64,
    pub(crate) hold: AtomicU64,
    pub(crate) longest_hold: AtomicU64,
    /// Detaches of holds the crate did not start (a release on a thread Python attached).
    pub(crate) releases: AtomicU64,
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            key: OnceLock::new(),
            attaches: AtomicU64::new(0),
            wait: AtomicU64::new(0),
            longest_wait: AtomicU64::new(0),
            holds: AtomicU64::new(0),
            hold: AtomicU64::new(0),
            longest_hold: AtomicU64::new(0),
            releases: AtomicU64::new(0),
        }
    }

    /// Counts an attach that waited `wait` ticks for its GIL.
    #[inline(always)]
    pub(crate) fn attach(&self, wait: u64) {
        add(&self.attaches, 1);
        add(&self.wait, wait);
        raise(&self.longest_wait, wait);
    }

    /// Counts a hold of `hold` ticks that the crate started and ended.
    #[inline(always)]
    pub(crate) fn hold(&self, hold: u64) {
        add(&self.holds, 1);
        add(&self.hold, hold);
        raise(&self.longest_hold, hold);
    }

    /// Counts the detach of a hold the crate did not start.
    pub(crate) fn release(&self) {
        add(&self.releases, 1);
    }

    fn clear(&self) {
        for counter in [
            &self.attaches,
            &self.wait,
            &self.longest_wait,
            &self.holds,
            &self.hold,
            &self.longest_hold,
            &self.releases,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
    }
}

/// A thread's slots.
#[derive(Debug)]
pub(crate) struct Table {
    slots: [Slot; SLOTS],
    /// Attaches and detaches whose key found no free slot.
    pub(crate) overflow: AtomicU64,
}

impl Table {
    pub(crate) const fn new() -> Table {
        Table {
            slots: [const { Slot::new() }; SLOTS],
            overflow: AtomicU64::new(0),
        }
    }

    /// The slot of `key`, claimed if new; `None` if the table is full. Only the block's thread
    /// calls it.
    #[inline]
    pub(crate) fn slot(&self, key: SlotKey) -> Option<&Slot> {
        let (site, tally, kind) = key;
        // Locations and tallies are aligned and spread out; the multiply mixes them.
        let mixed =
            (ptr::from_ref(site) as usize) ^ (ptr::from_ref(tally) as usize).rotate_left(17);
        let hash = (mixed ^ kind as usize).wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as usize);
        let start = hash >> (usize::BITS - SLOTS.trailing_zeros());
        for probe in 0..SLOTS {
            let slot = &self.slots[(start + probe) % SLOTS];
            if same(*slot.key.get_or_init(|| key), key) {
                return Some(slot);
            }
        }
        add(&self.overflow, 1);
        None
    }

    /// Every claimed slot.
    pub(crate) fn claimed(&self) -> impl Iterator<Item = (SlotKey, &Slot)> {
        self.slots
            .iter()
            .filter_map(|slot| slot.key.get().map(|key| (*key, slot)))
    }

    /// Zeroes every figure (the keys stay claimed).
    pub(crate) fn clear(&self) {
        for slot in &self.slots {
            slot.clear();
        }
        self.overflow.store(0, Ordering::Relaxed);
    }
}

fn same((site, tally, kind): SlotKey, other: SlotKey) -> bool {
    ptr::eq(site, other.0) && ptr::eq(tally, other.1) && kind == other.2
}
