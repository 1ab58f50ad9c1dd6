//! The table of call sites: a fixed, lock-free open-addressing table keyed by the
//! `Location` that `#[track_caller]` hands the public entry points, the interpreter and the
//! kind of attach. A slot is claimed once (a `OnceLock` set), then only added to. An
//! interpreter's figures and a site's are both sums of slots, so that an attach adds to one
//! slot only.

use core::panic::Location;
use core::ptr;
use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::stats::counter::raise;
use crate::stats::interp::Tally;
use crate::stats::kind::AttachKind;

/// A call site: where a public entry point was called.
pub(crate) type Site = &'static Location<'static>;

/// What a slot counts: attaches at `site` to `tally`'s interpreter, of `kind`.
pub(crate) type SlotKey = (Site, &'static Tally, AttachKind);

/// Slots in the table; a program has far fewer call sites of the guards that run (times
/// interpreters and kinds). Once it is full, further keys are counted in [`OVERFLOW`] only.
const SLOTS: usize = 1024;
/// How many slots a lookup probes before it gives up.
const PROBES: usize = 32;

/// One key's figures.
#[derive(Debug)]
pub(crate) struct SiteSlot {
    pub(crate) key: OnceLock<SlotKey>,
    pub(crate) attaches: AtomicU64,
    pub(crate) wait_ns: AtomicU64,
    pub(crate) longest_wait_ns: AtomicU64,
    pub(crate) holds: AtomicU64,
    pub(crate) hold_ns: AtomicU64,
    pub(crate) longest_hold_ns: AtomicU64,
}

impl SiteSlot {
    const fn new() -> SiteSlot {
        SiteSlot {
            key: OnceLock::new(),
            attaches: AtomicU64::new(0),
            wait_ns: AtomicU64::new(0),
            longest_wait_ns: AtomicU64::new(0),
            holds: AtomicU64::new(0),
            hold_ns: AtomicU64::new(0),
            longest_hold_ns: AtomicU64::new(0),
        }
    }

    pub(crate) fn reset(&self) {
        for counter in [
            &self.attaches,
            &self.wait_ns,
            &self.longest_wait_ns,
            &self.holds,
            &self.hold_ns,
            &self.longest_hold_ns,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
    }
}

static TABLE: [SiteSlot; SLOTS] = [const { SiteSlot::new() }; SLOTS];

/// Attaches whose key found no free slot.
pub(crate) static OVERFLOW: AtomicU64 = AtomicU64::new(0);

fn same((site, tally, kind): SlotKey, other: SlotKey) -> bool {
    ptr::eq(site, other.0) && ptr::eq(tally, other.1) && kind == other.2
}

/// The slot of `key`, claimed if new; `None` if the table is full around it.
fn slot(key: SlotKey) -> Option<&'static SiteSlot> {
    let (site, tally, kind) = key;
    // Locations and tallies are aligned and spread out; the multiply mixes them.
    let mixed = (ptr::from_ref(site) as usize) ^ (ptr::from_ref(tally) as usize).rotate_left(17);
    let hash = (mixed ^ kind as usize).wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as usize);
    let start = hash >> (usize::BITS - SLOTS.trailing_zeros());
    for probe in 0..PROBES {
        let slot = &TABLE[(start + probe) % SLOTS];
        if same(*slot.key.get_or_init(|| key), key) {
            return Some(slot);
        }
    }
    OVERFLOW.fetch_add(1, Ordering::Relaxed);
    None
}

/// Records an attach of `key` that waited `wait_ns` for its GIL, and whose hold the crate
/// does not see end.
#[inline]
pub(crate) fn record_wait(key: SlotKey, wait_ns: u64) {
    if let Some(slot) = slot(key) {
        add_wait(slot, wait_ns);
    }
}

/// Records an attach of `key` that waited `wait_ns` and then held for `hold_ns`.
#[inline]
pub(crate) fn record_hold(key: SlotKey, wait_ns: u64, hold_ns: u64) {
    if let Some(slot) = slot(key) {
        add_wait(slot, wait_ns);
        slot.holds.fetch_add(1, Ordering::Relaxed);
        slot.hold_ns.fetch_add(hold_ns, Ordering::Relaxed);
        raise(&slot.longest_hold_ns, hold_ns);
    }
}

#[inline(always)]
fn add_wait(slot: &SiteSlot, wait_ns: u64) {
    slot.attaches.fetch_add(1, Ordering::Relaxed);
    slot.wait_ns.fetch_add(wait_ns, Ordering::Relaxed);
    raise(&slot.longest_wait_ns, wait_ns);
}

/// Every claimed slot.
pub(crate) fn claimed() -> impl Iterator<Item = (SlotKey, &'static SiteSlot)> {
    TABLE
        .iter()
        .filter_map(|slot| slot.key.get().map(|key| (*key, slot)))
}
