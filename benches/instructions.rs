//! Runs one scenario a given number of times, for instruction counting under
//! `valgrind --tool=callgrind` (see `benches/instructions.sh`): counts are repeatable
//! where timings are not.
//!
//! `instructions <scenario> <iterations>`; a `native_` prefix runs the scenario on a thread
//! Python did not create.

use std::hint::black_box;

use gilguard::{WithGil, with_gil, without_gil};
use pyo3_ffi as ffi;

fn main() {
    let mut args = std::env::args().skip(1);
    let scenario = args.next().expect("a scenario");
    let iterations: u64 = args
        .next()
        .expect("an iteration count")
        .parse()
        .expect("a number");
    gilguard::initialize().expect("Python starts");
    if let Some(native) = scenario.strip_prefix("native_") {
        // On a thread Python did not create. The guards get one warm-up acquisition (which
        // creates the thread state they keep); the raw calls start from a bare thread, so
        // that `PyGILState_*` shows its create/destroy cost.
        let native = native.to_owned();
        std::thread::spawn(move || {
            if !native.starts_with("raw_") {
                drop(WithGil::acquire());
            }
            measured(&native, iterations);
        })
        .join()
        .expect("the scenario ran");
    } else {
        measured(&scenario, iterations);
    }
}

/// Everything callgrind counts (`--toggle-collect=*measured*`): start-up is left out.
#[inline(never)]
fn measured(scenario: &str, iterations: u64) {
    match scenario {
        "raw_gilstate_pair" => (0..iterations).for_each(|_| {
            // SAFETY: initialized, detached; balanced.
            unsafe {
                let state = ffi::PyGILState_Ensure();
                ffi::PyGILState_Release(black_box(state));
            }
        }),
        "with_gil" => (0..iterations).for_each(|_| drop(black_box(WithGil::acquire()))),
        "with_gil_closure" => (0..iterations).for_each(|_| with_gil(|| black_box(()))),
        "raw_nested_gilstate_pair" => with_gil(|| {
            (0..iterations).for_each(|_| {
                // SAFETY: attached; balanced.
                unsafe {
                    let state = ffi::PyGILState_Ensure();
                    ffi::PyGILState_Release(black_box(state));
                }
            })
        }),
        "nested_with_gil" => {
            with_gil(|| (0..iterations).for_each(|_| drop(black_box(WithGil::acquire()))))
        }
        "nested_with_gil_closure" => {
            with_gil(|| (0..iterations).for_each(|_| with_gil(|| black_box(()))))
        }
        "raw_save_restore" => with_gil(|| {
            (0..iterations).for_each(|_| {
                // SAFETY: attached; balanced.
                unsafe {
                    let tstate = ffi::PyEval_SaveThread();
                    ffi::PyEval_RestoreThread(black_box(tstate));
                }
            })
        }),
        "without_gil" => with_gil(|| (0..iterations).for_each(|_| without_gil(|| black_box(())))),
        "raw_reused_thread_state" => {
            // SAFETY: one thread state for this thread, attached and detached around each
            // step, deleted at the end.
            unsafe {
                let tstate = ffi::PyThreadState_New(ffi::PyInterpreterState_Main());
                (0..iterations).for_each(|_| {
                    ffi::PyEval_RestoreThread(black_box(tstate));
                    ffi::PyEval_SaveThread();
                });
                ffi::PyEval_RestoreThread(tstate);
                ffi::PyThreadState_Clear(tstate);
                ffi::PyThreadState_DeleteCurrent();
            }
        }
        "handle_attach" => {
            let main = gilguard::Interpreter::main().expect("initialized");
            // SAFETY: the main interpreter outlives the handle.
            let handle = unsafe { main.thread_state() }.expect("a handle");
            (0..iterations).for_each(|_| drop(black_box(handle.attach().expect("attaches"))));
        }
        other => panic!("unknown scenario {other}"),
    }
}
