//! `fork()` with the crate in use: in the child, everything recorded about thread states
//! other than the forking thread's current one is forgotten, stale handles refuse, and new
//! guards work. Forking from Python (`os.fork()`) and from Rust (`fork()` with
//! `PyOS_BeforeFork` / `PyOS_AfterFork_Child`), each in a child test process.
//!
//! Forking while a sub-interpreter exists is broken in CPython itself (the child hangs on
//! 3.9–3.12 and aborts on 3.13.0 while deleting it), so no sub-interpreter is alive here.

mod common;

use std::cell::RefCell;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gilguard::{GilError, Interpreter, ThreadStateHandle, is_attached, with_gil, without_gil};

thread_local! {
    /// A thread state handle of the forking thread, made before the fork.
    static STALE: RefCell<Option<ThreadStateHandle<'static>>> = const { RefCell::new(None) };
}

/// A native thread that holds a guard, detached, until told to finish; returns once it
/// does hold it.
fn thread_holding_a_guard() -> (mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (finish, finished) = mpsc::channel::<()>();
    let (holding, held) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        with_gil(|| {
            without_gil(move || {
                holding.send(()).unwrap();
                let _ = finished.recv();
            })
        })
    });
    held.recv().unwrap();
    (finish, thread)
}

fn make_stale_handle() {
    let main = Interpreter::main().unwrap();
    // SAFETY: the main interpreter outlives the handle (which the fork makes stale).
    let handle = unsafe { main.thread_state() }.unwrap();
    STALE.with(|stale| *stale.borrow_mut() = Some(handle));
}

/// The checks made in the forked child; returns its exit code.
fn check_child() -> i32 {
    if !is_attached() {
        return 10;
    }
    let refused = STALE.with(|stale| {
        let stale = stale.borrow();
        let handle = stale.as_ref().expect("made before the fork");
        (handle.attach().err(), handle.run(|| ()).err())
    });
    if refused
        != (
            Some(GilError::InterpreterEnded),
            Some(GilError::InterpreterEnded),
        )
    {
        return 11;
    }
    // Dropping it must not touch the deleted thread state.
    STALE.with(|stale| stale.borrow_mut().take());
    // A new native thread attaches normally (joined with the GIL released: it needs it).
    let worked = without_gil(|| {
        std::thread::spawn(|| with_gil(|| common::eval_str("6 * 7")))
            .join()
            .is_ok_and(|answer| answer == "42")
    });
    if !worked {
        return 12;
    }
    0
}

unsafe extern "C" fn check_child_from_python(
    _module: *mut pyo3_ffi::PyObject,
    _args: *mut pyo3_ffi::PyObject,
) -> *mut pyo3_ffi::PyObject {
    let code = without_gil(check_child_detached);
    // SAFETY: attached (called by Python).
    unsafe { pyo3_ffi::PyLong_FromLong(code.into()) }
}

/// `check_child`, from a detached thread, as a native caller would run it.
fn check_child_detached() -> i32 {
    with_gil(check_child)
}

#[test]
fn os_fork_from_python() {
    common::run_child("child_os_fork");
}

#[test]
#[ignore = "runs in a child process, started by os_fork_from_python"]
fn child_os_fork() {
    common::python();
    let (finish, thread) = thread_holding_a_guard();
    make_stale_handle();
    os_fork_and_check_child();
    finish.send(()).unwrap();
    thread.join().unwrap();
}

/// Calls `os.fork()` from Python; the child runs [`check_child`], the parent expects it to
/// exit with 0.
fn os_fork_and_check_child() {
    with_gil(|| {
        common::define(c"check_child", check_child_from_python);
        common::run(
            "import os\n\
             pid = os.fork()\n\
             if pid == 0:\n    os._exit(check_child())\n\
             _, status = os.waitpid(pid, 0)\n\
             child_exit = os.waitstatus_to_exitcode(status)\n",
        );
        assert_eq!(common::eval_str("child_exit"), "0");
    });
}

#[test]
fn os_fork_in_a_runtime_started_by_pyo3() {
    common::run_child("child_os_fork_started_by_pyo3");
}

#[test]
#[ignore = "runs in a child process, started by os_fork_in_a_runtime_started_by_pyo3"]
fn child_os_fork_started_by_pyo3() {
    // The host started Python, and the handle is the first thing of this crate the process
    // uses: making it must register the after-fork callback that makes it inert in the
    // child, where CPython has deleted its thread state.
    pyo3::Python::initialize();
    make_stale_handle();
    os_fork_and_check_child();
}

#[test]
fn fork_from_rust() {
    common::run_child("child_fork_from_rust");
}

#[test]
#[ignore = "runs in a child process, started by fork_from_rust"]
fn child_fork_from_rust() {
    common::python();
    // A stuck wait for the thread below, which does not exist in the child, would show.
    gilguard::set_shutdown_timeout(Duration::from_secs(60));
    let (finish, thread) = thread_holding_a_guard();
    make_stale_handle();
    let pid = with_gil(|| {
        // SAFETY: attached to the main interpreter, as CPython's fork protocol requires;
        // the child calls `PyOS_AfterFork_Child`, the parent `PyOS_AfterFork_Parent`.
        unsafe {
            pyo3_ffi::PyOS_BeforeFork();
            let pid = libc::fork();
            if pid == 0 {
                pyo3_ffi::PyOS_AfterFork_Child();
            } else {
                pyo3_ffi::PyOS_AfterFork_Parent();
            }
            pid
        }
    });
    if pid == 0 {
        let mut code = with_gil(check_child);
        // Shutting the child's runtime down must not wait for the parent's threads.
        let started = Instant::now();
        // SAFETY: initialized, detached; this thread attaches and finalizes the runtime.
        let finalized = unsafe {
            pyo3_ffi::PyGILState_Ensure();
            pyo3_ffi::Py_FinalizeEx()
        };
        if finalized != 0 {
            code = 20;
        } else if started.elapsed() > Duration::from_secs(30) {
            code = 21;
        }
        // SAFETY: ends the forked child at once, without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    let deadline = Instant::now() + Duration::from_secs(45);
    // SAFETY: waits for our own child.
    while unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == 0 {
        if Instant::now() >= deadline {
            // SAFETY: ends our own child, which would otherwise outlive the test.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("the forked child hung");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        libc::WIFEXITED(status),
        "the forked child crashed: {status:#x}"
    );
    assert_eq!(libc::WEXITSTATUS(status), 0);
    finish.send(()).unwrap();
    thread.join().unwrap();
}

/// The forking thread's frames may name a thread state other than the one attached at the
/// fork, which the child loses: here its main thread state, released by `without_gil`,
/// while a `ThreadStateHandle` of the main interpreter is attached. In the child, undoing
/// those frames must touch nothing (re-attaching the lost state would use freed memory),
/// and the thread must end up detached with guards that work again.
#[test]
fn fork_from_rust_while_frames_name_a_thread_state_the_child_loses() {
    common::run_child("child_fork_with_frames_naming_a_lost_state");
}

#[test]
#[ignore = "runs in a child process, started by fork_from_rust_while_frames_name_a_thread_state_the_child_loses"]
fn child_fork_with_frames_naming_a_lost_state() {
    common::python();
    let main = Interpreter::main().unwrap();
    let (pid, attached_after_release) = with_gil(|| {
        let pid = without_gil(move || {
            // SAFETY: the main interpreter outlives the handle.
            let handle = unsafe { main.thread_state() }.unwrap();
            let attached = handle.attach().unwrap();
            // SAFETY: attached to the main interpreter (through the handle), as CPython's
            // fork protocol requires; the child calls `PyOS_AfterFork_Child`, the parent
            // `PyOS_AfterFork_Parent`.
            let pid = unsafe {
                pyo3_ffi::PyOS_BeforeFork();
                let pid = libc::fork();
                if pid == 0 {
                    pyo3_ffi::PyOS_AfterFork_Child();
                } else {
                    pyo3_ffi::PyOS_AfterFork_Parent();
                }
                pid
            };
            drop(attached);
            if pid == 0 {
                // Stale in the child: refuses, and dropping it touches nothing.
                assert_eq!(handle.attach().err(), Some(GilError::InterpreterEnded));
            }
            drop(handle);
            pid
        });
        // In the child, the released frame named the lost main thread state: nothing may
        // have been re-attached. (In the parent it was, as always.)
        (pid, pid == 0 && !common::current_thread_state().is_null())
    });
    if pid == 0 {
        let code = if attached_after_release || is_attached() {
            30
        } else {
            // New guards work, from this thread and from a new one.
            let here = with_gil(|| common::eval_str("6 * 7"));
            let there = std::thread::spawn(|| with_gil(|| common::eval_str("7 * 6")))
                .join()
                .unwrap_or_default();
            if here == "42" && there == "42" && !is_attached() {
                0
            } else {
                31
            }
        };
        // SAFETY: ends the forked child at once, without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    let deadline = Instant::now() + Duration::from_secs(45);
    // SAFETY: waits for our own child.
    while unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == 0 {
        if Instant::now() >= deadline {
            // SAFETY: ends our own child, which would otherwise outlive the test.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("the forked child hung");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        libc::WIFEXITED(status),
        "the forked child crashed: {status:#x}"
    );
    assert_eq!(libc::WEXITSTATUS(status), 0);
}

/// The child of a fork from Rust, while a native thread of the parent holds a guard,
/// finalizes at once, before anything of the crate runs in it: whatever that thread held
/// (on CPython 3.15 a PEP 788 interpreter guard, which the child's interpreter still counts)
/// must not keep the child's finalization waiting.
#[test]
fn fork_from_rust_then_finalize_at_once() {
    common::run_child("child_fork_then_finalize");
}

#[test]
#[ignore = "runs in a child process, started by fork_from_rust_then_finalize_at_once"]
fn child_fork_then_finalize() {
    common::python();
    let (finish, thread) = thread_holding_a_guard();
    let pid = with_gil(|| {
        // SAFETY: attached to the main interpreter, as CPython's fork protocol requires;
        // the child calls `PyOS_AfterFork_Child`, the parent `PyOS_AfterFork_Parent`.
        unsafe {
            pyo3_ffi::PyOS_BeforeFork();
            let pid = libc::fork();
            if pid == 0 {
                pyo3_ffi::PyOS_AfterFork_Child();
            } else {
                pyo3_ffi::PyOS_AfterFork_Parent();
            }
            pid
        }
    });
    if pid == 0 {
        // SAFETY: initialized, detached; this thread attaches and finalizes the runtime,
        // then ends the forked child at once, without running the parent's destructors.
        unsafe {
            pyo3_ffi::PyGILState_Ensure();
            let code = if pyo3_ffi::Py_FinalizeEx() == 0 {
                0
            } else {
                40
            };
            libc::_exit(code);
        }
    }
    let mut status = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    // SAFETY: waits for our own child.
    while unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == 0 {
        if Instant::now() >= deadline {
            // SAFETY: ends our own child, which would otherwise outlive the test.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("the forked child hung");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        libc::WIFEXITED(status),
        "the forked child crashed: {status:#x}"
    );
    assert_eq!(libc::WEXITSTATUS(status), 0);
    finish.send(()).unwrap();
    thread.join().unwrap();
}
