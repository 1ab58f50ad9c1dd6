//! The statistics' bookkeeping, without an interpreter: the restore stack past its depth, the
//! lock-free chain, the site table, and the table's text.

use core::panic::Location;
use core::time::Duration;

use crate::stats::chain::Chain;
use crate::stats::interp::{InterpKey, tally_of};
use crate::stats::kind::AttachKind;
use crate::stats::sites;
use crate::stats::snapshot::{Counts, Snapshot};
use crate::stats::thread::{Resume, with};

#[test]
fn restores_deeper_than_the_stack_pop_in_order() {
    let tally = tally_of(InterpKey {
        id: -7,
        epoch: u64::MAX - 3,
    });
    with(|stats| {
        for depth in 0..40u32 {
            stats.push_resume(Resume {
                site: Location::caller(),
                tally,
                holds: depth < 16,
            });
        }
        // The 24 beyond the depth are not stored: their restores find none.
        for _ in 0..24 {
            assert!(stats.pop_resume().is_none());
        }
        for depth in (0..16).rev() {
            let resume = stats.pop_resume().expect("stored");
            assert!(resume.holds, "{depth}");
        }
        assert!(stats.pop_resume().is_none());
    });
}

#[test]
fn a_slot_is_claimed_once_and_added_to() {
    let tally = tally_of(InterpKey {
        id: -8,
        epoch: u64::MAX - 3,
    });
    let key = (Location::caller(), tally, AttachKind::Native);
    sites::record_wait(key, 5);
    sites::record_hold(key, 7, 11);
    let same = |(site, of, kind): sites::SlotKey| {
        core::ptr::eq(site, key.0) && core::ptr::eq(of, tally) && kind == key.2
    };
    let (_, slot) = sites::claimed().find(|(k, _)| same(*k)).expect("claimed");
    let load = |counter: &core::sync::atomic::AtomicU64| {
        counter.load(core::sync::atomic::Ordering::Relaxed)
    };
    assert_eq!(load(&slot.attaches), 2);
    assert_eq!(load(&slot.wait_ns), 12);
    assert_eq!(load(&slot.longest_wait_ns), 7);
    assert_eq!(load(&slot.holds), 1);
    assert_eq!(load(&slot.hold_ns), 11);
    assert_eq!(sites::claimed().filter(|(k, _)| same(*k)).count(), 1);
    // Another kind at the same site is another slot.
    sites::record_wait((key.0, tally, AttachKind::Restore), 1);
    assert_eq!(
        sites::claimed()
            .filter(|(k, _)| core::ptr::eq(k.1, tally))
            .count(),
        2
    );
}

#[test]
fn the_table_shows_the_interpreters_the_total_and_the_sites() {
    let total = Counts {
        wait: Duration::from_micros(1500),
        ..Counts::default()
    };
    let snapshot = Snapshot {
        total,
        interpreters: Vec::new(),
        sites: Vec::new(),
        sites_not_recorded: 3,
    };
    let table = snapshot.to_string();
    assert!(table.starts_with("interpreter"), "{table}");
    assert!(table.contains("total"), "{table}");
    assert!(table.contains("1.500"), "{table}");
    assert!(table.contains("call site"), "{table}");
    assert!(
        table.contains("3 attaches at sites not recorded"),
        "{table}"
    );
}

#[test]
fn a_chain_keeps_every_item_pushed_from_many_threads() {
    static CHAIN: Chain<(usize, usize)> = Chain::new();
    std::thread::scope(|scope| {
        for thread in 0..4 {
            scope.spawn(move || {
                for item in 0..250 {
                    assert_eq!(*CHAIN.push((thread, item)), (thread, item));
                }
            });
        }
    });
    let mut items: Vec<_> = CHAIN.iter().copied().collect();
    items.sort_unstable();
    let expected: Vec<_> = (0..4)
        .flat_map(|thread| (0..250).map(move |item| (thread, item)))
        .collect();
    assert_eq!(items, expected);
}
