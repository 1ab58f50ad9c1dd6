//! The contended run of `examples/gil_stats.rs`: its three call sites are told apart, each
//! with the attaches it made and a hold for each. The only test of its binary, so that no
//! other test's attaches are counted. (No timing is asserted: see
//! `tests/stats_ground_truth.rs`.)
#![cfg(feature = "stats")]

#[path = "../examples/gil_stats.rs"]
mod example;

#[test]
fn the_call_sites_of_a_contended_run_are_told_apart() {
    let snapshot = example::run(4, 8).unwrap();
    let sites: Vec<_> = snapshot
        .sites
        .iter()
        .filter(|site| site.site.file().ends_with("gil_stats.rs"))
        .collect();
    assert_eq!(sites.len(), 3, "{snapshot}");
    // 4 workers x 8 rounds: render 8, lookup 16, notify 8.
    let mut attaches: Vec<u64> = sites.iter().map(|site| site.attaches).collect();
    attaches.sort_unstable();
    assert_eq!(attaches, [8, 8, 16], "{snapshot}");
    assert!(sites.iter().all(|site| site.holds == site.attaches));
    assert_eq!(snapshot.total.waiting_now, 0);
    // The example prints the table.
    assert!(format!("{snapshot:.5}").contains("gil_stats.rs"));
}
