//! The per-call-site table: a fixed, lock-free open-addressing table keyed by the address of
//! the `Location` that `#[track_caller]` hands the public entry points. A site is claimed once
//! (a `OnceLock` set), then only added to.

use core::panic::Location;
use core::ptr;
use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::stats::counter::raise;

/// A call site: where a public entry point was called.
pub(crate) type Site = &'static Location<'static>;

/// Slots in the table; a program has far fewer call sites of the guards that run. Once it is
/// full, further sites are counted in [`OVERFLOW`] only.
const SLOTS: usize = 1024;
/// How many slots a lookup probes before it gives up.
const PROBES: usize = 32;

/// One call site's figures.
#[derive(Debug)]
pub(crate) struct SiteSlot {
    pub(crate) site: OnceLock<Site>,
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
            site: OnceLock::new(),
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

/// Attaches at sites that found no free slot.
pub(crate) static OVERFLOW: AtomicU64 = AtomicU64::new(0);

/// The slot of `site`, claimed if new; `None` if the table is full around it.
fn slot(site: Site) -> Option<&'static SiteSlot> {
    // Locations are at least 4-byte aligned and spread over the binary's read-only data.
    let hash = (ptr::from_ref(site) as usize >> 3).wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as usize);
    let start = hash >> (usize::BITS - SLOTS.trailing_zeros());
    for probe in 0..PROBES {
        let slot = &TABLE[(start + probe) % SLOTS];
        let claimed = slot.site.get_or_init(|| site);
        if ptr::eq(*claimed, site) {
            return Some(slot);
        }
    }
    OVERFLOW.fetch_add(1, Ordering::Relaxed);
    None
}

/// Records an attach at `site` that waited `wait_ns` for its GIL.
#[inline]
pub(crate) fn record_wait(site: Site, wait_ns: u64) {
    if let Some(slot) = slot(site) {
        add_wait(slot, wait_ns);
    }
}

/// Records an attach at `site` that waited `wait_ns` and then held for `hold_ns`.
#[inline]
pub(crate) fn record_hold(site: Site, wait_ns: u64, hold_ns: u64) {
    if let Some(slot) = slot(site) {
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
pub(crate) fn claimed() -> impl Iterator<Item = (Site, &'static SiteSlot)> {
    TABLE
        .iter()
        .filter_map(|slot| slot.site.get().map(|site| (*site, slot)))
}
