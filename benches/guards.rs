//! The guards beside the raw `pyo3-ffi` calls they wrap and the `pyo3` equivalents, in one
//! run, so that ratios compare like with like. `benches/report.py` runs it several times
//! and prints the table of `docs/performance.md`.
//!
//! `cargo bench --bench guards`

#![allow(missing_docs)] // `criterion_group!` generates an undocumented public function

use std::hint::black_box;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkGroup, Criterion, criterion_group, criterion_main, measurement::WallTime,
};
use gilguard::{GilGuard, Interpreter, WithGil, WithoutGil, with_gil, without_gil};
use pyo3::Python;
use pyo3_ffi as ffi;

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
}

/// The acquire-and-release pairs that targets 1 and 2 compare, measured in whatever state
/// the caller leaves the thread in: detached or attached.
fn acquire_release(group: &mut BenchmarkGroup<'_, WallTime>) {
    group.bench_function("raw_gilstate_pair", |b| {
        b.iter(|| {
            // SAFETY: initialized (`setup`); the pair is balanced, and `PyGILState_Ensure`
            // accepts a detached thread and an attached one alike.
            unsafe {
                let state = ffi::PyGILState_Ensure();
                ffi::PyGILState_Release(black_box(state));
            }
        })
    });
    group.bench_function("with_gil_guard", |b| {
        b.iter(|| drop(black_box(WithGil::acquire())))
    });
    group.bench_function("with_gil_closure", |b| b.iter(|| with_gil(|| black_box(1))));
}

/// `pyo3`'s equivalent of [`acquire_release`].
fn pyo3_attach(group: &mut BenchmarkGroup<'_, WallTime>) {
    group.bench_function("pyo3_attach", |b| {
        b.iter(|| {
            Python::attach(|py| {
                black_box(py);
            })
        })
    });
}

/// Target 1: acquire + release on a detached thread that has a thread state (the thread
/// that initialized Python).
fn detached(c: &mut Criterion) {
    let mut group = c.benchmark_group("detached_acquire");
    configure(&mut group);
    acquire_release(&mut group);
    pyo3_attach(&mut group);
    group.finish();
}

/// Target 2: nested acquisition on a thread that is already attached.
fn nested(c: &mut Criterion) {
    let mut group = c.benchmark_group("nested_acquire");
    configure(&mut group);
    with_gil(|| {
        acquire_release(&mut group);
        // The floor of the guards' nested path: the one C call that confirms the thread is
        // still attached to the thread state the frame stack remembers (DESIGN §3.4).
        group.bench_function("floor_current_thread_state", |b| {
            // SAFETY: only reads a pointer.
            b.iter(|| black_box(unsafe { ffi::compat::PyThreadState_GetUnchecked() }))
        });
    });
    Python::attach(|_| pyo3_attach(&mut group));
    group.finish();
}

/// Target 3: release and re-acquire around nothing.
fn release(c: &mut Criterion) {
    let mut group = c.benchmark_group("release_restore");
    configure(&mut group);
    with_gil(|| {
        group.bench_function("raw_save_restore", |b| {
            b.iter(|| {
                // SAFETY: attached; the pair is balanced.
                unsafe {
                    let tstate = ffi::PyEval_SaveThread();
                    ffi::PyEval_RestoreThread(black_box(tstate));
                }
            })
        });
        // The floor of the guards' release path: the raw pair plus the one C call that
        // confirms the thread is attached before `PyEval_SaveThread`, which aborts the
        // process otherwise (C code may have detached the thread behind the guards' back).
        group.bench_function("floor_confirmed_save_restore", |b| {
            b.iter(|| {
                // SAFETY: attached (confirmed); the pair is balanced.
                unsafe {
                    if !ffi::compat::PyThreadState_GetUnchecked().is_null() {
                        let tstate = ffi::PyEval_SaveThread();
                        ffi::PyEval_RestoreThread(black_box(tstate));
                    }
                }
            })
        });
        group.bench_function("without_gil_closure", |b| {
            b.iter(|| without_gil(|| black_box(1)))
        });
        group.bench_function("without_gil_guard", |b| {
            b.iter(|| {
                // SAFETY: nothing touches Python while released; dropped at once.
                drop(black_box(unsafe { WithoutGil::new() }))
            })
        });
    });
    Python::attach(|py| {
        group.bench_function("pyo3_detach", |b| b.iter(|| py.detach(|| black_box(1))));
    });
    group.finish();
}

/// Target 4: a `GilGuard` sequence against the same sequence of single guards, from an
/// attached thread: release, acquire (nested in the release), restore, restore.
fn gil_guard(c: &mut Criterion) {
    let mut group = c.benchmark_group("gil_guard_sequence");
    configure(&mut group);
    with_gil(|| {
        group.bench_function("single_guards", |b| {
            b.iter(|| {
                // SAFETY: nothing touches Python while released.
                let released = unsafe { WithoutGil::new() };
                let acquired = WithGil::acquire();
                drop(black_box(acquired));
                drop(black_box(released));
            })
        });
        group.bench_function("gil_guard", |b| {
            b.iter(|| {
                let mut guard = GilGuard::new();
                // SAFETY: nothing touches Python while released.
                let _ = unsafe { guard.release() };
                guard.acquire();
                let _ = guard.restore();
                let _ = guard.restore();
                drop(black_box(guard));
            })
        });
    });
    group.finish();
}

/// A measured loop: runs its step `iterations` times and returns how long that took.
type Work = fn(u64) -> Duration;

/// Runs `work(iterations)` on a thread Python did not create and returns how long it
/// took there: criterion's own thread is the one that initialized Python.
struct NativeThread {
    jobs: Sender<(u64, Work)>,
    results: Receiver<Duration>,
}

impl NativeThread {
    fn new() -> NativeThread {
        let (jobs, incoming) = channel::<(u64, Work)>();
        let (outgoing, results) = channel();
        std::thread::spawn(move || {
            for (iterations, work) in incoming {
                outgoing.send(work(iterations)).unwrap();
            }
        });
        NativeThread { jobs, results }
    }

    fn time(&self, iterations: u64, work: Work) -> Duration {
        self.jobs.send((iterations, work)).unwrap();
        self.results.recv().unwrap()
    }
}

fn timed(iterations: u64, mut step: impl FnMut()) -> Duration {
    let started = Instant::now();
    for _ in 0..iterations {
        step();
    }
    started.elapsed()
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
    // SAFETY: runs on a detached native thread of an initialized runtime (`NativeThread`);
    // the thread state is made here for this thread; each step's `PyEval_RestoreThread` is
    // paired with `PyEval_SaveThread`; at the end it is attached, cleared and deleted while
    // current.
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

/// Benches each case on a fresh native thread of its own, so that no case inherits the
/// thread state another one left behind.
fn bench_each_on_a_native_thread(mut group: BenchmarkGroup<'_, WallTime>, cases: &[(&str, Work)]) {
    for &(name, work) in cases {
        let thread = NativeThread::new();
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| thread.time(iterations, work))
        });
    }
    group.finish();
}

/// Target 5: callbacks on a thread Python did not create, acquiring and releasing each
/// time.
fn native_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("native_thread_callback");
    configure(&mut group);
    let cases: [(&str, Work); 4] = [
        ("raw_gilstate_pair", |iterations| {
            timed(iterations, || {
                // SAFETY: initialized; balanced. Creates and deletes a thread state each time.
                unsafe {
                    let state = ffi::PyGILState_Ensure();
                    ffi::PyGILState_Release(black_box(state));
                }
            })
        }),
        ("raw_reused_thread_state", raw_restore_save_on_kept_state),
        ("with_gil_guard", |iterations| {
            timed(iterations, || drop(black_box(WithGil::acquire())))
        }),
        ("pyo3_attach", |iterations| {
            timed(iterations, || {
                Python::attach(|py| {
                    black_box(py);
                })
            })
        }),
    ];
    bench_each_on_a_native_thread(group, &cases);
}

/// Target 6: attaching a `ThreadStateHandle` against the raw calls on the same kind of
/// thread state, and against creating and destroying a thread state per call.
fn handle(c: &mut Criterion) {
    let mut group = c.benchmark_group("thread_state_handle");
    configure(&mut group);
    let cases: [(&str, Work); 5] = [
        ("raw_restore_save", raw_restore_save_on_kept_state),
        ("floor_confirmed_restore_save", floor_confirmed_restore_save),
        ("handle_attach_guard", |iterations| {
            let main = Interpreter::main().unwrap();
            // SAFETY: the main interpreter outlives the handle.
            let handle = unsafe { main.thread_state() }.unwrap();
            timed(iterations, || {
                drop(black_box(handle.attach().expect("attaches")))
            })
        }),
        ("handle_run_closure", |iterations| {
            let main = Interpreter::main().unwrap();
            // SAFETY: the main interpreter outlives the handle.
            let handle = unsafe { main.thread_state() }.unwrap();
            timed(iterations, || drop(black_box(handle.run(|| 1))))
        }),
        ("raw_create_destroy_per_call", |iterations| {
            timed(iterations, || {
                // SAFETY: a thread state made, attached, cleared and deleted per call.
                unsafe {
                    let tstate = ffi::PyThreadState_New(ffi::PyInterpreterState_Main());
                    ffi::PyEval_RestoreThread(black_box(tstate));
                    ffi::PyThreadState_Clear(tstate);
                    ffi::PyThreadState_DeleteCurrent();
                }
            })
        }),
    ];
    bench_each_on_a_native_thread(group, &cases);
}

fn setup(c: &mut Criterion) {
    gilguard::initialize().expect("Python starts");
    detached(c);
    nested(c);
    release(c);
    gil_guard(c);
    native_thread(c);
    handle(c);
}

criterion_group!(benches, setup);
criterion_main!(benches);
