//! "My Rust function, run from a Python thread, holds the GIL, so the main thread never
//! prints *Still running!*"
//!
//! Python starts a `threading.Thread` whose target is the Rust function `rust_work`. The
//! function computes without the GIL, calls back into Python with it, and computes again
//! without it. Meanwhile the main Python thread prints *Still running!*: because the Rust
//! function releases the GIL around its computations, the two interleave.
//!
//! Run it with `cargo run --example still_running`.

mod support;

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use gilguard::{with_gil, without_gil};
use pyo3_ffi as ffi;

/// Every line printed, in order, by either thread.
static EVENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// How long each of the two computations in `rust_work` lasts.
static PHASE: Mutex<Duration> = Mutex::new(Duration::from_millis(300));

fn event(line: String) {
    println!("{line}");
    EVENTS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(line);
}

/// CPU-bound work that needs no Python: a checksum over `phase` worth of iterations.
fn compute(phase: Duration) -> u64 {
    let started = Instant::now();
    let mut checksum = 0u64;
    while started.elapsed() < phase {
        for i in 0..10_000u64 {
            checksum = checksum.wrapping_mul(31).wrapping_add(i ^ (checksum >> 7));
        }
    }
    checksum
}

/// `rust_work(callback)`, the target of the Python thread.
unsafe extern "C" fn rust_work(
    _module: *mut ffi::PyObject,
    callback: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let phase = *PHASE.lock().unwrap_or_else(PoisonError::into_inner);
    event("rust:   computing without the GIL".into());
    let first = without_gil(|| compute(phase));
    event("rust:   calling back into Python with the GIL".into());
    // SAFETY: called by Python, so attached; `callback` is a borrowed, live object.
    let result = unsafe { ffi::PyObject_CallNoArgs(callback) };
    if result.is_null() {
        return result; // the exception propagates to the thread
    }
    // SAFETY: attached; `result` is the new reference returned above.
    unsafe { ffi::Py_DECREF(result) };
    event("rust:   computing without the GIL again".into());
    let second = without_gil(|| compute(phase));
    event(format!("rust:   done (checksums {first:x}, {second:x})"));
    support::none()
}

/// `log(line)`: lets the Python side print through the same ordered log.
unsafe extern "C" fn log(
    _module: *mut ffi::PyObject,
    line: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: called by Python with a `str` argument (METH_O).
    event(unsafe { support::to_string(line) });
    support::none()
}

/// Runs the scenario and returns the interleaving it printed.
pub fn run(phase: Duration) -> Vec<String> {
    *PHASE.lock().unwrap_or_else(PoisonError::into_inner) = phase;
    EVENTS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clear();
    gilguard::initialize().expect("Python starts");
    with_gil(|| {
        support::define(c"rust_work", rust_work, ffi::METH_O);
        support::define(c"log", log, ffi::METH_O);
        support::run(
            r#"
import threading, time

def callback():
    log("python: callback runs in the worker thread")

worker = threading.Thread(target=rust_work, args=(callback,))
worker.start()
while worker.is_alive():
    log("main:   Still running!")
    time.sleep(0.05)  # releases the GIL, as any blocking call in Python does
worker.join()
log("main:   worker finished")
"#,
        );
    });
    EVENTS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

#[allow(dead_code)]
fn main() {
    run(Duration::from_millis(300));
}
