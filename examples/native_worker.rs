//! A subscriber/processor pair: Python feeds messages to a Rust worker running on a native
//! thread (one Python never created); the worker processes each message without the GIL
//! and hands the result to a Python callback, acquiring the GIL for the call. The Python
//! side waits in `join` with the GIL released, so the worker's callbacks, and any other
//! Python thread, keep running.
//!
//! Run it with `cargo run --example native_worker`.

mod support;

use std::ptr::NonNull;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;

use gilguard::{ExceptionKind, OwnedRef, PythonException, boundary, with_gil, without_gil};
use pyo3_ffi as ffi;

/// Messages that may wait in the queue; `submit` blocks, GIL released, when it is full.
const QUEUE_CAPACITY: usize = 16;

struct Worker {
    queue: SyncSender<String>,
    thread: JoinHandle<usize>,
}

static WORKER: Mutex<Option<Worker>> = Mutex::new(None);

fn worker() -> std::sync::MutexGuard<'static, Option<Worker>> {
    WORKER.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The processing done for each message, on the worker thread, without the GIL.
fn process(message: &str) -> String {
    format!("{message} (processed by a native thread)")
}

/// The worker thread: processes every message in order and calls back into Python. The
/// callback, an `OwnedRef`, is released under the GIL when the thread drops it.
fn work(queue: std::sync::mpsc::Receiver<String>, callback: OwnedRef) -> usize {
    let mut processed = 0;
    for message in queue {
        let result = process(&message);
        with_gil(|| {
            // SAFETY: attached to the main interpreter, the callback's.
            unsafe {
                let argument = support::string(&result);
                let returned = ffi::PyObject_CallOneArg(callback.as_ptr(), argument);
                ffi::Py_DECREF(argument);
                if returned.is_null() {
                    ffi::PyErr_Print(); // a failing callback does not stop the worker
                } else {
                    ffi::Py_DECREF(returned);
                }
            }
        });
        processed += 1;
    }
    processed
}

/// The error for a call out of order.
fn not_started() -> PythonException {
    PythonException::new(ExceptionKind::RuntimeError, "start() was not called")
}

/// `start(callback)`: starts the worker thread.
extern "C" fn start(
    _module: *mut ffi::PyObject,
    callback: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    boundary(|| {
        let callback = NonNull::new(callback).ok_or_else(PythonException::fetch)?;
        // SAFETY: called by Python (attached) with a live argument of this interpreter.
        let callback = unsafe { OwnedRef::from_borrowed(callback) }?;
        let (queue, messages) = sync_channel(QUEUE_CAPACITY);
        let thread = std::thread::spawn(move || work(messages, callback));
        *worker() = Some(Worker { queue, thread });
        Ok(support::none())
    })
}

/// `submit(message)`: queues a message; waits with the GIL released while the queue is full.
extern "C" fn submit(
    _module: *mut ffi::PyObject,
    message: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    boundary(|| {
        // SAFETY: called by Python with a `str` (METH_O).
        let message = unsafe { support::to_string(message) };
        let queue = worker().as_ref().ok_or_else(not_started)?.queue.clone();
        // The worker needs the GIL to drain the queue: waiting with it held would deadlock.
        without_gil(move || queue.send(message))
            .map_err(|_| PythonException::new(ExceptionKind::RuntimeError, "the worker stopped"))?;
        Ok(support::none())
    })
}

/// `join()`: closes the queue, waits for the worker with the GIL released, and returns
/// the number of messages it processed.
extern "C" fn join(_module: *mut ffi::PyObject, _args: *mut ffi::PyObject) -> *mut ffi::PyObject {
    boundary(|| {
        let Worker { queue, thread } = worker().take().ok_or_else(not_started)?;
        drop(queue);
        let processed = without_gil(move || thread.join()).map_err(PythonException::from_panic)?;
        // SAFETY: attached again after `without_gil`.
        Ok(unsafe { ffi::PyLong_FromSize_t(processed) })
    })
}

/// Runs the scenario with `count` messages; returns what the Python callback received and
/// what `join` returned.
pub fn run(count: usize) -> (Vec<String>, usize) {
    gilguard::initialize().expect("Python starts");
    with_gil(|| {
        support::define(c"start", start, ffi::METH_O);
        support::define(c"submit", submit, ffi::METH_O);
        support::define(c"join", join, ffi::METH_NOARGS);
        support::run(&format!(
            r#"
import threading

received = []
ticks = 0
stop_ticking = threading.Event()

def on_message(message):
    received.append(message)

def ticker():
    # Another Python thread that must not be starved while main waits in join().
    global ticks
    while not stop_ticking.wait(0.001):
        ticks += 1

ticking = threading.Thread(target=ticker)
ticking.start()
start(on_message)
for number in range({count}):
    submit(f"message {{number}}")
processed = join()
stop_ticking.set()
ticking.join()
"#
        ));
        let received = (0..count)
            .map(|index| support::eval_str(&format!("received[{index}]")))
            .collect();
        assert_eq!(support::eval_str("len(received)"), count.to_string());
        let processed = support::eval_str("processed").parse().expect("an int");
        println!(
            "ticker thread ran {} times meanwhile",
            support::eval_str("ticks")
        );
        (received, processed)
    })
}

#[allow(dead_code)]
fn main() {
    let (received, processed) = run(1000);
    for line in received.iter().take(3) {
        println!("callback got: {line}");
    }
    println!("...");
    println!("callback got: {}", received.last().expect("messages"));
    println!("join() returned {processed}");
}
