//! The native side of `Worker`: a queue of Python objects and the thread, one Python never
//! created, that hands each of them to the callback in the interpreter the `Worker` was
//! created in.
//!
//! The callback and the items are [`OwnedRef`]s: they cross from the Python thread that
//! made them to the worker thread, and whichever thread drops the last clone releases them
//! soundly (at once where attached to their interpreter). The worker drops them inside its
//! [`ThreadStateHandle::run`], attached, so that releasing them costs nothing more.
//!
//! Locking rule: the queue's mutex is never held while waiting for a GIL or while running
//! Python code (calls, and releases: dropping an `OwnedRef` may run finalizers). Python
//! threads take it while attached, so a worker that held it while waiting for the GIL would
//! deadlock with them, and Python code run under it could call back into `submit` and lock
//! it again. So items and errors leave the queue's state as values returned to the caller,
//! which drops them once the lock is released.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

use gilguard::{OwnedRef, PythonException, ThreadStateHandle, without_gil};
use pyo3_ffi as ffi;

/// Why [`Shared::try_push`] did not queue an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The queue is bounded and full.
    Full,
    /// The queue was closed (`join`, or shutdown).
    Closed,
}

/// How a worker thread ended, taken by `join`.
#[derive(Debug)]
pub struct Outcome {
    /// Items handed to the callback, whether it returned or raised.
    pub processed: usize,
    /// The first exception a callback raised; later ones are dropped.
    pub error: Option<PythonException>,
    /// Why the thread could not attach to the interpreter at all.
    pub attach_error: Option<String>,
}

/// What the worker thread and the Python side share.
#[derive(Debug)]
pub struct Shared {
    /// Items that may wait in the queue; 0 means unbounded.
    capacity: usize,
    state: Mutex<State>,
    /// Signalled on every change of `state`; every waiter re-checks its own condition.
    changed: Condvar,
    /// Pending items are dropped instead of processed (shutdown). An atomic, because the
    /// worker reads it between callbacks, attached, where it must not take the mutex.
    discarding: AtomicBool,
    /// The worker thread, until someone reaps it.
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The worker thread's id, to recognize calls made from its own callback.
    thread_id: OnceLock<ThreadId>,
}

#[derive(Debug, Default)]
struct State {
    items: VecDeque<OwnedRef>,
    closed: bool,
    /// The worker thread is past its last use of Python: its thread state is deleted.
    finished: bool,
    processed: usize,
    error: Option<PythonException>,
    attach_error: Option<String>,
}

impl Shared {
    /// Starts a worker thread that calls `callback` with every item, in the interpreter
    /// `callback` belongs to (which may be a sub-interpreter).
    ///
    /// # Safety
    /// Until the worker thread has finished ([`Shared::wait_finished`]), the callback's
    /// interpreter is not ended: its owner shuts the worker down (from the module's `atexit`
    /// hook at the latest) first.
    ///
    /// # Errors
    /// If the thread cannot be spawned; `callback` is dropped then.
    pub unsafe fn start(callback: OwnedRef, capacity: usize) -> std::io::Result<Arc<Shared>> {
        let shared = Arc::new(Shared {
            capacity,
            state: Mutex::default(),
            changed: Condvar::new(),
            discarding: AtomicBool::new(false),
            thread: Mutex::new(None),
            thread_id: OnceLock::new(),
        });
        let serving = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("gilguard-demo-worker".into())
            // SAFETY: forwarded from the caller: the interpreter outlives the thread.
            .spawn(move || unsafe { serve(&serving, callback) })?;
        *lock(&shared.thread) = Some(thread);
        Ok(shared)
    }

    /// Queues `item`, or gives it back with the reason (to retry, or to be dropped outside
    /// the lock).
    pub fn try_push(&self, item: OwnedRef) -> Result<(), (OwnedRef, Refused)> {
        let mut state = lock(&self.state);
        if state.closed {
            return Err((item, Refused::Closed));
        }
        if self.capacity != 0 && state.items.len() >= self.capacity {
            return Err((item, Refused::Full));
        }
        state.items.push_back(item);
        drop(state);
        self.changed.notify_all();
        Ok(())
    }

    /// Waits up to `slice` for room in a full queue (or for it to be closed).
    pub fn wait_for_space(&self, slice: Duration) {
        let state = lock(&self.state);
        if !state.closed && self.capacity != 0 && state.items.len() >= self.capacity {
            drop(wait(&self.changed, state, slice));
        }
    }

    /// Closes the queue: `submit` is refused from now on. With `discard`, pending items are
    /// dropped instead of processed: the worker finishes the callback it is in, and the
    /// queued items are returned, for the caller to drop outside the lock.
    pub fn close(&self, discard: bool) -> Vec<OwnedRef> {
        if discard {
            self.discarding.store(true, Ordering::Release);
        }
        let mut state = lock(&self.state);
        state.closed = true;
        let dropped = if discard {
            state.items.drain(..).collect()
        } else {
            Vec::new()
        };
        drop(state);
        self.changed.notify_all();
        dropped
    }

    /// Waits up to `slice` for the worker thread to finish; whether it has.
    pub fn wait_finished(&self, slice: Duration) -> bool {
        let state = lock(&self.state);
        if state.finished {
            return true;
        }
        wait(&self.changed, state, slice).finished
    }

    /// Whether the worker thread is past its last use of Python.
    pub fn is_finished(&self) -> bool {
        lock(&self.state).finished
    }

    /// Waits for the worker thread to finish, then reaps it. Safe to call from several
    /// threads: one joins, the others only wait.
    pub fn wait_and_reap(&self) {
        let mut state = lock(&self.state);
        while !state.finished {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        drop(state);
        self.reap();
    }

    /// Joins the worker thread if it has finished and nobody joined it yet. It returns at
    /// once then: "finished" is the thread's last step.
    pub fn reap(&self) {
        let thread = if self.is_finished() {
            lock(&self.thread).take()
        } else {
            None
        };
        if let Some(thread) = thread {
            // A panic in the worker thread was already reported on stderr by the runtime;
            // the Python side sees its effect through `Outcome`.
            let _ = thread.join();
        }
    }

    /// Whether the calling thread is the worker thread (inside a callback).
    pub fn on_worker_thread(&self) -> bool {
        self.thread_id.get() == Some(&std::thread::current().id())
    }

    /// What the worker thread left behind, once it finished: the outcome, and items still
    /// queued (only if it could not attach), for the caller to drop outside the lock.
    pub fn take_outcome(&self) -> (Outcome, Vec<OwnedRef>) {
        let mut state = lock(&self.state);
        let outcome = Outcome {
            processed: state.processed,
            error: state.error.take(),
            attach_error: state.attach_error.clone(),
        };
        (outcome, state.items.drain(..).collect())
    }

    fn discarding(&self) -> bool {
        self.discarding.load(Ordering::Acquire)
    }

    /// The next items to process, all that are queued; `None` once the queue is closed and
    /// empty.
    fn next_batch(&self) -> Option<Vec<OwnedRef>> {
        let mut state = lock(&self.state);
        loop {
            if !state.items.is_empty() {
                let batch = state.items.drain(..).collect();
                drop(state);
                self.changed.notify_all(); // room for blocked submitters
                return Some(batch);
            }
            if state.closed {
                return None;
            }
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Records the first callback error; returns a later one for the caller to drop outside
    /// the lock.
    fn record_error(&self, error: PythonException) -> Option<PythonException> {
        let mut state = lock(&self.state);
        if state.error.is_none() {
            state.error = Some(error);
            None
        } else {
            Some(error)
        }
    }

    fn finish(&self, processed: usize, attach_error: Option<String>) {
        let mut state = lock(&self.state);
        state.processed = processed;
        state.attach_error = attach_error;
        state.finished = true;
        drop(state);
        self.changed.notify_all();
    }
}

/// Shuts workers down without processing their pending items, waits for their threads with
/// the GIL released, and drops any callback exception they recorded. A worker whose own
/// callback is running this (it dropped the last reference to its `Worker`) is only told to
/// stop: it finishes by itself once that callback returns, and whoever shuts its interpreter
/// down waits for it.
///
/// Called attached to the workers' interpreter (by `tp_dealloc` and the `atexit` hook), so
/// the items and errors dropped here are released at once. Nothing here panics:
/// `tp_dealloc` calls it, outside any `boundary`.
///
/// Returns the workers whose threads are gone.
pub fn shut_down(workers: &[Arc<Shared>]) -> Vec<Arc<Shared>> {
    for worker in workers {
        drop(worker.close(true)); // the pending items, outside the queue's lock
    }
    let waited: Vec<Arc<Shared>> = workers
        .iter()
        .filter(|worker| !worker.on_worker_thread())
        .cloned()
        .collect();
    if waited.iter().all(|worker| worker.is_finished()) {
        // Already stopped (by `join`, or by the `atexit` hook before this deallocation during
        // finalization): reaping a finished thread never waits for the GIL.
        waited.iter().for_each(|worker| worker.reap());
    } else {
        // The worker threads need the GIL to finish their current callback and delete their
        // thread states: waiting with it held would deadlock.
        let waiting = waited.clone();
        without_gil(move || waiting.iter().for_each(|worker| worker.wait_and_reap()));
    }
    for worker in &waited {
        // Leftover items, and the error: shutdown ends the worker's life, so nothing raises
        // it any more (a later `join` only returns the count). Dropped outside the lock.
        drop(worker.take_outcome());
    }
    waited
}

/// The worker thread: attaches to the callback's interpreter through a thread state of its
/// own, and calls the callback with every item until the queue is closed and empty.
///
/// # Safety
/// The callback's interpreter outlives the thread (see [`Shared::start`]).
unsafe fn serve(shared: &Shared, callback: OwnedRef) {
    let _ = shared.thread_id.set(std::thread::current().id());
    // SAFETY: the interpreter is not ended before this thread finished (caller), and the
    // handle is dropped below, before `finish` reports the thread as finished.
    let handle = match unsafe { callback.interpreter().thread_state() } {
        Ok(handle) => handle,
        Err(error) => {
            // Never expected: the interpreter is alive, and this thread has no other handle.
            // Dropped detached, the callback is released by attaching (main interpreter) or
            // the next time gilguard runs code in its sub-interpreter; before `finish`,
            // since the first may use Python.
            drop(callback);
            shared.finish(0, Some(error.to_string()));
            return;
        }
    };
    let processed = process_all(shared, &handle, &callback);
    // Released attached, at once. If attaching fails (which the caller's contract rules
    // out), the closure, and so the callback, is dropped detached, which is sound too.
    let _ = handle.run(move || drop(callback));
    drop(handle);
    shared.finish(processed, None);
}

/// Calls the callback once per item, in order, until the queue is closed and empty; returns
/// how many items it was called with.
fn process_all(shared: &Shared, handle: &ThreadStateHandle<'_>, callback: &OwnedRef) -> usize {
    let mut processed = 0;
    while let Some(batch) = shared.next_batch() {
        // One attach per batch, not per item: while Python threads submit, the worker gets
        // the GIL only every switch interval, and should use it for everything queued.
        let attached = handle.run(|| {
            for item in batch {
                if !shared.discarding() {
                    // SAFETY: attached (`run`) to the callback's interpreter (the handle's),
                    // where the items were submitted too.
                    unsafe { call(shared, callback, &item) };
                    processed += 1;
                }
                // `item` is dropped here: released at once, outside the queue's lock.
            }
        });
        if attached.is_err() {
            // The interpreter cannot be attached any more (the caller's contract rules that
            // out); the batch was dropped with the closure, its references released where
            // that is sound (see `OwnedRef`).
            break;
        }
    }
    processed
}

/// `callback(item)`, recording the first exception it raises.
///
/// # Safety
/// The thread is attached to the interpreter of the callback and the item.
unsafe fn call(shared: &Shared, callback: &OwnedRef, item: &OwnedRef) {
    // SAFETY: attached (caller); both objects are alive while the worker holds them.
    let result = unsafe { ffi::PyObject_CallOneArg(callback.as_ptr(), item.as_ptr()) };
    if result.is_null() {
        // A later error comes back, and is dropped here, outside the queue's lock.
        drop(shared.record_error(PythonException::fetch()));
    } else {
        // SAFETY: attached (caller); the call's new reference.
        unsafe { ffi::Py_DECREF(result) };
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep using it.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn wait<'a>(
    changed: &Condvar,
    state: MutexGuard<'a, State>,
    slice: Duration,
) -> MutexGuard<'a, State> {
    changed
        .wait_timeout(state, slice)
        .unwrap_or_else(PoisonError::into_inner)
        .0
}
