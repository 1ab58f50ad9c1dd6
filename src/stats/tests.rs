//! The statistics' bookkeeping, without an interpreter: the restore stack past its depth, the
//! lock-free chain, the site table, and the table's text.

use core::panic::Location;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use crate::stats::chain::Chain;
use crate::stats::interp::{InterpKey, tally_of};
use crate::stats::kind::AttachKind;
use crate::stats::sites::Table;
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
    let table = Table::new();
    let key = (Location::caller(), tally, AttachKind::Native);
    table.slot(key).expect("free").attach(5);
    let slot = table.slot(key).expect("claimed");
    slot.attach(7);
    slot.hold(11);
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    assert_eq!(load(&slot.attaches), 2);
    assert_eq!(load(&slot.wait), 12);
    assert_eq!(load(&slot.longest_wait), 7);
    assert_eq!(load(&slot.holds), 1);
    assert_eq!(load(&slot.hold), 11);
    assert_eq!(load(&slot.longest_hold), 11);
    assert_eq!(table.claimed().count(), 1);
    // Another kind at the same site is another slot.
    table
        .slot((key.0, tally, AttachKind::Restore))
        .expect("free");
    assert_eq!(table.claimed().count(), 2);
    table.clear();
    assert_eq!(load(&slot.attaches), 0);
    assert_eq!(table.claimed().count(), 2, "keys stay claimed");
}

#[test]
fn a_full_table_counts_what_it_cannot_place() {
    let table = Table::new();
    let mut places = 0;
    // Distinct keys: one interpreter tally each, all at this site.
    for id in 0..150 {
        let tally = tally_of(InterpKey {
            id: -100 - id,
            epoch: u64::MAX - 3,
        });
        if table
            .slot((Location::caller(), tally, AttachKind::Handle))
            .is_some()
        {
            places += 1;
        }
    }
    assert_eq!(places, 128);
    assert_eq!(table.overflow.load(Ordering::Relaxed), 22);
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
