//! How much Python runs in parallel: a CPU-bound pure-Python loop in 2 native threads,
//! (a) both in the main interpreter, (b) each in its own sub-interpreter with its own GIL
//! (CPython 3.12+), and (c) one thread alone, for reference.
//!
//! Run it with `cargo run --release --example parallelism`. The criterion bench
//! `benches/parallelism.rs` measures the same pools.

mod support;

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gilguard::{InterpreterConfig, SubInterpreter, with_gil};

/// Iterations of the Python loop in one call of `work()`.
pub const LOOP: u64 = 300_000;

const WORK: &str = "
def work(n):
    total = 0
    for i in range(n):
        total += i * i % 7
    return total
";

/// Where the threads of a [`Pool`] run Python.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// All threads in the main interpreter, sharing its GIL.
    MainInterpreter,
    /// Each thread in a sub-interpreter of its own, with its own GIL.
    OwnGilInterpreters,
}

/// Native threads that each call `work(LOOP)` a given number of times per batch, without
/// waiting for each other in between.
#[derive(Debug)]
pub struct Pool {
    starts: Vec<Sender<u64>>,
    done: Receiver<()>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Starts `threads` threads placed as `placement` says; each defines `work` in its
    /// interpreter first.
    ///
    /// # Panics
    /// If an interpreter cannot be created, for instance own-GIL interpreters before 3.12.
    pub fn new(placement: Placement, threads: usize) -> Pool {
        gilguard::initialize().expect("Python starts");
        if placement == Placement::MainInterpreter {
            with_gil(|| support::run(WORK));
        }
        let (finished, done) = channel();
        let mut starts = Vec::new();
        let mut handles = Vec::new();
        for _ in 0..threads {
            let interpreter = match placement {
                Placement::MainInterpreter => None,
                Placement::OwnGilInterpreters => Some(Arc::new(
                    SubInterpreter::with_config(InterpreterConfig::isolated())
                        .expect("an own-GIL sub-interpreter (CPython 3.12+)"),
                )),
            };
            let (start, batches) = channel::<u64>();
            let finished = finished.clone();
            handles.push(std::thread::spawn(move || {
                worker(interpreter.as_deref(), &batches, &finished);
                if let Some(interpreter) = interpreter {
                    // The last owner ends it, after this thread's handle is gone.
                    drop(Arc::into_inner(interpreter));
                }
            }));
            starts.push(start);
        }
        Pool {
            starts,
            done,
            threads: handles,
        }
    }

    /// The number of threads.
    pub fn threads(&self) -> usize {
        self.starts.len()
    }

    /// Every thread calls `work(LOOP)` `calls` times; returns when all have finished.
    pub fn batch(&self, calls: u64) {
        for start in &self.starts {
            start.send(calls).expect("the worker runs");
        }
        for _ in &self.starts {
            self.done.recv().expect("the worker finished its batch");
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.starts.clear(); // disconnects: the workers stop
        for thread in self.threads.drain(..) {
            thread.join().expect("the worker stopped cleanly");
        }
    }
}

fn worker(interpreter: Option<&SubInterpreter>, batches: &Receiver<u64>, finished: &Sender<()>) {
    let call = format!("work({LOOP})");
    match interpreter {
        None => {
            while let Ok(calls) = batches.recv() {
                for _ in 0..calls {
                    with_gil(|| support::eval_str(&call));
                }
                finished.send(()).expect("the pool waits");
            }
        }
        Some(interpreter) => {
            let handle = interpreter.thread_state().expect("a thread state");
            handle.run(|| support::run(WORK)).expect("attached");
            while let Ok(calls) = batches.recv() {
                for _ in 0..calls {
                    handle.run(|| support::eval_str(&call)).expect("attached");
                }
                finished.send(()).expect("the pool waits");
            }
        }
    }
}

/// Calls of `work(LOOP)` per second: the median of `batches` batches of `calls` calls per
/// thread, after one warm-up call.
pub fn throughput(pool: &Pool, batches: usize, calls: u64) -> f64 {
    pool.batch(1);
    let mut rates: Vec<f64> = (0..batches)
        .map(|_| {
            let started = Instant::now();
            pool.batch(calls);
            let elapsed: Duration = started.elapsed();
            (calls * pool.threads() as u64) as f64 / elapsed.as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

#[allow(dead_code)]
fn main() {
    let (batches, calls) = (5, 40);
    let alone = throughput(&Pool::new(Placement::MainInterpreter, 1), batches, calls);
    let shared = throughput(&Pool::new(Placement::MainInterpreter, 2), batches, calls);
    println!(
        "work({LOOP}) calls per second, median of {batches} batches of {calls} calls per thread:"
    );
    println!("(c) 1 thread alone:                     {alone:8.1}");
    println!(
        "(a) 2 threads, main interpreter:        {shared:8.1}  ({:.2}x alone)",
        shared / alone
    );
    if cfg!(Py_3_12) {
        let own = throughput(&Pool::new(Placement::OwnGilInterpreters, 2), batches, calls);
        println!(
            "(b) 2 threads, own-GIL interpreters:    {own:8.1}  ({:.2}x alone, {:.2}x (a))",
            own / alone,
            own / shared
        );
    } else {
        println!("(b) own-GIL sub-interpreters need CPython 3.12+");
    }
    println!(
        "available parallelism: {:?}",
        std::thread::available_parallelism()
    );
}
