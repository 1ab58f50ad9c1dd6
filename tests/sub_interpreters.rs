//! Sub-interpreters: creation leaves the caller as it was, globals are isolated, each
//! thread reuses one thread state per interpreter, switching goes through the frame stack,
//! and teardown is clean or refused, never fatal.

mod common;

use common::Attachment;
use gilguard::{
    GilError, GilGuard, Interpreter, InterpreterConfig, SubInterpreter, ThreadStateHandle, WithGil,
    WithoutGil, is_attached, with_gil, without_gil,
};

/// The configuration the crate's tests use: own GIL where CPython has it.
fn parallel_config() -> InterpreterConfig {
    if cfg!(Py_3_12) {
        InterpreterConfig::isolated()
    } else {
        InterpreterConfig::legacy()
    }
}

#[test]
fn creating_leaves_the_caller_as_it_was() {
    common::python();
    std::thread::spawn(|| {
        let detached = SubInterpreter::with_config(parallel_config()).unwrap();
        assert_eq!(common::attachment(), Attachment::Detached);
        with_gil(|| {
            let before = common::current_thread_state();
            let _in_main = SubInterpreter::new().unwrap();
            assert_eq!(common::current_thread_state(), before);
            assert_eq!(common::attachment(), Attachment::Main);
        });
        let handle = detached.thread_state().unwrap();
        handle
            .run(|| {
                let _in_sub = SubInterpreter::new().unwrap();
                assert_eq!(common::attachment(), Attachment::Sub(detached.id()));
            })
            .unwrap();
        assert_eq!(common::attachment(), Attachment::Detached);
    })
    .join()
    .unwrap();
}

#[test]
fn globals_are_isolated() {
    common::python();
    std::thread::spawn(|| {
        let first = SubInterpreter::with_config(parallel_config()).unwrap();
        let second = SubInterpreter::with_config(parallel_config()).unwrap();
        assert_ne!(first.id(), second.id());
        let in_first = first.thread_state().unwrap();
        let in_second = second.thread_state().unwrap();
        in_first.run(|| common::run("marker = 'first'")).unwrap();
        in_second
            .run(|| assert_eq!(common::eval_str("globals().get('marker')"), "None"))
            .unwrap();
        with_gil(|| assert_eq!(common::eval_str("globals().get('marker')"), "None"));
        in_first
            .run(|| assert_eq!(common::eval_str("marker"), "first"))
            .unwrap();
    })
    .join()
    .unwrap();
}

#[test]
fn each_thread_reuses_one_thread_state_per_interpreter() {
    common::python();
    let interpreter = SubInterpreter::with_config(parallel_config()).unwrap();
    std::thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(|| {
                let handle = interpreter.thread_state().unwrap();
                let first = handle
                    .run(|| common::current_thread_state() as usize)
                    .unwrap();
                for _ in 0..20 {
                    let again = handle
                        .run(|| common::current_thread_state() as usize)
                        .unwrap();
                    assert_eq!(again, first);
                }
                assert_eq!(
                    ThreadStateHandle::new(&interpreter).unwrap_err(),
                    GilError::ThreadStateExists
                );
            });
        }
    });
    // Every handle deleted its thread state: only the interpreter's first one is left.
    let handle = interpreter.thread_state().unwrap();
    assert_eq!(handle.run(common::thread_states_here).unwrap(), 2);
}

#[test]
fn with_gil_never_lands_in_a_sub_interpreter() {
    common::python();
    let interpreter = SubInterpreter::new().unwrap();
    // A fresh thread whose first thread state, made by foreign code, belongs to the
    // sub-interpreter: CPython binds it to the thread's `PyGILState` slot, so
    // `PyGILState_Ensure` would land there.
    let sub = interpreter.interpreter().id();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            // SAFETY: the interpreter is alive (borrowed above); making a thread state needs
            // no attached one. Deleted below.
            let foreign = unsafe {
                let mut interp = pyo3_ffi::PyInterpreterState_Head();
                while pyo3_ffi::PyInterpreterState_GetID(interp) != sub {
                    interp = pyo3_ffi::PyInterpreterState_Next(interp);
                }
                pyo3_ffi::PyThreadState_New(interp)
            };
            // SAFETY: reads this thread's `PyGILState` slot, and the interpreter of the
            // thread state bound there, which is live (made just above).
            let bound_to_sub = unsafe {
                let bound = pyo3_ffi::PyGILState_GetThisThreadState();
                !bound.is_null()
                    && pyo3_ffi::PyThreadState_GetInterpreter(bound)
                        != pyo3_ffi::PyInterpreterState_Main()
            };
            assert!(bound_to_sub, "the quirk this test is about did not happen");
            with_gil(|| assert_eq!(common::attachment(), Attachment::Main));
            {
                let _gil = WithGil::acquire();
                assert_eq!(common::attachment(), Attachment::Main);
                common::run("import sys; main_marker = sys.version");
            }
            // SAFETY: the foreign thread state is this thread's, detached, of a live
            // interpreter: attached, cleared and deleted as its maker would.
            unsafe {
                pyo3_ffi::PyEval_RestoreThread(foreign);
                pyo3_ffi::PyThreadState_Clear(foreign);
                pyo3_ffi::PyThreadState_DeleteCurrent();
            }
        });
    });
    with_gil(|| assert_eq!(common::eval_str("main_marker[0]"), "3"));
}

/// The thread that started the runtime keeps its thread state (and so its
/// `threading.local` data) after using a sub-interpreter, although CPython 3.12+ moves its
/// `PyGILState` binding to the last thread state it attached.
#[test]
fn the_initializing_thread_keeps_its_thread_state() {
    common::run_child("child_initializing_thread_state");
}

#[test]
#[ignore = "runs in a child process, started by the_initializing_thread_keeps_its_thread_state"]
fn child_initializing_thread_state() {
    common::python();
    let before = with_gil(|| {
        common::run("import threading\nlocal = threading.local()\nlocal.mark = 'kept'\n");
        common::current_thread_state() as usize
    });
    let interpreter = SubInterpreter::new().unwrap();
    interpreter.thread_state().unwrap().run(|| ()).unwrap();
    with_gil(|| {
        assert_eq!(common::current_thread_state() as usize, before);
        assert_eq!(common::eval_str("getattr(local, 'mark', None)"), "kept");
    });
}

#[test]
fn attachment_queries_stay_exact_after_sub_interpreters_exist() {
    common::python();
    let _interpreter = SubInterpreter::new().unwrap();
    std::thread::spawn(|| {
        // `PyGILState_Check` now answers 1 for every thread, attached or not.
        // SAFETY: callable from any thread.
        assert_eq!(unsafe { pyo3_ffi::PyGILState_Check() }, 1);
        assert!(!is_attached());
        let mut guard = GilGuard::new();
        assert!(!guard.owns_gil());
        guard.acquire();
        assert!(guard.owns_gil() && is_attached());
        // SAFETY: nothing touches Python while released.
        unsafe { guard.release() }.unwrap();
        assert!(!guard.owns_gil() && !is_attached());
        drop(guard);
        assert!(!is_attached());
    })
    .join()
    .unwrap();
}

#[test]
fn closures_switch_interpreters_and_switch_back() {
    common::python();
    let interpreter = SubInterpreter::new().unwrap();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let handle = interpreter.thread_state().unwrap();
            let sub = Attachment::Sub(interpreter.id());
            with_gil(|| {
                handle
                    .run(|| {
                        assert_eq!(common::attachment(), sub);
                        with_gil(|| assert_eq!(common::attachment(), Attachment::Main));
                        assert_eq!(common::attachment(), sub);
                        without_gil(|| assert_eq!(common::attachment(), Attachment::Detached));
                        assert_eq!(common::attachment(), sub);
                    })
                    .unwrap();
                assert_eq!(common::attachment(), Attachment::Main);
            });
            assert_eq!(common::attachment(), Attachment::Detached);
        });
    });
}

/// Guards that could be leaked refuse to suspend another interpreter's thread state.
#[test]
fn guards_refuse_to_switch_interpreters() {
    common::python();
    let interpreter = SubInterpreter::new().unwrap();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let handle = interpreter.thread_state().unwrap();
            with_gil(|| {
                assert_eq!(handle.attach().unwrap_err(), GilError::AttachedElsewhere);
            });
            let _attached = handle.attach().unwrap();
            assert_eq!(
                WithGil::try_acquire().unwrap_err(),
                GilError::AttachedElsewhere
            );
            let mut guard = GilGuard::new();
            assert_eq!(guard.try_acquire(), Err(GilError::AttachedElsewhere));
            let panic = std::panic::catch_unwind(|| drop(WithGil::acquire())).unwrap_err();
            assert!(
                panic
                    .downcast_ref::<String>()
                    .unwrap()
                    .contains("closure form")
            );
            // Nested attach of the same handle is fine.
            let _again = handle.attach().unwrap();
            assert!(handle.is_attached());
        });
    });
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    WithGil,
    WithoutGil,
    Attach,
    AttachSuspending,
}

/// A guard of any kind, held to be dropped at a chosen moment.
#[expect(dead_code, reason = "held for their `Drop`, never read")]
enum Held<'h> {
    WithGil(WithGil),
    WithoutGil(WithoutGil),
    Attach(gilguard::AttachGuard<'h>),
}

/// Every sequence of 2 to 4 guards mixing both interpreters, dropped in every order: the
/// thread is always where the newest live guard put it.
#[test]
fn mixed_interpreter_guards_every_drop_order() {
    common::python();
    let interpreter = SubInterpreter::new().unwrap();
    let sub = Attachment::Sub(interpreter.id());
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let handle = interpreter.thread_state().unwrap();
            let kinds = [
                Kind::WithGil,
                Kind::WithoutGil,
                Kind::Attach,
                Kind::AttachSuspending,
            ];
            let mut runs = 0;
            for len in 2..=4 {
                let sequences = (0..len).fold(vec![vec![]], |acc: Vec<Vec<Kind>>, _| {
                    acc.into_iter()
                        .flat_map(|prefix| {
                            kinds.iter().map(move |kind| {
                                let mut next = prefix.clone();
                                next.push(*kind);
                                next
                            })
                        })
                        .collect()
                });
                for sequence in sequences {
                    for order in common::permutations(len) {
                        run_sequence(&handle, sub, &sequence, &order);
                        runs += 1;
                    }
                }
            }
            assert_eq!(runs, 16 * 2 + 64 * 6 + 256 * 24);
        });
    });
}

fn run_sequence<'h>(
    handle: &'h ThreadStateHandle<'_>,
    sub: Attachment,
    kinds: &[Kind],
    order: &[usize],
) {
    let mut held: Vec<Option<Held<'h>>> = Vec::new();
    let mut states: Vec<Option<Attachment>> = Vec::new();
    let expected = |states: &[Option<Attachment>]| {
        states
            .iter()
            .rev()
            .flatten()
            .next()
            .copied()
            .unwrap_or(Attachment::Detached)
    };
    for &kind in kinds {
        let now = expected(&states);
        let (guard, state) = match kind {
            Kind::WithGil => match WithGil::try_acquire() {
                Ok(guard) => (Some(Held::WithGil(guard)), Some(Attachment::Main)),
                Err(error) => {
                    assert_eq!((error, now), (GilError::AttachedElsewhere, sub));
                    (None, None)
                }
            },
            // SAFETY: nothing touches Python objects in this test.
            Kind::WithoutGil => match unsafe { WithoutGil::new() } {
                Ok(guard) => (Some(Held::WithoutGil(guard)), Some(Attachment::Detached)),
                Err(error) => {
                    assert_eq!((error, now), (GilError::NotAttached, Attachment::Detached));
                    (None, None)
                }
            },
            Kind::Attach => match handle.attach() {
                Ok(guard) => (Some(Held::Attach(guard)), Some(sub)),
                Err(error) => {
                    assert_eq!(
                        (error, now),
                        (GilError::AttachedElsewhere, Attachment::Main)
                    );
                    (None, None)
                }
            },
            // SAFETY: as above.
            Kind::AttachSuspending => match unsafe { handle.attach_suspending() } {
                Ok(guard) => (Some(Held::Attach(guard)), Some(sub)),
                Err(error) => panic!("{error}"),
            },
        };
        held.push(guard);
        states.push(state);
        assert_eq!(
            common::attachment(),
            expected(&states),
            "{kinds:?} while creating"
        );
    }
    for &index in order {
        drop(held[index].take());
        states[index] = None;
        assert_eq!(
            common::attachment(),
            expected(&states),
            "{kinds:?} order {order:?}"
        );
    }
}

#[test]
fn ending_is_refused_while_in_use_and_clean_after() {
    common::python();
    let mut interpreter = SubInterpreter::with_config(parallel_config()).unwrap();
    std::thread::scope(|scope| {
        scope.spawn(|| std::mem::forget(interpreter.thread_state().unwrap()));
    });
    assert_eq!(interpreter.end(), Err(GilError::InterpreterInUse));
    // Still usable after the refusal.
    let handle = interpreter.thread_state().unwrap();
    handle.run(|| common::run("still = 'alive'")).unwrap();
    drop(handle);
    std::mem::forget(interpreter); // it can never be ended: the leaked handle is in it

    let mut clean = SubInterpreter::with_config(parallel_config()).unwrap();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                let handle = clean.thread_state().unwrap();
                handle
                    .run(|| common::run("import threading; x = 1"))
                    .unwrap();
            });
        }
    });
    assert_eq!(clean.end(), Ok(()));
    assert_eq!(clean.end(), Err(GilError::InterpreterEnded));
    assert_eq!(
        clean.thread_state().unwrap_err(),
        GilError::InterpreterEnded
    );
    assert!(!is_attached());
}

/// A handle dropped while code outside the crate has its thread state attached (here raw
/// `PyEval_RestoreThread`, as a C library that learned the pointer would) leaves it alone:
/// deleting it would pull the thread state out from under that code.
#[test]
fn dropping_a_handle_whose_state_foreign_code_attached_leaves_it_alone() {
    common::python();
    let mut interpreter = SubInterpreter::new().unwrap();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let handle = interpreter.thread_state().unwrap();
            let handles = handle
                .run(|| common::current_thread_state() as usize)
                .unwrap();
            // SAFETY: the thread is detached; foreign code that learned the handle's thread
            // state attaches it.
            unsafe { pyo3_ffi::PyEval_RestoreThread(handles as *mut pyo3_ffi::PyThreadState) };
            assert!(handle.is_attached(), "the precondition of this test");
            let tstate = common::current_thread_state();
            drop(handle);
            assert_eq!(common::current_thread_state(), tstate);
            common::run("still = 'usable'");
            // SAFETY: attached to `tstate`; detaching leaves it in place, as the foreign code
            // would have to.
            unsafe { pyo3_ffi::PyEval_SaveThread() };
        });
    });
    // The interpreter still counts that thread state, so it cannot be ended.
    assert_eq!(interpreter.end(), Err(GilError::InterpreterInUse));
    std::mem::forget(interpreter);
}

/// An interpreter's id stays readable after the interpreter is gone.
#[test]
fn ids_outlive_their_interpreters() {
    common::python();
    let mut interpreter = SubInterpreter::new().unwrap();
    let id = interpreter.id();
    let named = interpreter.interpreter();
    assert_eq!(named.id(), id);
    interpreter.end().unwrap();
    assert_eq!(interpreter.id(), id);
    drop(interpreter);
    assert_eq!(named.id(), id);
}

/// Python threads started in the interpreter are joined by `end`, as
/// `Py_EndInterpreter` would; a daemon thread still running makes it refuse.
#[test]
fn ending_joins_python_threads_and_refuses_daemon_threads() {
    common::run_child("child_ending_with_python_threads");
}

#[test]
#[ignore = "runs in a child process, started by ending_joins_python_threads_and_refuses_daemon_threads"]
fn child_ending_with_python_threads() {
    common::python();
    let mut joined = SubInterpreter::new().unwrap();
    joined
        .thread_state()
        .unwrap()
        .run(|| {
            common::run(
                "import threading, time\n\
                 threading.Thread(target=time.sleep, args=(0.2,)).start()\n",
            )
        })
        .unwrap();
    assert_eq!(joined.end(), Ok(()));

    let mut busy = SubInterpreter::new().unwrap();
    busy.thread_state()
        .unwrap()
        .run(|| {
            common::run(
                "import threading, time\n\
                 threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()\n",
            )
        })
        .unwrap();
    assert_eq!(busy.end(), Err(GilError::InterpreterInUse));
    // The process exits without finalizing, so the running interpreter is not a problem.
    std::mem::forget(busy);
}

/// The extension-module pattern: code running in an interpreter names it, and a native
/// thread attaches to that interpreter (not the main one) to call back.
#[test]
fn native_thread_attaches_to_the_interpreter_that_named_it() {
    common::python();
    let mut interpreter = SubInterpreter::new().unwrap();
    let id = interpreter.id();
    let here = {
        let handle = interpreter.thread_state().unwrap();
        handle.run(Interpreter::current).unwrap().unwrap()
    };
    assert_eq!(here, interpreter.interpreter());
    assert!(!here.is_main());
    std::thread::scope(|scope| {
        scope.spawn(|| {
            // SAFETY: `interpreter` is ended only after this scope, when the handle is gone.
            let handle = unsafe { here.thread_state() }.unwrap();
            handle
                .run(|| assert_eq!(common::attachment(), Attachment::Sub(id)))
                .unwrap();
        });
    });
    // A handle the interpreter does not count still blocks the end, with an error.
    // SAFETY: the interpreter is not ended while the handle exists: `end` refuses.
    let handle = unsafe { here.thread_state() }.unwrap();
    assert_eq!(interpreter.end(), Err(GilError::InterpreterInUse));
    drop(handle);
    assert_eq!(interpreter.end(), Ok(()));
}

/// What `stop_worker` tells the worker thread, and how it hears back.
type StopWorker = (std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>);

static STOP_WORKER: std::sync::Mutex<Option<StopWorker>> = std::sync::Mutex::new(None);

/// An `atexit` callback: tells the worker to drop its thread state, and waits for it with
/// the interpreter's GIL released (the worker needs it to delete its thread state).
unsafe extern "C" fn stop_worker(
    _module: *mut pyo3_ffi::PyObject,
    _args: *mut pyo3_ffi::PyObject,
) -> *mut pyo3_ffi::PyObject {
    let (stop, stopped) = STOP_WORKER.lock().unwrap().take().expect("set by the test");
    stop.send(()).unwrap();
    without_gil(move || stopped.recv().unwrap());
    common::none()
}

/// Extension modules stop their native threads from `atexit` callbacks; `end` runs them
/// before it checks for thread states left, as `Py_EndInterpreter` does.
#[test]
fn ending_runs_atexit_callbacks_before_checking_for_thread_states() {
    common::python();
    let mut interpreter = SubInterpreter::new().unwrap();
    let here = interpreter.interpreter();
    let (stop, stopping) = std::sync::mpsc::channel();
    let (stopped, done) = std::sync::mpsc::channel();
    *STOP_WORKER.lock().unwrap() = Some((stop, done));
    let (started, running) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        // SAFETY: the interpreter is ended only after this handle is dropped: the atexit
        // callback waits for that.
        let handle = unsafe { here.thread_state() }.unwrap();
        handle.run(|| ()).unwrap();
        started.send(()).unwrap();
        stopping.recv().unwrap();
        drop(handle);
        stopped.send(()).unwrap();
    });
    running.recv().unwrap();
    interpreter
        .thread_state()
        .unwrap()
        .run(|| {
            common::define(c"stop_worker", stop_worker);
            common::run("import atexit\natexit.register(stop_worker)\n");
        })
        .unwrap();
    assert_eq!(interpreter.end(), Ok(()));
    worker.join().unwrap();
}

#[test]
fn invalid_configurations_are_refused_before_cpython_sees_them() {
    common::python();
    let own_gil_shared_allocator = InterpreterConfig::isolated().use_main_obmalloc(true);
    assert!(matches!(
        SubInterpreter::with_config(own_gil_shared_allocator),
        Err(GilError::InvalidConfig(_))
    ));
    let own_allocator_single_phase = InterpreterConfig::legacy()
        .use_main_obmalloc(false)
        .check_multi_interp_extensions(false);
    assert!(matches!(
        SubInterpreter::with_config(own_allocator_single_phase),
        Err(GilError::InvalidConfig(_))
    ));
    let isolated = SubInterpreter::with_config(InterpreterConfig::isolated());
    if cfg!(Py_3_12) {
        assert!(isolated.unwrap().has_own_gil());
    } else {
        assert!(matches!(isolated, Err(GilError::Unsupported(_))));
    }
}

/// Interpreters with their own GIL (PEP 684) exist from CPython 3.12 on.
#[cfg(Py_3_12)]
mod own_gil {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    static SECOND_RAN: AtomicBool = AtomicBool::new(false);

    /// Spins, holding the interpreter's GIL (Rust code never lets CPython switch threads),
    /// until the other interpreter's thread has run Python, or gives up after 30 s.
    unsafe extern "C" fn wait_for_second(
        _module: *mut pyo3_ffi::PyObject,
        _args: *mut pyo3_ffi::PyObject,
    ) -> *mut pyo3_ffi::PyObject {
        let started = Instant::now();
        while !SECOND_RAN.load(Ordering::Acquire) && started.elapsed() < Duration::from_secs(30) {
            std::hint::spin_loop();
        }
        // SAFETY: called by Python, so attached.
        unsafe { pyo3_ffi::PyBool_FromLong(SECOND_RAN.load(Ordering::Acquire).into()) }
    }

    unsafe extern "C" fn second_ran(
        _module: *mut pyo3_ffi::PyObject,
        _args: *mut pyo3_ffi::PyObject,
    ) -> *mut pyo3_ffi::PyObject {
        SECOND_RAN.store(true, Ordering::Release);
        common::none()
    }

    /// With their own GILs, two interpreters run Python at the same time: the first holds its
    /// GIL while the second runs Python code. With one shared GIL this could never finish.
    #[test]
    fn own_gil_interpreters_run_python_at_the_same_time() {
        common::python();
        let first = SubInterpreter::with_config(InterpreterConfig::isolated()).unwrap();
        let second = SubInterpreter::with_config(InterpreterConfig::isolated()).unwrap();
        let (holding, held) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| {
                let handle = first.thread_state().unwrap();
                handle
                    .run(|| {
                        common::define(c"wait_for_second", wait_for_second);
                        holding.send(()).unwrap();
                        common::eval_str("wait_for_second()")
                    })
                    .unwrap()
            });
            held.recv().unwrap();
            // The waiter holds (or is about to hold) the first interpreter's GIL for good.
            let handle = second.thread_state().unwrap();
            handle
                .run(|| {
                    common::define(c"second_ran", second_ran);
                    common::run("total = sum(range(1000))\nsecond_ran()");
                })
                .unwrap();
            assert_eq!(waiter.join().unwrap(), "True");
        });
    }
}

/// Set by the `atexit` callback of the interpreter below.
static EXIT_CALLBACK_RAN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

unsafe extern "C" fn mark_exit_callback(
    _module: *mut pyo3_ffi::PyObject,
    _args: *mut pyo3_ffi::PyObject,
) -> *mut pyo3_ffi::PyObject {
    EXIT_CALLBACK_RAN.store(true, std::sync::atomic::Ordering::SeqCst);
    common::none()
}

/// A handle of the `SubInterpreter` leaked on another thread is counted: `end` refuses at
/// once, before it runs anything in the interpreter. (CPython's list of thread states would
/// also show the leaked one, but only after the interpreter's threads were joined and its
/// `atexit` callbacks run, which cannot be undone.)
#[test]
fn ending_with_a_leaked_handle_is_refused_before_the_interpreter_winds_down() {
    common::python();
    let mut interpreter = SubInterpreter::new().unwrap();
    let handle = interpreter.thread_state().unwrap();
    handle
        .run(|| {
            common::define(c"mark_exit_callback", mark_exit_callback);
            common::run("import atexit\natexit.register(mark_exit_callback)");
        })
        .unwrap();
    drop(handle);
    std::thread::scope(|scope| {
        scope.spawn(|| std::mem::forget(interpreter.thread_state().unwrap()));
    });
    assert_eq!(interpreter.end(), Err(GilError::InterpreterInUse));
    assert!(
        !EXIT_CALLBACK_RAN.load(std::sync::atomic::Ordering::SeqCst),
        "the interpreter's atexit callbacks ran although its end was refused"
    );
    std::mem::forget(interpreter); // it can never be ended: the leaked handle is in it
}

/// The interpreter a C library's `PyGILState_Ensure` attaches on this thread, by id.
fn gilstate_interpreter() -> i64 {
    // SAFETY: a balanced pair on a detached thread; the thread state it attaches is live.
    unsafe {
        let state = pyo3_ffi::PyGILState_Ensure();
        let id = pyo3_ffi::PyInterpreterState_GetID(pyo3_ffi::PyThreadState_GetInterpreter(
            pyo3_ffi::PyThreadState_Get(),
        ));
        pyo3_ffi::PyGILState_Release(state);
        id
    }
}

/// When a region of a sub-interpreter ends, `PyGILState` names a main-interpreter thread
/// state again, as a C library's `PyGILState_Ensure` expects (CPython binds the first thread
/// state made on a thread before 3.12, the last one attached from 3.12): after `run`, an
/// attach guard, `run` from the main interpreter, and the handle's deletion.
#[test]
fn a_sub_interpreter_region_leaves_pygilstate_on_the_main_interpreter() {
    common::python();
    let interpreter = &SubInterpreter::with_config(parallel_config()).unwrap();
    std::thread::scope(|scope| {
        for main_first in [false, true] {
            scope.spawn(move || {
                if main_first {
                    with_gil(|| ());
                }
                let handle = interpreter.thread_state().unwrap();
                handle.run(|| ()).unwrap();
                assert_eq!(gilstate_interpreter(), 0, "after run");
                drop(handle.attach().unwrap());
                assert_eq!(gilstate_interpreter(), 0, "after an attach guard");
                with_gil(|| handle.run(|| ()).unwrap());
                assert_eq!(
                    gilstate_interpreter(),
                    0,
                    "after run from the main interpreter"
                );
                drop(handle);
                assert_eq!(gilstate_interpreter(), 0, "after the handle was deleted");
                assert!(!is_attached());
            });
        }
    });
}
