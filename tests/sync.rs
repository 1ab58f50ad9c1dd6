//! `gilguard::sync`: nothing waits for another thread while holding the GIL that thread
//! needs. Each deadlock scenario runs in a child process with the helpers' time limit: with
//! a wait made attached instead of detached, it hangs (checked by hand when written, see
//! the guide's chapter 8), and the child is killed and the test fails. Also: a panicking or
//! failing initialiser leaves the lock uninitialised, poisoning passes through the locks,
//! and each interpreter gets a value of its own.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};
use std::thread;

use gilguard::sync::{
    CriticalSection, CriticalSection2, GilOnceLock, InterpreterOnceLock, MutexExt, RwLockExt,
    with_critical_section, with_critical_section2,
};
use gilguard::{
    GilError, Interpreter, InterpreterConfig, SubInterpreter, is_attached, with_gil, without_gil,
};

/// Waits until `flag` is set, detached if this thread is attached (so that the thread
/// that sets it can run).
fn wait_for(flag: &AtomicBool) {
    while !flag.load(Ordering::Acquire) {
        without_gil(thread::yield_now);
    }
}

/// How a lock kind is held by one thread and waited for by another.
struct LockKind<L> {
    name: &'static str,
    /// Holds the lock (plainly, or detached-aware when attached) while running `inside`.
    hold: fn(&L, &dyn Fn()),
    /// Takes the lock with the `_detached` method under test, and releases it.
    wait: fn(&L),
}

fn mutex_kind() -> LockKind<Mutex<u32>> {
    LockKind {
        name: "Mutex::lock_detached",
        hold: |lock, inside| {
            let _guard = lock.lock_detached().unwrap();
            inside();
        },
        wait: |lock| *lock.lock_detached().unwrap() += 1,
    }
}

fn writer_waits_kind() -> LockKind<RwLock<u32>> {
    LockKind {
        name: "RwLock::write_detached",
        hold: |lock, inside| {
            let _guard = lock.read_detached().unwrap();
            inside();
        },
        wait: |lock| *lock.write_detached().unwrap() += 1,
    }
}

fn reader_waits_kind() -> LockKind<RwLock<u32>> {
    LockKind {
        name: "RwLock::read_detached",
        hold: |lock, inside| {
            let _guard = lock.write_detached().unwrap();
            inside();
        },
        wait: |lock| {
            let _guard = lock.read_detached().unwrap();
        },
    }
}

/// The lock first, then the GIL: a detached thread takes the lock and then needs the GIL,
/// while an attached thread waits for the lock. Waiting attached, the waiter would keep the
/// GIL the holder needs to finish.
fn lock_then_gil<L: Sync>(lock: &L, kind: &LockKind<L>) {
    lock_then_gil_attached_by(lock, kind, &|body| with_gil(body));
}

/// A C library's callback: attached through its own `PyGILState_Ensure` / `Release` pair,
/// a thread state gilguard did not make and does not own.
fn attached_by_c_library(body: &dyn Fn()) {
    // SAFETY: the runtime is initialized (`common::python`); the pair is balanced on this
    // thread, and `body` leaves the thread attached as it found it.
    let state = unsafe { pyo3_ffi::PyGILState_Ensure() };
    body();
    // SAFETY: pairs with the `PyGILState_Ensure` above, its thread state attached.
    unsafe { pyo3_ffi::PyGILState_Release(state) };
}

/// [`lock_then_gil`] with the waiter attached by `attach`.
fn lock_then_gil_attached_by<L: Sync>(
    lock: &L,
    kind: &LockKind<L>,
    attach: &(dyn Fn(&dyn Fn()) + Sync),
) {
    let locked = AtomicBool::new(false);
    let waiting = AtomicBool::new(false);
    thread::scope(|scope| {
        scope.spawn(|| {
            assert!(!is_attached());
            (kind.hold)(lock, &|| {
                locked.store(true, Ordering::Release);
                // The waiter is attached from the moment it sets `waiting` until it waits.
                wait_for(&waiting);
                with_gil(|| assert!(is_attached()));
            });
        });
        scope.spawn(|| {
            attach(&|| {
                wait_for(&locked);
                waiting.store(true, Ordering::Release);
                (kind.wait)(lock);
                assert!(
                    is_attached(),
                    "{}: the guard is returned attached",
                    kind.name
                );
            });
        });
    });
}

/// The GIL first, then the lock: two attached threads; the holder takes the lock and then
/// releases the GIL for a while (as any Python call may), and needs it back to finish,
/// while the other waits for the lock.
fn gil_then_lock<L: Sync>(lock: &L, kind: &LockKind<L>) {
    let locked = AtomicBool::new(false);
    let waiting = AtomicBool::new(false);
    thread::scope(|scope| {
        scope.spawn(|| {
            with_gil(|| {
                (kind.hold)(lock, &|| {
                    assert!(is_attached());
                    locked.store(true, Ordering::Release);
                    without_gil(|| wait_for(&waiting));
                    assert!(is_attached());
                });
            });
        });
        scope.spawn(|| {
            with_gil(|| {
                wait_for(&locked);
                waiting.store(true, Ordering::Release);
                (kind.wait)(lock);
                assert!(
                    is_attached(),
                    "{}: the guard is returned attached",
                    kind.name
                );
            });
        });
    });
}

#[test]
fn lock_holder_that_needs_the_gil() {
    common::run_child("child_lock_holder_that_needs_the_gil");
}

#[test]
#[ignore = "runs in a child process, started by lock_holder_that_needs_the_gil"]
fn child_lock_holder_that_needs_the_gil() {
    common::python();
    let mutex = Mutex::new(0);
    lock_then_gil(&mutex, &mutex_kind());
    assert_eq!(*mutex.lock().unwrap(), 1);
    let rwlock = RwLock::new(0);
    lock_then_gil(&rwlock, &writer_waits_kind());
    lock_then_gil(&rwlock, &reader_waits_kind());
    assert_eq!(*rwlock.read().unwrap(), 1);
}

#[test]
fn lock_holder_that_needs_the_gil_beside_a_c_library() {
    common::run_child("child_lock_holder_that_needs_the_gil_beside_a_c_library");
}

#[test]
#[ignore = "runs in a child process, started by lock_holder_that_needs_the_gil_beside_a_c_library"]
fn child_lock_holder_that_needs_the_gil_beside_a_c_library() {
    common::python();
    let mutex = Mutex::new(0);
    lock_then_gil_attached_by(&mutex, &mutex_kind(), &attached_by_c_library);
    assert_eq!(*mutex.lock().unwrap(), 1);
    let rwlock = RwLock::new(0);
    lock_then_gil_attached_by(&rwlock, &writer_waits_kind(), &attached_by_c_library);
    lock_then_gil_attached_by(&rwlock, &reader_waits_kind(), &attached_by_c_library);
    assert_eq!(*rwlock.read().unwrap(), 1);
}

#[test]
fn lock_holder_that_releases_the_gil() {
    common::run_child("child_lock_holder_that_releases_the_gil");
}

#[test]
#[ignore = "runs in a child process, started by lock_holder_that_releases_the_gil"]
fn child_lock_holder_that_releases_the_gil() {
    common::python();
    let mutex = Mutex::new(0);
    gil_then_lock(&mutex, &mutex_kind());
    assert_eq!(*mutex.lock().unwrap(), 1);
    let rwlock = RwLock::new(0);
    gil_then_lock(&rwlock, &writer_waits_kind());
    gil_then_lock(&rwlock, &reader_waits_kind());
    assert_eq!(*rwlock.read().unwrap(), 1);
}

#[test]
fn initialiser_that_releases_the_gil() {
    common::run_child("child_initialiser_that_releases_the_gil");
}

#[test]
#[ignore = "runs in a child process, started by initialiser_that_releases_the_gil"]
fn child_initialiser_that_releases_the_gil() {
    common::python();
    static VALUE: GilOnceLock<u32> = GilOnceLock::new();
    let started = AtomicBool::new(false);
    let waiting = AtomicBool::new(false);
    thread::scope(|scope| {
        let first = scope.spawn(|| {
            with_gil(|| {
                *VALUE.get_or_init(|| {
                    assert!(is_attached(), "the initialiser runs attached");
                    started.store(true, Ordering::Release);
                    // Re-attaching needs the GIL, which the other thread holds from setting
                    // `waiting` until it waits.
                    without_gil(|| wait_for(&waiting));
                    1
                })
            })
        });
        let second = scope.spawn(|| {
            with_gil(|| {
                wait_for(&started);
                waiting.store(true, Ordering::Release);
                let value = *VALUE.get_or_init(|| 2);
                assert!(is_attached());
                value
            })
        });
        assert_eq!(first.join().unwrap(), 1);
        assert_eq!(second.join().unwrap(), 1);
    });
}

static FROM_PYTHON: GilOnceLock<u32> = GilOnceLock::new();
static PYTHON_THREAD_ASKED: AtomicBool = AtomicBool::new(false);

/// `get_value()` in Python: `FROM_PYTHON.get_or_init`, from a Python thread.
extern "C" fn get_value(
    _module: *mut pyo3_ffi::PyObject,
    _args: *mut pyo3_ffi::PyObject,
) -> *mut pyo3_ffi::PyObject {
    // Attached from here until `get_or_init` waits: no bytecode runs in between.
    PYTHON_THREAD_ASKED.store(true, Ordering::Release);
    let value = *FROM_PYTHON.get_or_init(|| 2);
    // SAFETY: attached (called by Python, and `get_or_init` re-attaches).
    unsafe { pyo3_ffi::PyLong_FromLong(value.into()) }
}

/// `asked()` in Python: whether the Python thread has called `get_value`.
extern "C" fn asked(
    _module: *mut pyo3_ffi::PyObject,
    _args: *mut pyo3_ffi::PyObject,
) -> *mut pyo3_ffi::PyObject {
    // SAFETY: attached (called by Python).
    unsafe { pyo3_ffi::PyBool_FromLong(PYTHON_THREAD_ASKED.load(Ordering::Acquire).into()) }
}

#[test]
fn initialiser_that_starts_a_python_thread_asking_for_the_value() {
    common::run_child("child_initialiser_that_starts_a_python_thread_asking_for_the_value");
}

#[test]
#[ignore = "runs in a child process, started by \
            initialiser_that_starts_a_python_thread_asking_for_the_value"]
fn child_initialiser_that_starts_a_python_thread_asking_for_the_value() {
    common::python();
    with_gil(|| {
        common::define(c"get_value", get_value);
        common::define(c"asked", asked);
        let value = *FROM_PYTHON.get_or_init(|| {
            // `time.sleep` releases the GIL and needs it back: the Python thread holds it
            // from `asked()` turning true until it waits for this initialiser.
            common::run(
                "import threading, time\n\
                 results = []\n\
                 thread = threading.Thread(target=lambda: results.append(get_value()))\n\
                 thread.start()\n\
                 while not asked():\n    time.sleep(0.001)\n",
            );
            1
        });
        assert_eq!(value, 1);
        common::run("thread.join()");
        assert_eq!(common::eval_str("results"), "[1]");
    });
}

#[test]
fn panicking_initialiser_leaves_the_lock_uninitialised() {
    common::python();
    let lock = GilOnceLock::new();
    with_gil(|| {
        let panicked = catch_unwind(AssertUnwindSafe(|| lock.get_or_init(|| panic!("no value"))));
        assert!(panicked.is_err());
        assert!(is_attached());
        assert_eq!(lock.get(), None);
        assert_eq!(lock.get_or_try_init(|| Err("failed")), Err("failed"));
        assert_eq!(lock.get(), None);
        assert_eq!(lock.get_or_init(|| 3), &3);
    });
}

#[test]
fn a_waiter_retries_after_a_panicking_initialiser() {
    common::run_child("child_a_waiter_retries_after_a_panicking_initialiser");
}

#[test]
#[ignore = "runs in a child process, started by a_waiter_retries_after_a_panicking_initialiser"]
fn child_a_waiter_retries_after_a_panicking_initialiser() {
    common::python();
    let lock = GilOnceLock::new();
    let started = AtomicBool::new(false);
    let waiting = AtomicBool::new(false);
    thread::scope(|scope| {
        let first = scope.spawn(|| {
            with_gil(|| {
                catch_unwind(AssertUnwindSafe(|| {
                    lock.get_or_init(|| {
                        started.store(true, Ordering::Release);
                        without_gil(|| wait_for(&waiting));
                        panic!("the first initialiser fails")
                    })
                }))
                .is_err()
            })
        });
        let second = scope.spawn(|| {
            with_gil(|| {
                wait_for(&started);
                waiting.store(true, Ordering::Release);
                *lock.get_or_init(|| 2)
            })
        });
        assert!(first.join().unwrap(), "the first initialiser panicked");
        assert_eq!(second.join().unwrap(), 2);
    });
    assert_eq!(lock.get(), Some(&2));
}

#[test]
#[should_panic(expected = "would wait for itself")]
fn a_nested_initialisation_on_the_same_thread_panics() {
    let lock = GilOnceLock::new();
    lock.get_or_init(|| *lock.get_or_init(|| 1));
}

#[test]
fn take_and_into_inner() {
    let mut lock = GilOnceLock::from(String::from("value"));
    assert_eq!(lock.take().as_deref(), Some("value"));
    assert_eq!(lock.take(), None);
    lock.get_or_init(|| String::from("again"));
    assert_eq!(lock.into_inner().as_deref(), Some("again"));
}

#[test]
fn poisoning_passes_through() {
    common::python();
    let mutex = Mutex::new(0);
    let rwlock = RwLock::new(0);
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let _guard = mutex.lock();
        panic!("poisons the mutex");
    }));
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let _guard = rwlock.write();
        panic!("poisons the rwlock");
    }));
    assert!(mutex.lock_detached().is_err());
    assert!(rwlock.read_detached().is_err());
    assert!(rwlock.write_detached().is_err());
    with_gil(|| {
        assert!(mutex.lock_detached().is_err());
        assert!(rwlock.read_detached().is_err());
        assert!(rwlock.write_detached().is_err());
        assert!(is_attached());
    });
}

#[test]
fn poisoning_while_waiting_detached_passes_through() {
    common::run_child("child_poisoning_while_waiting_detached_passes_through");
}

#[test]
#[ignore = "runs in a child process, started by poisoning_while_waiting_detached_passes_through"]
fn child_poisoning_while_waiting_detached_passes_through() {
    common::python();
    let mutex = Mutex::new(0);
    let locked = AtomicBool::new(false);
    let waiting = AtomicBool::new(false);
    thread::scope(|scope| {
        let holder = scope.spawn(|| {
            let _guard = mutex.lock().unwrap();
            locked.store(true, Ordering::Release);
            wait_for(&waiting);
            // Needs the GIL while holding the lock, then poisons it.
            with_gil(|| ());
            panic!("poisons the mutex");
        });
        let waiter = scope.spawn(|| {
            with_gil(|| {
                wait_for(&locked);
                waiting.store(true, Ordering::Release);
                let poisoned = mutex.lock_detached().is_err();
                assert!(is_attached());
                poisoned
            })
        });
        assert!(holder.join().is_err());
        assert!(waiter.join().unwrap(), "the waiter sees the poisoning");
    });
}

/// The configuration the crate's tests use: own GIL where CPython has it.
fn parallel_config() -> InterpreterConfig {
    if cfg!(Py_3_12) {
        InterpreterConfig::isolated()
    } else {
        InterpreterConfig::legacy()
    }
}

/// `Interpreter::current()`'s id, as an initialiser.
fn current_id() -> i64 {
    Interpreter::current().unwrap().id()
}

#[test]
fn each_interpreter_gets_its_own_value() {
    common::python();
    let mut lock = InterpreterOnceLock::new();
    thread::scope(|scope| {
        scope.spawn(|| {
            assert_eq!(with_gil(|| *lock.get_or_init(current_id)), 0);
            let first = SubInterpreter::with_config(parallel_config()).unwrap();
            let first_handle = first.thread_state().unwrap();
            assert_eq!(first_handle.run(|| lock.get()).unwrap(), None);
            assert_eq!(
                first_handle.run(|| *lock.get_or_init(current_id)).unwrap(),
                first.id()
            );
            assert_eq!(
                first_handle.run(|| lock.get().copied()).unwrap(),
                Some(first.id())
            );
            assert_eq!(with_gil(|| lock.get().copied()), Some(0));
            drop(first_handle);
            drop(first);
            // A new interpreter may get the ended one's address, but not its value.
            let second = SubInterpreter::with_config(parallel_config()).unwrap();
            let second_handle = second.thread_state().unwrap();
            assert_eq!(second_handle.run(|| lock.get().copied()).unwrap(), None);
            assert_eq!(
                second_handle.run(|| *lock.get_or_init(current_id)).unwrap(),
                second.id()
            );
        });
    });
    assert_eq!(lock.take(Interpreter::main().unwrap()), Some(0));
    assert_eq!(lock.take(Interpreter::main().unwrap()), None);
}

#[test]
fn interpreters_initialise_in_parallel() {
    common::python();
    let lock = InterpreterOnceLock::new();
    let interpreters: Vec<SubInterpreter> = (0..3)
        .map(|_| SubInterpreter::with_config(parallel_config()).unwrap())
        .collect();
    thread::scope(|scope| {
        for interpreter in &interpreters {
            for _ in 0..2 {
                let lock = &lock;
                scope.spawn(move || {
                    let handle = interpreter.thread_state().unwrap();
                    let value = handle.run(|| *lock.get_or_init(current_id)).unwrap();
                    assert_eq!(value, interpreter.id());
                });
            }
        }
    });
}

#[test]
fn take_finds_each_interpreters_value_after_racing_appends() {
    common::python();
    let mut lock = InterpreterOnceLock::new();
    let interpreters: Vec<SubInterpreter> = (0..3)
        .map(|_| SubInterpreter::with_config(parallel_config()).unwrap())
        .collect();
    thread::scope(|scope| {
        for interpreter in &interpreters {
            for _ in 0..2 {
                let lock = &lock;
                scope.spawn(move || {
                    let handle = interpreter.thread_state().unwrap();
                    handle.run(|| *lock.get_or_init(current_id)).unwrap();
                });
            }
        }
    });
    let listed = format!("{lock:?}");
    for interpreter in &interpreters {
        assert!(
            listed.contains(&format!("{}: ", interpreter.id())),
            "{listed}"
        );
    }
    assert_eq!(lock.take(Interpreter::main().unwrap()), None);
    for interpreter in interpreters.iter().rev() {
        let id = interpreter.id();
        assert_eq!(lock.take(interpreter.interpreter()), Some(id));
        assert_eq!(lock.take(interpreter.interpreter()), None);
    }
}

#[test]
fn a_detached_thread_has_no_interpreter_value() {
    common::python();
    let lock = InterpreterOnceLock::new();
    assert_eq!(lock.get(), None);
    assert_eq!(lock.try_get_or_init(|| 1), Err(GilError::NotAttached));
    let panicked = catch_unwind(AssertUnwindSafe(|| lock.get_or_init(|| 1)));
    assert!(panicked.is_err());
}

#[test]
fn critical_sections_need_an_attached_thread() {
    common::python();
    // SAFETY: not attached, so the pointer is never used.
    let refused = unsafe { with_critical_section(std::ptr::null_mut(), || 1) };
    assert_eq!(refused, Err(GilError::NotAttached));
    with_gil(|| {
        // SAFETY: attached; a new list, released below.
        let list = unsafe { pyo3_ffi::PyList_New(0) };
        assert!(!list.is_null());
        // SAFETY: `list` is live until the `Py_DECREF` below, also across the panic.
        unsafe {
            assert_eq!(with_critical_section(list, || 1), Ok(1));
            assert_eq!(with_critical_section2(list, list, || 2), Ok(2));
            let nested = with_critical_section(list, || {
                with_critical_section2(list, list, || without_gil(|| 3))
            });
            assert_eq!(nested, Ok(Ok(3)));
            let panicked = catch_unwind(AssertUnwindSafe(|| {
                with_critical_section(list, || panic!("inside the section"))
            }));
            assert!(panicked.is_err());
            assert_eq!(with_critical_section(list, is_attached), Ok(true));
            pyo3_ffi::Py_DECREF(list);
        }
    });
}

#[test]
fn critical_section_guards_need_an_attached_thread() {
    common::python();
    // SAFETY: not attached, so the pointers are never used.
    unsafe {
        assert_eq!(
            CriticalSection::begin(std::ptr::null_mut()).unwrap_err(),
            GilError::NotAttached
        );
        assert_eq!(
            CriticalSection2::begin(std::ptr::null_mut(), std::ptr::null_mut()).unwrap_err(),
            GilError::NotAttached
        );
    }
    with_gil(|| {
        // SAFETY: attached; two new lists, released below.
        let (a, b) = unsafe { (pyo3_ffi::PyList_New(0), pyo3_ffi::PyList_New(0)) };
        assert!(!a.is_null() && !b.is_null());
        // SAFETY: both lists are live until the `Py_DECREF`s below, after every guard is
        // dropped; the guards are dropped here, attached, newest first.
        unsafe {
            let section = CriticalSection::begin(a).unwrap();
            assert_eq!(pyo3_ffi::PyList_Append(a, pyo3_ffi::Py_None()), 0);
            drop(section);

            // Two nested guards, dropped in reverse order of creation; the outer one moved
            // (into a `Box`) while the inner one is live.
            let outer = Box::new(CriticalSection::begin(a).unwrap());
            let inner = CriticalSection2::begin(a, b).unwrap();
            assert_eq!(pyo3_ffi::PyList_Append(b, pyo3_ffi::Py_None()), 0);
            // A closure form nested inside the guards, with a detached stretch.
            assert_eq!(with_critical_section(b, || without_gil(|| 3)), Ok(3));
            assert!(is_attached());
            drop(inner);
            drop(outer);

            // The same object twice.
            let same = CriticalSection2::begin(a, a).unwrap();
            drop(same);
            // A guard nested inside a closure form, dropped before the closure returns.
            let inside = with_critical_section(a, || {
                let section = CriticalSection::begin(b).unwrap();
                let size = pyo3_ffi::PyList_Size(b);
                drop(section);
                size
            });
            assert_eq!(inside, Ok(1));
            // A panic while a guard is live ends the section on unwinding.
            let panicked = catch_unwind(AssertUnwindSafe(|| {
                let _section = CriticalSection::begin(a).unwrap();
                panic!("inside the section");
            }));
            assert!(panicked.is_err());
            assert_eq!(pyo3_ffi::PyList_Size(a), 1);
            pyo3_ffi::Py_DECREF(a);
            pyo3_ffi::Py_DECREF(b);
        }
    });
}

#[cfg(Py_3_14)]
#[test]
fn critical_section_mutex_guard_needs_an_attached_thread() {
    static MUTEX: pyo3_ffi::PyMutex = pyo3_ffi::PyMutex::new();
    common::python();
    // SAFETY: `MUTEX` lives for good; not attached, so nothing begins.
    let refused = unsafe { CriticalSection::begin_mutex(&MUTEX) };
    assert_eq!(refused.unwrap_err(), GilError::NotAttached);
    with_gil(|| {
        // SAFETY: `MUTEX` lives for good; dropped here, attached, nothing begun meanwhile.
        let section = unsafe { CriticalSection::begin_mutex(&MUTEX) }.unwrap();
        drop(section);
        assert_eq!(
            gilguard::sync::with_critical_section_mutex(&MUTEX, || 4),
            Ok(4)
        );
    });
}
