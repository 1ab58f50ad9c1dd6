//! The guards beside the raw `pyo3-ffi` calls they wrap and the `pyo3` equivalents, in one
//! criterion run, so that ratios compare like with like (the cases: `cases/mod.rs`).
//! `benches/report.py` runs it several times and prints the criterion tables of
//! `docs/performance-log.md`.
//!
//! `cargo bench -p gilguard-benches --bench guards`

#![allow(missing_docs)] // `criterion_group!` generates an undocumented public function

#[allow(dead_code)] // the ratios are `report.py`'s; it names the raw cases itself
mod cases;

use std::time::Duration;

use cases::Runner;
use criterion::{Criterion, criterion_group, criterion_main};

fn guards(c: &mut Criterion) {
    cases::setup();
    for group in cases::groups() {
        let mut benches = c.benchmark_group(group.name);
        benches
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        for (name, work) in group.cases {
            let runner = Runner::new(group.place, work);
            benches.bench_function(name, |b| {
                b.iter_custom(|iterations| runner.time(iterations))
            });
        }
        benches.finish();
    }
}

criterion_group!(benches, guards);
criterion_main!(benches);
