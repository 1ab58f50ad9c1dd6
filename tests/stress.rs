//! Stress and leaks: 4 threads, 1,000,000 mixed operations in all, across the main
//! interpreter and two sub-interpreters, watched by a watchdog that aborts on a stall.
//! Afterwards resident memory has grown by less than 2 MiB and every interpreter has as
//! many thread states as before.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gilguard::{GilGuard, SubInterpreter, WithGil, with_gil, without_gil};

const THREADS: u64 = 4;
const OPERATIONS: u64 = 1_000_000;
/// A stall this long is a deadlock.
const STALL: Duration = Duration::from_secs(60);

/// Resident memory of this process, in bytes (`/proc/self/statm`).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux procfs");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Thread states of the main interpreter and of each sub-interpreter.
fn thread_states(interpreters: &[SubInterpreter]) -> Vec<usize> {
    let mut counts = vec![with_gil(common::thread_states_here)];
    for interpreter in interpreters {
        let handle = interpreter.thread_state().unwrap();
        // The handle's own thread state is not part of the baseline.
        counts.push(handle.run(common::thread_states_here).unwrap() - 1);
    }
    counts
}

/// One of the mixed operations, chosen by `n`. `first` is this thread's lasting handle
/// for the first sub-interpreter; the second one gets a new handle (a new thread state,
/// deleted again) every time.
fn operation(n: u64, second: &SubInterpreter, first: &gilguard::ThreadStateHandle<'_>) {
    match n % 10 {
        0 => drop(WithGil::acquire()),
        1 => with_gil(|| without_gil(|| ())),
        2 => with_gil(|| drop(WithGil::acquire())),
        3 => {
            let mut guard = GilGuard::new();
            guard.acquire();
            // SAFETY: no Python object is used while released.
            unsafe { guard.release() }.unwrap();
            guard.acquire();
            guard.restore().unwrap();
        }
        4 => first.run(|| ()).unwrap(),
        5 => first.run(|| with_gil(|| ())).unwrap(),
        6 => with_gil(|| first.run(|| without_gil(|| ())).unwrap()),
        7 => drop(first.attach().unwrap()),
        8 => second
            .thread_state()
            .unwrap()
            .run(|| with_gil(|| ()))
            .unwrap(),
        // Python code, now and then, in each interpreter.
        _ if n % 100 == 9 => {
            with_gil(|| common::run("x = [i for i in range(10)]"));
            first.run(|| common::run("y = {'a': 1}")).unwrap();
            second
                .thread_state()
                .unwrap()
                .run(|| common::run("z = 'z' * 10"))
                .unwrap();
        }
        _ => drop(WithGil::acquire()),
    }
}

fn run_operations(thread: u64, count: u64, interpreters: &[SubInterpreter], progress: &AtomicU64) {
    let first = interpreters[0].thread_state().unwrap();
    for n in 0..count {
        operation(n * THREADS + thread, &interpreters[1], &first);
        progress.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn a_million_mixed_operations_without_deadlock_or_leak() {
    common::python();
    let interpreters = [
        SubInterpreter::new().unwrap(),
        SubInterpreter::new().unwrap(),
    ];
    let progress = AtomicU64::new(0);
    let done = AtomicBool::new(false);

    // Warm up (Python's allocator arenas, the thread-locals of the crate), then measure.
    // Joined one by one: a scope alone returns before its threads' thread-local
    // destructors (which delete their thread states) have run.
    std::thread::scope(|scope| {
        let warming: Vec<_> = (0..THREADS)
            .map(|thread| {
                let (interpreters, progress) = (&interpreters, &progress);
                scope.spawn(move || run_operations(thread, 10_000, interpreters, progress))
            })
            .collect();
        for thread in warming {
            thread.join().unwrap();
        }
    });
    let baseline_states = thread_states(&interpreters);
    let baseline_memory = resident_bytes();
    progress.store(0, Ordering::Relaxed);

    let started = Instant::now();
    std::thread::scope(|scope| {
        let (progress, done) = (&progress, &done);
        scope.spawn(move || {
            let mut last = (0, Instant::now());
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let now = progress.load(Ordering::Relaxed);
                if now != last.0 {
                    last = (now, Instant::now());
                } else if last.1.elapsed() > STALL {
                    eprintln!("watchdog: no progress for {STALL:?} after {now} operations");
                    std::process::abort();
                }
            }
        });
        let workers: Vec<_> = (0..THREADS)
            .map(|thread| {
                let interpreters = &interpreters;
                scope.spawn(move || {
                    run_operations(thread, OPERATIONS / THREADS, interpreters, progress)
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
    });
    let elapsed = started.elapsed();

    assert_eq!(progress.load(Ordering::Relaxed), OPERATIONS);
    let grown = resident_bytes().saturating_sub(baseline_memory);
    eprintln!("{OPERATIONS} operations in {elapsed:?}; resident memory grew by {grown} bytes");
    assert!(grown < 2 << 20, "resident memory grew by {grown} bytes");
    assert_eq!(thread_states(&interpreters), baseline_states);
}
