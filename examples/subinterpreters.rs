//! Several sub-interpreters used from several native threads, with no fixed relation
//! between the two: threads 1 and 2 both run Python in interpreter 1, thread 3 in
//! interpreter 2. Each (thread, interpreter) pair has its own thread state, created once
//! and reused for every run; each interpreter keeps its own globals; everything is torn
//! down in order at the end. On CPython 3.12+ each interpreter has its own GIL, so the two
//! interpreters run Python in parallel.
//!
//! Run it with `cargo run --example subinterpreters`.

mod support;

use std::collections::BTreeSet;

use gilguard::{InterpreterConfig, SubInterpreter};

/// What one thread did.
#[derive(Debug)]
pub struct ThreadReport {
    /// The thread's number, 1 to 3.
    pub thread: usize,
    /// The interpreter it ran Python in, 1 or 2.
    pub interpreter: usize,
    /// How many times it attached and ran code.
    pub runs: usize,
    /// Distinct thread states the thread was attached to over all its runs.
    pub thread_states: usize,
}

/// What the whole scenario did.
#[derive(Debug)]
pub struct Report {
    /// Whether the interpreters had their own GIL (CPython 3.12+).
    pub own_gil: bool,
    /// One entry per thread.
    pub threads: Vec<ThreadReport>,
    /// `counter` in each interpreter: one increment per run, by any of its threads.
    pub counters: [String; 2],
    /// Whether each interpreter sees the marker global the *other* one set.
    pub sees_other_marker: [String; 2],
    /// Whether `end()` succeeded for each interpreter.
    pub ended: [bool; 2],
}

fn config() -> InterpreterConfig {
    if cfg!(Py_3_12) {
        InterpreterConfig::isolated()
    } else {
        InterpreterConfig::legacy()
    }
}

/// Runs the scenario with `runs` runs per thread.
pub fn run(runs: usize) -> Report {
    gilguard::initialize().expect("Python starts");
    let mut interpreters = [
        SubInterpreter::with_config(config()).expect("interpreter 1"),
        SubInterpreter::with_config(config()).expect("interpreter 2"),
    ];
    let own_gil = interpreters[0].has_own_gil();
    // Thread number -> interpreter index.
    let assignment = [(1, 0), (2, 0), (3, 1)];
    let threads = std::thread::scope(|scope| {
        let workers: Vec<_> = assignment
            .iter()
            .map(|&(thread, index)| {
                let interpreter = &interpreters[index];
                scope.spawn(move || {
                    let handle = interpreter.thread_state().expect("a thread state");
                    let mut seen = BTreeSet::new();
                    for _ in 0..runs {
                        let tstate = handle
                            .run(|| {
                                support::run(&format!(
                                    "counter = globals().get('counter', 0) + 1\n\
                                     marker_{} = True",
                                    index + 1
                                ));
                                // SAFETY: attached, so reading the current thread state is fine.
                                unsafe { pyo3_ffi::PyThreadState_Get() as usize }
                            })
                            .expect("attached");
                        seen.insert(tstate);
                    }
                    ThreadReport {
                        thread,
                        interpreter: index + 1,
                        runs,
                        thread_states: seen.len(),
                    }
                    // The handle is dropped here: its thread state is cleared and deleted
                    // on this thread.
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().expect("the thread finished"))
            .collect::<Vec<_>>()
    });
    let probe = |index: usize, expression: &str| {
        let handle = interpreters[index].thread_state().expect("a thread state");
        handle
            .run(|| support::eval_str(expression))
            .expect("attached")
    };
    let counters = [probe(0, "counter"), probe(1, "counter")];
    let sees_other_marker = [
        probe(0, "'marker_2' in globals()"),
        probe(1, "'marker_1' in globals()"),
    ];
    let ended = interpreters
        .each_mut()
        .map(|interpreter| interpreter.end().is_ok());
    Report {
        own_gil,
        threads,
        counters,
        sees_other_marker,
        ended,
    }
}

#[allow(dead_code)]
fn main() {
    let report = run(1000);
    println!(
        "{} sub-interpreters, {}",
        report.counters.len(),
        if report.own_gil {
            "each with its own GIL"
        } else {
            "sharing the main GIL (own GIL needs CPython 3.12+)"
        }
    );
    for thread in &report.threads {
        println!(
            "thread {} -> interpreter {}: {} runs on {} thread state(s)",
            thread.thread, thread.interpreter, thread.runs, thread.thread_states
        );
    }
    for (index, counter) in report.counters.iter().enumerate() {
        println!(
            "interpreter {}: counter = {counter}, sees the other interpreter's marker: {}",
            index + 1,
            report.sees_other_marker[index]
        );
    }
    println!(
        "ended cleanly: interpreter 1 {}, interpreter 2 {}",
        report.ended[0], report.ended[1]
    );
}
