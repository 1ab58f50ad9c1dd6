//! Interpreter shutdown with threads Python did not create still using it (docs/guide.md,
//! §3 "Shutdown"; docs/reliability.md, "Shutdown"):
//! every run must exit cleanly within 10 s, with no crash, no hang and no `Fatal Python
//! error`. Each run is a child process, since finalization cannot be undone.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use gilguard::{GilError, try_with_gil, without_gil};

const RUNS: usize = 200;
const THREADS: usize = 8;

fn every_run_exits_cleanly(child: &str) {
    for run in 0..RUNS {
        let output = common::run_child_within(child, Duration::from_secs(10));
        assert!(
            output.status.success(),
            "run {run}: {:?}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Starts `THREADS` native threads that call `body` in a loop until it is refused, and
/// returns once each has run it at least once.
fn start_threads(body: fn() -> Result<(), GilError>) -> Vec<JoinHandle<usize>> {
    let running = Arc::new(AtomicUsize::new(0));
    let threads = (0..THREADS)
        .map(|_| {
            let running = Arc::clone(&running);
            std::thread::spawn(move || {
                let mut done = 0;
                loop {
                    match body() {
                        Ok(()) => {
                            if done == 0 {
                                running.fetch_add(1, Ordering::SeqCst);
                            }
                            done += 1;
                        }
                        Err(GilError::Finalizing | GilError::NotInitialized) => return done,
                        Err(other) => panic!("unexpected refusal: {other}"),
                    }
                }
            })
        })
        .collect();
    while running.load(Ordering::SeqCst) < THREADS {
        std::thread::yield_now();
    }
    threads
}

/// What an embedding program does at exit: attach and finalize, here from the thread
/// that initialized Python.
fn finalize() {
    // SAFETY: initialized; this thread attaches to its own main thread state and finalizes.
    unsafe {
        pyo3_ffi::PyGILState_Ensure();
        assert_eq!(pyo3_ffi::Py_FinalizeEx(), 0);
    }
}

/// Starts Python with `start`, runs `body` in a loop on native threads, and finalizes.
fn finalize_while(start: fn(), body: fn() -> Result<(), GilError>) {
    start();
    let threads = start_threads(body);
    finalize();
    for thread in threads {
        // A thread left hanging inside CPython would block here: the parent flags it.
        assert!(thread.join().expect("the thread did not panic") > 0);
    }
}

#[test]
fn native_threads_acquiring_in_a_loop_while_the_main_thread_exits() {
    every_run_exits_cleanly("child_acquiring_in_a_loop");
}

#[test]
#[ignore = "runs in a child process, started by native_threads_acquiring_in_a_loop_while_the_main_thread_exits"]
fn child_acquiring_in_a_loop() {
    finalize_while(common::python, || try_with_gil(|| common::run("x = 1")));
}

#[test]
fn native_threads_holding_a_guard_across_the_exit() {
    every_run_exits_cleanly("child_holding_a_guard_across_the_exit");
}

#[test]
#[ignore = "runs in a child process, started by native_threads_holding_a_guard_across_the_exit"]
fn child_holding_a_guard_across_the_exit() {
    finalize_while(common::python, hold_a_guard_detached_inside);
}

/// Holds a guard and detaches inside it: shutdown must wait for it to re-attach and end.
fn hold_a_guard_detached_inside() -> Result<(), GilError> {
    try_with_gil(|| {
        without_gil(|| std::thread::sleep(Duration::from_millis(1)));
        common::run("y = 2");
    })
}

#[test]
fn native_threads_holding_a_guard_across_the_exit_of_a_runtime_started_by_pyo3() {
    every_run_exits_cleanly("child_holding_a_guard_started_by_pyo3");
}

#[test]
#[ignore = "runs in a child process, started by native_threads_holding_a_guard_across_the_exit_of_a_runtime_started_by_pyo3"]
fn child_holding_a_guard_started_by_pyo3() {
    // This crate's `initialize` never runs: the shutdown gate is installed by the first
    // native thread that attaches, and must be in place before shutdown begins.
    finalize_while(pyo3::Python::initialize, hold_a_guard_detached_inside);
}
