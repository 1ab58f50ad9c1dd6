//! The cases both timing benches measure: each guard beside the raw `pyo3-ffi` calls it
//! replaces and beside the `pyo3` equivalent, grouped by target of issue 5 (and issue 22's `sync` module). `guards.rs`
//! times them with criterion, one case after another; `paired.rs` interleaves the cases of
//! a group in short blocks, for machines too noisy for the first.
//!
//! Every case is a [`Work`]: it runs its step a given number of times in the state its
//! group needs (detached, attached, on a thread Python did not create) and returns the
//! time the steps took, set-up excluded.

use std::hint::black_box;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use gilguard::sync::{GilOnceLock, MutexExt};
use gilguard::{GilGuard, Interpreter, WithGil, WithoutGil, with_gil, without_gil};
use pyo3::Python;
use pyo3::sync::{MutexExt as _, PyOnceLock};
use pyo3_ffi as ffi;

/// Runs a case's step `iterations` times and returns how long the steps took.
pub type Work = fn(u64) -> Duration;

/// Where a group's cases run.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// On the thread that initialized Python (the bench's main thread), which has a
    /// thread state; each case attaches or not as its group needs.
    MainThread,
    /// Each case on a thread of its own that Python did not create, so that no case
    /// inherits the thread state another one left behind.
    NativeThreads,
}

/// One target's cases: `raw` is the case the ratios are taken against, `pyo3` the `pyo3`
/// equivalent, if there is one.
pub struct Group {
    pub name: &'static str,
    pub place: Place,
    pub raw: &'static str,
    pub pyo3: Option<&'static str>,
    pub cases: Vec<(&'static str, Work)>,
}

mod objects;
#[cfg(Py_3_15)]
mod pep788;

/// Every group, in the order of issue 5's targets; then, on CPython 3.15, PEP 788's ways of
/// attaching a native thread (issue 20).
pub fn groups() -> Vec<Group> {
    #[allow(unused_mut)] // pushed to on 3.15 only
    let mut groups = vec![
        detached_acquire(),
        nested_acquire(),
        nested_acquire_foreign(),
        release_restore(),
        gil_guard_sequence(),
        native_thread_callback(),
        thread_state_handle(),
        once_get(),
        lock_detached(),
        objects::attached(),
        objects::detached(),
    ];
    #[cfg(Py_3_15)]
    groups.push(pep788::group());
    groups
}

/// Starts Python, which every case needs, leaving this thread detached.
pub fn setup() {
    gilguard::initialize().expect("Python starts");
}

/// Runs `step` `iterations` times, keeping its result alive as criterion's `iter` does.
fn timed<T>(iterations: u64, mut step: impl FnMut() -> T) -> Duration {
    let started = Instant::now();
    for _ in 0..iterations {
        black_box(step());
    }
    started.elapsed()
}

/// The raw pair that targets 1 and 2 compare `WithGil` with.
fn raw_gilstate_pair(iterations: u64) -> Duration {
    timed(iterations, || {
        // SAFETY: initialized (`setup`); the pair is balanced, and `PyGILState_Ensure`
        // accepts a detached thread and an attached one alike.
        unsafe {
            let state = ffi::PyGILState_Ensure();
            ffi::PyGILState_Release(black_box(state));
        }
    })
}

fn with_gil_guard(iterations: u64) -> Duration {
    timed(iterations, || drop(black_box(WithGil::acquire())))
}

fn with_gil_closure(iterations: u64) -> Duration {
    timed(iterations, || with_gil(|| black_box(1)))
}

fn pyo3_attach(iterations: u64) -> Duration {
    timed(iterations, || {
        Python::attach(|py| {
            black_box(py);
        })
    })
}

/// Target 1: acquire + release on a detached thread that has a thread state (the thread
/// that initialized Python).
fn detached_acquire() -> Group {
    Group {
        name: "detached_acquire",
        place: Place::MainThread,
        raw: "raw_gilstate_pair",
        pyo3: Some("pyo3_attach"),
        cases: vec![
            ("raw_gilstate_pair", raw_gilstate_pair),
            ("with_gil_guard", with_gil_guard),
            ("with_gil_closure", with_gil_closure),
            ("pyo3_attach", pyo3_attach),
        ],
    }
}

/// Target 2: nested acquisition on a thread that is already attached.
fn nested_acquire() -> Group {
    Group {
        name: "nested_acquire",
        place: Place::MainThread,
        raw: "raw_gilstate_pair",
        pyo3: Some("pyo3_attach"),
        cases: vec![
            ("raw_gilstate_pair", |n| with_gil(|| raw_gilstate_pair(n))),
            // The floor of the guards' nested path: the one C call that confirms the thread
            // is still attached to the thread state the frame stack remembers (docs/guide.md,
            // §2.4 "The stack is a cache, not the truth").
            ("floor_current_thread_state", |n| {
                with_gil(|| {
                    timed(n, || {
                        // SAFETY: only reads a pointer.
                        black_box(unsafe { ffi::compat::PyThreadState_GetUnchecked() });
                    })
                })
            }),
            ("with_gil_guard", |n| with_gil(|| with_gil_guard(n))),
            ("with_gil_closure", |n| with_gil(|| with_gil_closure(n))),
            ("pyo3_attach", |n| Python::attach(|_| pyo3_attach(n))),
        ],
    }
}

/// Nested acquisition on a thread state this crate does not own: a C library's
/// `PyGILState_Ensure` on a thread of its own. The guards' fast path also compares the
/// thread state's id there, since its owner may delete it and a new one may get its
/// address. A group of its own, since each case starts a thread per block: the cases of
/// `nested_acquire` keep their main thread's caches.
fn nested_acquire_foreign() -> Group {
    Group {
        name: "nested_acquire_foreign",
        place: Place::MainThread,
        raw: "raw_gilstate_pair",
        pyo3: Some("pyo3_attach"),
        cases: vec![
            ("raw_gilstate_pair", |n| {
                on_foreign_thread_state(n, raw_gilstate_pair)
            }),
            ("with_gil_guard", |n| {
                on_foreign_thread_state(n, |n| with_gil(|| with_gil_guard(n)))
            }),
            ("with_gil_closure", |n| {
                on_foreign_thread_state(n, |n| with_gil(|| with_gil_closure(n)))
            }),
            ("pyo3_attach", |n| on_foreign_thread_state(n, pyo3_attach)),
        ],
    }
}

/// Runs `work` on a new thread, attached by the foreign owner's `PyGILState_Ensure`.
fn on_foreign_thread_state(iterations: u64, work: Work) -> Duration {
    std::thread::spawn(move || {
        // SAFETY: initialized (`setup`); balanced below, on this thread.
        let state = unsafe { ffi::PyGILState_Ensure() };
        let elapsed = work(iterations);
        // SAFETY: pairs with the ensure above; `work` left no guard behind.
        unsafe { ffi::PyGILState_Release(state) };
        elapsed
    })
    .join()
    .expect("the bench thread")
}

/// Target 3: release and re-acquire around nothing.
fn release_restore() -> Group {
    Group {
        name: "release_restore",
        place: Place::MainThread,
        raw: "raw_save_restore",
        pyo3: Some("pyo3_detach"),
        cases: vec![
            ("raw_save_restore", |n| {
                with_gil(|| {
                    timed(n, || {
                        // SAFETY: attached; the pair is balanced.
                        unsafe {
                            let tstate = ffi::PyEval_SaveThread();
                            ffi::PyEval_RestoreThread(black_box(tstate));
                        }
                    })
                })
            }),
            // The floor of the guards' release path before CPython 3.12: the raw pair plus
            // the one C call that confirms the thread is attached before
            // `PyEval_SaveThread`, which aborts the process otherwise (C code may have
            // detached the thread behind the guards' back).
            ("floor_confirmed_save_restore", |n| {
                with_gil(|| {
                    timed(n, || {
                        // SAFETY: attached (confirmed); the pair is balanced.
                        unsafe {
                            if !ffi::compat::PyThreadState_GetUnchecked().is_null() {
                                let tstate = ffi::PyEval_SaveThread();
                                ffi::PyEval_RestoreThread(black_box(tstate));
                            }
                        }
                    })
                })
            }),
            ("without_gil_closure", |n| {
                with_gil(|| timed(n, || without_gil(|| black_box(1))))
            }),
            ("without_gil_guard", |n| {
                with_gil(|| {
                    timed(n, || {
                        // SAFETY: nothing touches Python while released; dropped at once.
                        drop(black_box(unsafe { WithoutGil::new() }))
                    })
                })
            }),
            ("pyo3_detach", |n| {
                Python::attach(|py| timed(n, || py.detach(|| black_box(1))))
            }),
        ],
    }
}

/// Target 4: a `GilGuard` sequence against the same sequence of single guards, from an
/// attached thread: release, acquire (nested in the release), restore, restore.
fn gil_guard_sequence() -> Group {
    Group {
        name: "gil_guard_sequence",
        place: Place::MainThread,
        raw: "single_guards",
        pyo3: None,
        cases: vec![
            ("single_guards", |n| {
                with_gil(|| {
                    timed(n, || {
                        // SAFETY: nothing touches Python while released.
                        let released = unsafe { WithoutGil::new() };
                        let acquired = WithGil::acquire();
                        drop(black_box(acquired));
                        drop(black_box(released));
                    })
                })
            }),
            ("gil_guard", |n| {
                with_gil(|| {
                    timed(n, || {
                        let mut guard = GilGuard::new();
                        // SAFETY: nothing touches Python while released.
                        let _ = unsafe { guard.release() };
                        guard.acquire();
                        let _ = guard.restore();
                        let _ = guard.restore();
                        drop(black_box(guard));
                    })
                })
            }),
        ],
    }
}

/// The raw calls the native-thread guards are measured against: one thread state created
/// for this thread, attached and detached around each step, deleted at the end.
fn raw_restore_save_on_kept_state(iterations: u64) -> Duration {
    restore_save_on_kept_state(iterations, false)
}

/// The floor of the handle's attach: the raw calls plus the one C call that confirms the
/// thread is detached before `PyEval_RestoreThread`, which would wait forever for the GIL
/// this thread holds otherwise.
fn floor_confirmed_restore_save(iterations: u64) -> Duration {
    restore_save_on_kept_state(iterations, true)
}

fn restore_save_on_kept_state(iterations: u64, confirm: bool) -> Duration {
    // SAFETY: runs on a detached native thread of an initialized runtime
    // (`Place::NativeThreads`); the thread state is made here for this thread; each step's
    // `PyEval_RestoreThread` is paired with `PyEval_SaveThread`; at the end it is attached,
    // cleared and deleted while current.
    unsafe {
        let tstate = ffi::PyThreadState_New(ffi::PyInterpreterState_Main());
        let elapsed = timed(iterations, || {
            if confirm && !ffi::compat::PyThreadState_GetUnchecked().is_null() {
                return;
            }
            ffi::PyEval_RestoreThread(black_box(tstate));
            ffi::PyEval_SaveThread();
        });
        ffi::PyEval_RestoreThread(tstate);
        ffi::PyThreadState_Clear(tstate);
        ffi::PyThreadState_DeleteCurrent();
        elapsed
    }
}

/// Target 5: callbacks on a thread Python did not create, acquiring and releasing each
/// time. `PyGILState_*` and `pyo3` create and delete a thread state on every call.
fn native_thread_callback() -> Group {
    Group {
        name: "native_thread_callback",
        place: Place::NativeThreads,
        raw: "raw_reused_thread_state",
        pyo3: Some("pyo3_attach"),
        cases: vec![
            ("raw_gilstate_pair", raw_gilstate_pair),
            ("raw_reused_thread_state", raw_restore_save_on_kept_state),
            ("with_gil_guard", with_gil_guard),
            ("pyo3_attach", pyo3_attach),
        ],
    }
}

/// Target 6: attaching a `ThreadStateHandle` against the raw calls on the same kind of
/// thread state, and against creating and destroying a thread state per call.
fn thread_state_handle() -> Group {
    Group {
        name: "thread_state_handle",
        place: Place::NativeThreads,
        raw: "raw_restore_save",
        pyo3: None,
        cases: vec![
            ("raw_restore_save", raw_restore_save_on_kept_state),
            ("floor_confirmed_restore_save", floor_confirmed_restore_save),
            ("handle_attach_guard", |n| {
                let main = Interpreter::main().unwrap();
                // SAFETY: the main interpreter outlives the handle.
                let handle = unsafe { main.thread_state() }.unwrap();
                timed(n, || drop(black_box(handle.attach().expect("attaches"))))
            }),
            ("handle_run_closure", |n| {
                let main = Interpreter::main().unwrap();
                // SAFETY: the main interpreter outlives the handle.
                let handle = unsafe { main.thread_state() }.unwrap();
                timed(n, || drop(black_box(handle.run(|| 1))))
            }),
            ("raw_create_destroy_per_call", |n| {
                timed(n, || {
                    // SAFETY: a thread state made, attached, cleared and deleted per call.
                    unsafe {
                        let tstate = ffi::PyThreadState_New(ffi::PyInterpreterState_Main());
                        ffi::PyEval_RestoreThread(black_box(tstate));
                        ffi::PyThreadState_Clear(tstate);
                        ffi::PyThreadState_DeleteCurrent();
                    }
                })
            }),
        ],
    }
}

/// Issue 22: the value of an initialised once-cell, read from an attached thread.
fn once_get() -> Group {
    Group {
        name: "once_get",
        place: Place::MainThread,
        raw: "std_once_lock_get",
        pyo3: Some("pyo3_once_lock_get"),
        cases: vec![
            ("std_once_lock_get", |n| {
                static CELL: OnceLock<u64> = OnceLock::new();
                CELL.get_or_init(|| 1);
                with_gil(|| timed(n, || black_box(&CELL).get().copied()))
            }),
            ("gil_once_lock_get", |n| {
                static CELL: GilOnceLock<u64> = GilOnceLock::new();
                with_gil(|| {
                    CELL.get_or_init(|| 1);
                    timed(n, || black_box(&CELL).get().copied())
                })
            }),
            ("pyo3_once_lock_get", |n| {
                static CELL: PyOnceLock<u64> = PyOnceLock::new();
                Python::attach(|py| {
                    CELL.get_or_init(py, || 1);
                    timed(n, || black_box(&CELL).get(py).copied())
                })
            }),
        ],
    }
}

/// Issue 22: an uncontended `std::sync::Mutex`, locked and unlocked from an attached thread.
fn lock_detached() -> Group {
    Group {
        name: "lock_detached",
        place: Place::MainThread,
        raw: "std_mutex_lock",
        pyo3: Some("pyo3_lock_py_attached"),
        cases: vec![
            ("std_mutex_lock", |n| {
                static MUTEX: Mutex<u64> = Mutex::new(0);
                with_gil(|| timed(n, || drop(black_box(&MUTEX).lock())))
            }),
            ("lock_detached", |n| {
                static MUTEX: Mutex<u64> = Mutex::new(0);
                with_gil(|| timed(n, || drop(black_box(&MUTEX).lock_detached())))
            }),
            ("pyo3_lock_py_attached", |n| {
                static MUTEX: Mutex<u64> = Mutex::new(0);
                Python::attach(|py| timed(n, || drop(black_box(&MUTEX).lock_py_attached(py))))
            }),
        ],
    }
}

/// Runs a case where its group says: on this thread, or on a native thread of its own
/// that lives as long as the runner.
pub struct Runner {
    native: Option<NativeThread>,
    work: Work,
}

/// A thread Python did not create, running the work it is sent.
struct NativeThread {
    jobs: Sender<(u64, Work)>,
    results: Receiver<Duration>,
}

impl Runner {
    pub fn new(place: Place, work: Work) -> Runner {
        let native = (place == Place::NativeThreads).then(|| {
            let (jobs, incoming) = channel::<(u64, Work)>();
            let (outgoing, results) = channel();
            std::thread::spawn(move || {
                for (iterations, work) in incoming {
                    outgoing.send(work(iterations)).unwrap();
                }
            });
            NativeThread { jobs, results }
        });
        Runner { native, work }
    }

    /// Runs the case's step `iterations` times; returns how long the steps took.
    pub fn time(&self, iterations: u64) -> Duration {
        match &self.native {
            Some(thread) => {
                thread.jobs.send((iterations, self.work)).unwrap();
                thread.results.recv().unwrap()
            }
            None => (self.work)(iterations),
        }
    }
}
