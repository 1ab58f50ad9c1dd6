//! Reading the counters into a [`Snapshot`], and setting them to zero.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::stats::block;
use crate::stats::clock::Scale;
use crate::stats::interp;
use crate::stats::kind::AttachKind;
use crate::stats::sites::{Site, Slot};
use crate::stats::snapshot::{Counts, InterpreterStats, SiteStats, Snapshot};

/// Reads the figures.
///
/// Each counter is read on its own while other threads may be adding to it: figures taken
/// while threads attach can be a few events apart from each other (attaches from detaches, a
/// site from its interpreter); taken when they are quiet, they agree exactly.
///
/// # Examples
///
/// ```
/// gilguard::initialize()?;
/// let before = gilguard::stats::snapshot().total.taking_the_gil();
/// gilguard::with_gil(|| ());
/// assert!(gilguard::stats::snapshot().total.taking_the_gil() > before);
/// # Ok::<(), gilguard::GilError>(())
/// ```
#[must_use]
pub fn snapshot() -> Snapshot {
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let scale = Scale::now();
    let mut interpreters: Vec<InterpreterStats> = Vec::new();
    for tally in interp::all() {
        // An interpreter may have two tallies (`interp::tally_of`): they add up.
        let counts = &mut interpreter(&mut interpreters, tally.key.id, tally.key.epoch).counts;
        counts.attaches[AttachKind::Nested as usize] += load(&tally.nested);
    }
    let mut sites: Vec<SiteStats> = Vec::new();
    let mut sites_not_recorded = 0;
    for block in block::all() {
        // Nested attaches to a main interpreter, and the thread waiting, are in the block.
        let (runtime, count) = block.read();
        let main = interpreter(&mut interpreters, 0, runtime);
        main.counts.attaches[AttachKind::Nested as usize] += count;
        let waiting_on = block.waiting_on();
        if let Some(tally) =
            interp::all().find(|tally| waiting_on == core::ptr::from_ref(*tally) as usize)
        {
            interpreter(&mut interpreters, tally.key.id, tally.key.epoch)
                .counts
                .waiting_now += 1;
        }
        // The rest are the sums of the tables' slots, per interpreter and per site.
        let Some(table) = block.table_since_reset() else {
            continue;
        };
        sites_not_recorded += load(&table.overflow);
        for ((site, tally, kind), slot) in table.claimed() {
            let figures = site_figures(scale, site, slot);
            let counts = &mut interpreter(&mut interpreters, tally.key.id, tally.key.epoch).counts;
            counts.attaches[kind as usize] += figures.attaches;
            counts.detaches += figures.holds + load(&slot.releases);
            counts.wait += figures.wait;
            counts.hold += figures.hold;
            counts.longest_hold = counts.longest_hold.max(figures.longest_hold);
            match sites.iter_mut().find(|s| core::ptr::eq(s.site, site)) {
                Some(same) => add_site(same, &figures),
                None => sites.push(figures),
            }
        }
    }
    sites.retain(|site| site.attaches != 0 || site.holds != 0);
    sites.sort_by_key(|site| core::cmp::Reverse(site.cost()));
    let mut total = Counts::default();
    for interpreter in &interpreters {
        total.add(&interpreter.counts);
    }
    Snapshot {
        total,
        interpreters,
        sites,
        sites_not_recorded,
    }
}

/// The entry of interpreter `id` of runtime `runtime`, added if missing.
fn interpreter(
    interpreters: &mut Vec<InterpreterStats>,
    id: i64,
    runtime: u64,
) -> &mut InterpreterStats {
    match interpreters
        .iter()
        .position(|i| i.id == id && i.runtime == runtime)
    {
        Some(index) => &mut interpreters[index],
        None => {
            interpreters.push(InterpreterStats {
                id,
                runtime,
                counts: Counts::default(),
            });
            interpreters.last_mut().expect("just pushed")
        }
    }
}

/// One slot's figures.
fn site_figures(scale: Scale, site: Site, slot: &Slot) -> SiteStats {
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let ns = |counter: &AtomicU64| scale.duration(load(counter));
    SiteStats {
        site,
        attaches: load(&slot.attaches),
        wait: ns(&slot.wait),
        longest_wait: ns(&slot.longest_wait),
        holds: load(&slot.holds),
        hold: ns(&slot.hold),
        longest_hold: ns(&slot.longest_hold),
    }
}

/// Adds another slot's figures of the same site.
fn add_site(sum: &mut SiteStats, other: &SiteStats) {
    sum.attaches += other.attaches;
    sum.wait += other.wait;
    sum.longest_wait = sum.longest_wait.max(other.longest_wait);
    sum.holds += other.holds;
    sum.hold += other.hold;
    sum.longest_hold = sum.longest_hold.max(other.longest_hold);
}

/// Sets every figure to zero (but [`Counts::waiting_now`], which counts threads, not
/// events). Holds in progress are counted when they end, in full, with their attaches.
///
/// # Examples
///
/// ```rust,standalone_crate
/// gilguard::initialize()?;
/// gilguard::with_gil(|| ());
/// gilguard::stats::reset();
/// let snapshot = gilguard::stats::snapshot();
/// assert_eq!(snapshot.total.taking_the_gil(), 0);
/// assert!(snapshot.sites.is_empty());
/// # Ok::<(), gilguard::GilError>(())
/// ```
pub fn reset() {
    block::reset();
    for tally in interp::all() {
        tally.reset();
    }
}
