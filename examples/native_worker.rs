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

use gilguard::{with_gil, without_gil};
use pyo3_ffi as ffi;

/// Messages that may wait in the queue; `submit` blocks, GIL released, when it is full.
const QUEUE_CAPACITY: usize = 16;

/// An owned reference to a Python callable, used only on the worker thread with the GIL.
struct Callback(NonNull<ffi::PyObject>);

// SAFETY: the reference is created with the GIL held and afterwards touched (called,
// released) only inside `with_gil` on the worker thread. Moving the pointer between
// threads is harmless; using it without the GIL would not be, and nothing does.
unsafe impl Send for Callback {}

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

/// The worker thread: processes every message in order and calls back into Python.
fn work(queue: std::sync::mpsc::Receiver<String>, callback: Callback) -> usize {
    let mut processed = 0;
    for message in queue {
        let result = process(&message);
        with_gil(|| {
            // SAFETY: attached to the main interpreter; `callback` is a live reference.
            unsafe {
                let argument = support::string(&result);
                let returned = ffi::PyObject_CallOneArg(callback.0.as_ptr(), argument);
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
    // SAFETY: attached; this is the reference `start` took.
    with_gil(|| unsafe { ffi::Py_DECREF(callback.0.as_ptr()) });
    processed
}

/// `start(callback)`: starts the worker thread.
unsafe extern "C" fn start(
    _module: *mut ffi::PyObject,
    callback: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: called by Python (attached) with a live argument; the new reference is
    // handed to the worker, which releases it.
    let callback = unsafe {
        ffi::Py_INCREF(callback);
        Callback(NonNull::new_unchecked(callback))
    };
    let (queue, messages) = sync_channel(QUEUE_CAPACITY);
    let thread = std::thread::spawn(move || work(messages, callback));
    *worker() = Some(Worker { queue, thread });
    support::none()
}

/// `submit(message)`: queues a message; waits with the GIL released while the queue is full.
unsafe extern "C" fn submit(
    _module: *mut ffi::PyObject,
    message: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: called by Python with a `str` (METH_O).
    let message = unsafe { support::to_string(message) };
    let queue = worker().as_ref().expect("start() was called").queue.clone();
    // The worker needs the GIL to drain the queue: waiting with it held would deadlock.
    without_gil(move || queue.send(message)).expect("the worker is running");
    support::none()
}

/// `join()`: closes the queue, waits for the worker with the GIL released, and returns
/// the number of messages it processed.
unsafe extern "C" fn join(
    _module: *mut ffi::PyObject,
    _args: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let Worker { queue, thread } = worker().take().expect("start() was called");
    drop(queue);
    let processed = without_gil(move || thread.join()).expect("the worker did not panic");
    // SAFETY: attached again after `without_gil`.
    unsafe { ffi::PyLong_FromSize_t(processed) }
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
