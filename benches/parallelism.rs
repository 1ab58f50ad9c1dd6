//! Throughput of a CPU-bound pure-Python loop in 2 native threads: both in the main
//! interpreter, each in its own own-GIL sub-interpreter (CPython 3.12+), and one thread
//! alone. Criterion reports calls of `work()` per second (elements/s); the ratio (b)/(a)
//! is the parallel speed-up own-GIL interpreters give.
//!
//! `cargo bench -p gilguard-benches --bench parallelism`

#![allow(missing_docs)] // `criterion_group!` generates an undocumented public function

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

#[path = "../examples/parallelism.rs"]
#[allow(dead_code)]
mod scenario;

use scenario::{Placement, Pool};

fn parallelism(c: &mut Criterion) {
    let mut group = c.benchmark_group("parallelism");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    let mut cases = vec![
        ("c_one_thread_main", Placement::MainInterpreter, 1),
        ("a_two_threads_main", Placement::MainInterpreter, 2),
    ];
    if cfg!(Py_3_12) {
        cases.push(("b_two_threads_own_gil", Placement::OwnGilInterpreters, 2));
    }
    for (name, placement, threads) in cases {
        let pool = Pool::new(placement, threads);
        group.throughput(Throughput::Elements(threads as u64));
        group.bench_function(name, |bencher| {
            bencher.iter_custom(|iterations| {
                let started = Instant::now();
                pool.batch(iterations);
                started.elapsed()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, parallelism);
criterion_main!(benches);
