//! Which code holds the GIL, and who waits for it: a contended run, then the top call sites.
//!
//! Four native threads call back into Python at three places in the code (a long "render",
//! a medium "lookup", a short "notify") while a Python thread runs a loop; then the `stats`
//! feature's snapshot is printed, its call sites costliest first.
//!
//! `cargo run -p gilguard-examples --example gil_stats --features stats`

use std::time::{Duration, Instant};

use gilguard::{stats, with_gil, without_gil};

mod support;

/// Work that needs the GIL, `duration` long.
fn python_work(duration: Duration) {
    let start = Instant::now();
    while start.elapsed() < duration {
        std::hint::spin_loop();
    }
}

fn render() {
    with_gil(|| python_work(Duration::from_millis(8)));
}

fn lookup() {
    with_gil(|| python_work(Duration::from_millis(2)));
}

fn notify() {
    with_gil(|| python_work(Duration::from_micros(200)));
}

/// The contended run: `workers` native threads, `rounds` callbacks each, beside a Python
/// thread; returns the snapshot taken right after.
pub fn run(workers: usize, rounds: usize) -> Result<stats::Snapshot, gilguard::GilError> {
    gilguard::initialize()?;
    with_gil(|| {
        support::run(
            "import threading\n\
             stop = threading.Event()\n\
             def spin():\n    while not stop.is_set():\n        pass\n\
             python_thread = threading.Thread(target=spin)\n\
             python_thread.start()\n",
        );
    });
    stats::reset();
    std::thread::scope(|scope| {
        for worker in 0..workers {
            scope.spawn(move || {
                for round in 0..rounds {
                    match (worker + round) % 4 {
                        0 => render(),
                        1 | 2 => lookup(),
                        _ => notify(),
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            });
        }
    });
    let snapshot = stats::snapshot();
    with_gil(|| {
        support::run("stop.set()\n");
        without_gil(|| std::thread::sleep(Duration::from_millis(10)));
        support::run("python_thread.join()\n");
    });
    Ok(snapshot)
}

#[allow(dead_code)]
fn main() -> Result<(), gilguard::GilError> {
    let snapshot = run(4, 20)?;
    // `{:.5}`: the five costliest call sites.
    println!("{snapshot:.5}");
    let top = &snapshot.sites[0];
    println!(
        "costliest: {}:{}, {} attaches, held {:?} in all (longest {:?}), waited {:?}",
        top.site.file(),
        top.site.line(),
        top.attaches,
        top.hold,
        top.longest_hold,
        top.wait
    );
    Ok(())
}
