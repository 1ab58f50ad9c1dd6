//! Safe gilguard code beside the other owners of a thread's state (issue 19): CPython's
//! `threading` threads (which delete their thread state when they end), C libraries' balanced
//! `PyGILState_Ensure` / `PyGILState_Release` pairs, thread-local destructors, `__del__`
//! methods that finalization runs, and a host that calls `Py_FinalizeEx` itself. Each
//! reproduced case of the issue (F1 to F6) runs here with the real foreign owner, in a child
//! process (on a crate without the fixes, many of them abort or crash). What must hold:
//!
//! * no `Fatal Python error`, no signal, no Rust abort: every child exits 0 and passes;
//! * a thread state whose owner deleted it is never passed to CPython again, and does not
//!   fool the crate when its address is reused (F1);
//! * a closure form (`with_gil`, `without_gil`, `ThreadStateHandle::run`) hands its caller
//!   back the attachment the caller had, whatever foreign code or a leaked guard did inside
//!   it, and the thread keeps working afterwards (F2, F6);
//! * sub-interpreters and handles still alive when the runtime finalizes (leaked, in a
//!   `static`, on a thread that is never joined, or plain locals) make `Py_FinalizeEx`
//!   neither fail nor abort, and dropping them afterwards does nothing (F3);
//! * creating a sub-interpreter while the runtime finalizes is refused with
//!   `GilError::Finalizing` (F4);
//! * a handle made from a thread-local destructor that runs after the crate's own
//!   thread-locals are gone is a value or a `GilError`, never a panic (F5).
//!
//! The `unsafe` blocks whose `SAFETY` comment starts with FOREIGN stand for correct code of
//! another library or of the host; everything else is safe gilguard code.

mod common;

use std::cell::{Cell, RefCell};
use std::ffi::CStr;
use std::mem;
use std::panic::{self, AssertUnwindSafe};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, mpsc};
use std::time::{Duration, Instant};

use common::{Attachment, SameThread};
use gilguard::{
    GilError, GilGuard, Interpreter, InterpreterConfig, SubInterpreter, ThreadStateHandle, WithGil,
    is_attached, try_with_gil, with_gil, without_gil,
};
use pyo3_ffi as ffi;

// ---------------------------------------------------------------------------------------
// Helpers

/// Runs the child test `name` (see `common::run_child`, which checks the exit status, that
/// the test passed and that no `Fatal Python error` was printed), also checks that Rust did
/// not abort on a thread-local destructor, and shows what the child marked `observed:`.
fn child(name: &str) -> Output {
    let output = common::run_child(name);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("panicked on drop") && !stderr.contains("fatal runtime error"),
        "child test {name} aborted in Rust\n{stderr}"
    );
    // libtest prints `test <name> ... ` without a newline before the test's own output.
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        if let Some(start) = line.find("observed:") {
            println!("{name}: {}", &line[start..]);
        }
    }
    output
}

/// Stores `value` in `slot`, for the child's main thread to check.
fn record<T>(slot: &Mutex<Option<T>>, value: T) {
    *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(value);
}

/// Takes what `record` stored in `slot`.
fn recorded<T>(slot: &Mutex<Option<T>>) -> Option<T> {
    slot.lock().unwrap_or_else(PoisonError::into_inner).take()
}

/// Waits (detached, so that the thread it waits for can take the GIL) until `done`.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Inside a C function called by Python: returning to Python detached would be undefined
/// behaviour, and a panic cannot unwind out of it, so a lost GIL ends the process with a
/// message saying so.
fn check_caller_still_attached(case: &str) {
    if !is_attached() {
        eprintln!("{case}: the Python caller lost its GIL (the closure form returned detached)");
        std::process::abort();
    }
}

/// Makes a Python `threading.Thread` whose target is the Rust function `function`, starts it
/// and joins it from Python. The thread's state is created and deleted by CPython.
fn call_on_python_thread(name: &'static CStr, function: ffi::PyCFunction) {
    with_gil(|| {
        common::define(name, function);
        let name = name.to_str().expect("ASCII name");
        common::run(&format!(
            "import threading\n\
             thread = threading.Thread(target={name})\n\
             thread.start()\n\
             thread.join()\n"
        ));
    });
}

/// A host finalizing the runtime from this thread (which must be detached): it attaches with
/// `PyGILState_Ensure` and calls `Py_FinalizeEx`, as an embedding program does at exit.
fn host_finalize() {
    // SAFETY: FOREIGN: the host that embeds Python finalizes it: this thread is detached,
    // `PyGILState_Ensure` attaches it to the main interpreter (checked), and nothing of the
    // host uses Python afterwards.
    let status = unsafe {
        ffi::PyGILState_Ensure();
        assert_eq!(
            ffi::PyThreadState_GetInterpreter(ffi::PyThreadState_Get()),
            ffi::PyInterpreterState_Main(),
            "the test's host must finalize from the main interpreter"
        );
        ffi::Py_FinalizeEx()
    };
    assert_eq!(status, 0, "Py_FinalizeEx failed");
    assert!(!gilguard::is_initialized());
}

/// A sub-interpreter that lives as long as the child process (which exits without
/// finalizing), so that threads and leaked handles may borrow it for `'static`.
fn leaked_sub_interpreter() -> &'static SubInterpreter {
    leaked(SubInterpreter::new().expect("a sub-interpreter"))
}

/// `value`, leaked on purpose, and kept reachable from a static: LeakSanitizer (in
/// `.ci/sanitizers.sh`) reports memory only the stack of an ended thread pointed to.
fn leaked<T: 'static>(value: T) -> &'static T {
    static LEAKED: Mutex<Vec<usize>> = Mutex::new(Vec::new());
    let leaked: &'static T = Box::leak(Box::new(value));
    LEAKED.lock().unwrap().push(leaked as *const T as usize);
    leaked
}

/// Runs `scenario` on a native thread with this thread's handle for a (leaked)
/// sub-interpreter, then checks that the thread still works in both interpreters and ends
/// detached.
fn on_native_thread_with_sub(
    scenario: impl FnOnce(&'static SubInterpreter, &ThreadStateHandle<'static>) + Send + 'static,
) {
    common::python();
    let sub = leaked_sub_interpreter();
    std::thread::spawn(move || {
        let handle = sub.thread_state().unwrap();
        scenario(sub, &handle);
        assert_eq!(common::attachment(), Attachment::Detached);
        with_gil(|| common::run("after = 'main still works'"));
        handle
            .run(|| common::run("after = 'sub still works'"))
            .unwrap();
        assert_eq!(common::attachment(), Attachment::Detached);
    })
    .join()
    .unwrap();
}

/// Makes it likely that the next `calloc` of `block`'s size on this thread returns `block`'s
/// address, once `block` is freed. CPython allocates thread states with `calloc`, which in
/// glibc never takes a block from the per-thread cache (tcache) that `free` puts it in; so
/// this fills the cache's bin for that size (7 blocks), and a block freed next goes to the
/// bins `calloc` searches first. Does nothing where CPython's debug hooks wrap the raw
/// allocator (its blocks are then not `malloc`'s).
fn make_address_reusable(block: *mut ffi::PyThreadState) {
    let plain_malloc = matches!(
        std::env::var("PYTHONMALLOC").as_deref(),
        Err(_) | Ok("malloc" | "pymalloc")
    ) && std::env::var_os("PYTHONDEVMODE").is_none()
        && cfg!(not(py_sys_config = "Py_DEBUG"));
    if !plain_malloc {
        return;
    }
    // SAFETY: `block` is a live allocation of `malloc` (CPython's raw allocator, without
    // debug hooks: checked above); the blocks allocated are freed at once, unused.
    unsafe {
        let size = libc::malloc_usable_size(block.cast());
        let blocks: Vec<*mut libc::c_void> = (0..7).map(|_| libc::malloc(size)).collect();
        for allocated in blocks {
            libc::free(allocated);
        }
    }
}

/// `sub`'s `PyInterpreterState`, as an address (to pass it to another thread), for foreign
/// code that creates thread states of it by hand.
fn interpreter_state(sub: &SubInterpreter) -> usize {
    let handle = sub.thread_state().unwrap();
    handle
        .run(|| {
            // SAFETY: attached to the sub-interpreter, so its current thread state is live.
            let interp =
                unsafe { ffi::PyThreadState_GetInterpreter(common::current_thread_state()) };
            interp as usize
        })
        .unwrap()
}

/// The state a closure form's caller is in.
#[derive(Clone, Copy, Debug)]
enum Caller {
    Detached,
    /// Attached to the main interpreter by `with_gil`.
    Main,
}

impl Caller {
    const ALL: [Caller; 2] = [Caller::Detached, Caller::Main];

    /// Runs `f` in this state, checking that it is what `common::attachment` reports.
    fn run(self, f: impl FnOnce(Attachment)) {
        match self {
            Caller::Detached => {
                assert_eq!(common::attachment(), Attachment::Detached);
                f(Attachment::Detached);
            }
            Caller::Main => with_gil(|| {
                assert_eq!(common::attachment(), Attachment::Main);
                f(Attachment::Main);
            }),
        }
    }
}

// ---------------------------------------------------------------------------------------
// F1: a frame keeps a thread state that its owner deleted.

/// F1 with a C library on a native thread: its `PyGILState_Ensure` creates the thread's state
/// T, a `WithGil` leaked inside `without_gil` re-attaches T, and the balanced
/// `PyGILState_Release` deletes T. Nothing may pass T to CPython afterwards.
///
/// A crate that does re-attaches the freed T here and usually gets away with it: the freed
/// block still holds T's fields. Valgrind (with `PYTHONMALLOC=malloc`) or ASan shows the
/// use-after-free in `PyThreadState_GetInterpreter` and `take_gil`; F1d is the variant that
/// fails without a memory checker.
#[test]
fn f1a_a_foreign_ensure_scope_deletes_what_a_leaked_guard_attached() {
    child("child_f1a");
}

#[test]
#[ignore = "runs in a child process, started by f1a_a_foreign_ensure_scope_deletes_what_a_leaked_guard_attached"]
fn child_f1a() {
    common::python();
    std::thread::spawn(|| {
        // SAFETY: FOREIGN: a C library's balanced PyGILState_Ensure/Release pair around a
        // callback, on a thread without a thread state: Ensure creates one (T).
        let state = unsafe { ffi::PyGILState_Ensure() };
        // Safe code; the leak is documented as harmless.
        without_gil(|| mem::forget(WithGil::acquire()));
        assert!(is_attached(), "without_gil returned detached");
        // SAFETY: FOREIGN: the matching release: this thread is attached to T (checked), and
        // the counter drops to 0, so T is cleared and deleted.
        unsafe { ffi::PyGILState_Release(state) };
        assert!(!is_attached());
        // Would re-attach the freed T if a frame still named it.
        assert_eq!(try_with_gil(is_attached), Ok(true));
        assert!(!is_attached());
        with_gil(|| common::run("x = 1"));
        assert!(!is_attached());
    })
    .join()
    .unwrap();
}

/// What the Python thread of F1b saw right after `without_gil` returned.
static F1B_ATTACHED_AFTER: Mutex<Option<bool>> = Mutex::new(None);
/// What `try_with_gil(is_attached)` answered in that thread's thread-local destructor.
static F1B_IN_TEARDOWN: Mutex<Option<Result<bool, GilError>>> = Mutex::new(None);

/// Attaches from its `Drop`, which runs in thread teardown (after CPython deleted the state
/// of a Python thread).
struct AttachInTeardown;

impl Drop for AttachInTeardown {
    fn drop(&mut self) {
        record(&F1B_IN_TEARDOWN, try_with_gil(is_attached));
    }
}

thread_local! {
    static ATTACH_IN_TEARDOWN: AttachInTeardown = const { AttachInTeardown };
}

/// The target of F1b's Python thread: the leak of F1a without any FFI, then a thread-local
/// armed to attach again once CPython has deleted this thread's state.
unsafe extern "C" fn f1b_leak_then_arm(
    _module: *mut ffi::PyObject,
    _args: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    without_gil(|| mem::forget(WithGil::acquire()));
    record(&F1B_ATTACHED_AFTER, is_attached());
    check_caller_still_attached("F1b");
    ATTACH_IN_TEARDOWN.with(|_| ());
    common::none()
}

/// F1 with CPython's `threading` as the owner: it deletes the Python thread's state when the
/// thread ends, and a thread-local destructor of that thread attaches afterwards. As for
/// F1a, the use-after-free of a crate that re-attaches the freed state needs a memory checker
/// to be seen.
#[test]
fn f1b_a_python_threads_state_is_not_reused_from_its_teardown() {
    child("child_f1b");
}

#[test]
#[ignore = "runs in a child process, started by f1b_a_python_threads_state_is_not_reused_from_its_teardown"]
fn child_f1b() {
    common::python();
    call_on_python_thread(c"f1b_leak_then_arm", f1b_leak_then_arm);
    assert_eq!(recorded(&F1B_ATTACHED_AFTER), Some(true));
    // `join` returns once CPython deleted the thread's state; its thread-local destructors
    // may run a little later.
    wait_until("the thread-local destructor", || {
        F1B_IN_TEARDOWN
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    });
    let in_teardown = recorded(&F1B_IN_TEARDOWN).unwrap();
    println!("observed: try_with_gil in the Python thread's teardown: {in_teardown:?}");
    assert!(matches!(in_teardown, Ok(true) | Err(_)), "{in_teardown:?}");
    with_gil(|| common::run("x = 1"));
}

/// Whether F1c's Python caller was attached right after `without_gil` returned.
static F1C_ATTACHED_AFTER: Mutex<Option<bool>> = Mutex::new(None);
/// Set once F1c's stashed guard was dropped by the thread-local destructor.
static F1C_STASH_DROPPED: AtomicBool = AtomicBool::new(false);

/// `RefCell<Option<WithGil>>`, plus a note for the test when its destructor has run.
struct Stash(RefCell<Option<WithGil>>);

impl Drop for Stash {
    fn drop(&mut self) {
        drop(self.0.borrow_mut().take());
        F1C_STASH_DROPPED.store(true, Ordering::SeqCst);
    }
}

thread_local! {
    static STASH: Stash = const { Stash(RefCell::new(None)) };
}

/// The target of F1c's Python thread: a guard made inside `without_gil` is stored in a
/// thread-local, so it outlives the closure and is dropped at thread exit.
unsafe extern "C" fn f1c_stash_a_guard(
    _module: *mut ffi::PyObject,
    _args: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    without_gil(|| STASH.with(|stash| *stash.0.borrow_mut() = Some(WithGil::acquire())));
    // The caller, Python, must get its GIL back.
    record(&F1C_ATTACHED_AFTER, is_attached());
    check_caller_still_attached("F1c");
    common::none()
}

/// F1 as the issue found it on a Python thread: the stored guard is dropped by the
/// thread-local destructor after CPython deleted the thread's state (3.11/3.12:
/// `Fatal Python error: PyEval_SaveThread: thread state is NULL`; 3.13: SIGSEGV).
#[test]
fn f1c_a_guard_stored_in_a_thread_local_of_a_python_thread() {
    child("child_f1c");
}

#[test]
#[ignore = "runs in a child process, started by f1c_a_guard_stored_in_a_thread_local_of_a_python_thread"]
fn child_f1c() {
    common::python();
    call_on_python_thread(c"f1c_stash_a_guard", f1c_stash_a_guard);
    assert_eq!(recorded(&F1C_ATTACHED_AFTER), Some(true));
    wait_until("the stashed guard's drop", || {
        F1C_STASH_DROPPED.load(Ordering::SeqCst)
    });
    with_gil(|| common::run("x = 1"));
}

/// F1 with an address reused: a `WithGil` made inside a C library's Ensure/Release scope
/// outlives it, so its frame names the freed thread state T. A new thread state of a
/// sub-interpreter, attached by hand right after, is likely allocated at T's address; the
/// crate must see a thread attached to a sub-interpreter, not a nested acquire of the main
/// one.
#[test]
fn f1d_a_freed_thread_states_address_reused_by_a_sub_interpreter() {
    child("child_f1d");
}

#[test]
#[ignore = "runs in a child process, started by f1d_a_freed_thread_states_address_reused_by_a_sub_interpreter"]
fn child_f1d() {
    common::python();
    // Created before the foreign scope, so that nothing but the thread state is allocated
    // between the release and the new thread state.
    let mut sub = SubInterpreter::new().unwrap();
    let sub_interp = interpreter_state(&sub);
    std::thread::spawn(move || {
        // The guard outlives the foreign scope it was made in (no leak needed).
        let (slot, freed) = {
            // SAFETY: FOREIGN: a C library's balanced PyGILState_Ensure/Release pair around a
            // callback, on a thread without a thread state: Ensure creates one (T).
            let state = unsafe { ffi::PyGILState_Ensure() };
            let freed = common::current_thread_state();
            make_address_reusable(freed);
            let slot = Some(WithGil::acquire());
            // SAFETY: FOREIGN: the matching release, attached to T: T is deleted.
            unsafe { ffi::PyGILState_Release(state) };
            (slot, freed)
        };
        // SAFETY: FOREIGN: code that enters the sub-interpreter by hand on this detached
        // thread: a new thread state of it (alive: the sub-interpreter is ended only after
        // this thread is joined), attached, and cleared and deleted below before anything
        // else uses the thread.
        let entered = unsafe {
            let tstate = ffi::PyThreadState_New(sub_interp as *mut ffi::PyInterpreterState);
            ffi::PyEval_RestoreThread(tstate);
            tstate
        };
        println!(
            "observed: the sub-interpreter's thread state reused the freed address: {}",
            entered == freed
        );
        let answer = WithGil::try_acquire().map(drop);
        // SAFETY: FOREIGN: `entered` is attached to this thread, and no guard uses it: its
        // owner clears and deletes it.
        unsafe {
            ffi::PyThreadState_Clear(entered);
            ffi::PyThreadState_DeleteCurrent();
        }
        assert_eq!(answer, Err(GilError::AttachedElsewhere));
        assert!(!is_attached());
        drop(slot);
        assert!(!is_attached());
        with_gil(|| common::run("x = 1"));
        assert!(!is_attached());
    })
    .join()
    .unwrap();
    assert_eq!(sub.end(), Ok(()));
}

// ---------------------------------------------------------------------------------------
// F2: a closure form returns with its caller detached.

/// The code of the issue: inside `without_gil`, a C library's balanced Ensure/Release pair
/// attaches and detaches the thread's state around a leaked `WithGil`; `with_gil`'s code
/// after `without_gil` must run attached.
fn f2_scenario() {
    with_gil(|| {
        without_gil(|| {
            // SAFETY: FOREIGN: a C library's balanced PyGILState_Ensure/Release pair
            // around a callback, on a detached thread.
            let state = unsafe { ffi::PyGILState_Ensure() };
            mem::forget(WithGil::acquire());
            // SAFETY: FOREIGN: the matching release: detaches the thread again.
            unsafe { ffi::PyGILState_Release(state) };
        });
        assert!(is_attached(), "without_gil returned detached");
        common::run("x = 1");
    });
    assert!(!is_attached());
    with_gil(|| common::run("y = 2"));
    assert!(!is_attached());
}

#[test]
fn f2_foreign_ensure_release_inside_without_gil_on_a_native_thread() {
    child("child_f2_native");
}

#[test]
#[ignore = "runs in a child process, started by f2_foreign_ensure_release_inside_without_gil_on_a_native_thread"]
fn child_f2_native() {
    common::python();
    std::thread::spawn(f2_scenario).join().unwrap();
}

#[test]
fn f2_foreign_ensure_release_inside_without_gil_on_the_initializing_thread() {
    child("child_f2_initializing");
}

#[test]
#[ignore = "runs in a child process, started by f2_foreign_ensure_release_inside_without_gil_on_the_initializing_thread"]
fn child_f2_initializing() {
    common::python();
    f2_scenario();
}

// ---------------------------------------------------------------------------------------
// F3: sub-interpreters and handles still alive when a host finalizes the runtime
// (3.11/3.12: `PyInterpreterState_Delete: remaining subinterpreters`; 3.13:
// `Py_EndInterpreter: not the last thread`).

/// A leaked `SubInterpreter` (`mem::forget` is safe), used once from another thread.
#[test]
fn f3a_finalizing_with_a_leaked_sub_interpreter() {
    child("child_f3a");
}

#[test]
#[ignore = "runs in a child process, started by f3a_finalizing_with_a_leaked_sub_interpreter"]
fn child_f3a() {
    common::python();
    let sub = SubInterpreter::new().unwrap();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let handle = sub.thread_state().unwrap();
            handle.run(|| common::run("x = 1")).unwrap();
        });
    });
    mem::forget(sub);
    host_finalize();
}

static F3B_KEPT: OnceLock<SubInterpreter> = OnceLock::new();

/// A `SubInterpreter` in a `static`: never dropped.
#[test]
fn f3b_finalizing_with_a_sub_interpreter_in_a_static() {
    child("child_f3b");
}

#[test]
#[ignore = "runs in a child process, started by f3b_finalizing_with_a_sub_interpreter_in_a_static"]
fn child_f3b() {
    common::python();
    let sub = F3B_KEPT.get_or_init(|| SubInterpreter::new().unwrap());
    std::thread::spawn(|| {
        let handle = sub.thread_state().unwrap();
        handle.run(|| common::run("x = 1")).unwrap();
    })
    .join()
    .unwrap();
    host_finalize();
}

/// A handle leaked on a thread that has ended: its thread state stays in the interpreter, so
/// dropping the interpreter is refused and leaves it running ("a refused `Drop` only moves
/// the fatal error to finalization").
#[test]
fn f3c_finalizing_with_a_leaked_handle() {
    child("child_f3c");
}

#[test]
#[ignore = "runs in a child process, started by f3c_finalizing_with_a_leaked_handle"]
fn child_f3c() {
    common::python();
    let mut sub = SubInterpreter::new().unwrap();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let handle = sub.thread_state().unwrap();
            handle.run(|| common::run("x = 1")).unwrap();
            mem::forget(handle);
        });
    });
    assert_eq!(sub.end(), Err(GilError::InterpreterInUse));
    drop(sub); // refused too: the interpreter keeps running
    host_finalize();
}

/// A thread that is never joined holds a handle (detached, blocked on a channel) and keeps
/// the interpreter alive, like a daemon thread.
#[test]
fn f3d_finalizing_while_another_thread_holds_a_handle() {
    child("child_f3d");
}

#[test]
#[ignore = "runs in a child process, started by f3d_finalizing_while_another_thread_holds_a_handle"]
fn child_f3d() {
    common::python();
    let sub = Arc::new(SubInterpreter::new().unwrap());
    let (ready, wait_ready) = mpsc::channel();
    let (never, wait_forever) = mpsc::channel::<()>();
    let kept = Arc::clone(&sub);
    std::thread::spawn(move || {
        let handle = kept.thread_state().unwrap();
        handle.run(|| common::run("x = 1")).unwrap();
        ready.send(()).unwrap();
        // Blocks for the rest of the process: the sender is leaked below.
        let _ = wait_forever.recv();
        drop(handle);
    });
    wait_ready.recv().unwrap();
    mem::forget(never);
    drop(sub); // the thread's `Arc` keeps the interpreter
    host_finalize();
}

/// Plain locals of the finalizing thread: a live `SubInterpreter` and a live handle, dropped
/// after `Py_FinalizeEx` returned. Their drops must not touch the freed interpreter.
#[test]
fn f3e_sub_interpreter_and_handle_dropped_after_the_host_finalized() {
    child("child_f3e");
}

#[test]
#[ignore = "runs in a child process, started by f3e_sub_interpreter_and_handle_dropped_after_the_host_finalized"]
fn child_f3e() {
    common::python();
    let sub = SubInterpreter::new().unwrap();
    let handle = sub.thread_state().unwrap();
    handle.run(|| common::run("x = 1")).unwrap();
    // On 3.12+ the thread's `PyGILState` state follows the last thread state attached: attach
    // the main one again, so that the host's `PyGILState_Ensure` lands there.
    with_gil(|| ());
    host_finalize();
    drop(handle);
    drop(sub);
}

/// F3 with interpreters that have their own GIL (3.12+).
#[cfg(Py_3_12)]
mod f3_own_gil {
    use super::*;

    /// A leaked own-GIL interpreter, with a handle leaked on a thread that has ended.
    #[test]
    fn f3_finalizing_with_a_leaked_own_gil_interpreter_and_handle() {
        child("f3_own_gil::child_f3_own_gil_leaked");
    }

    #[test]
    #[ignore = "runs in a child process, started by f3_finalizing_with_a_leaked_own_gil_interpreter_and_handle"]
    fn child_f3_own_gil_leaked() {
        common::python();
        let sub = SubInterpreter::with_config(InterpreterConfig::isolated()).unwrap();
        assert!(sub.has_own_gil());
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let handle = sub.thread_state().unwrap();
                handle.run(|| common::run("x = 1")).unwrap();
                mem::forget(handle);
            });
        });
        mem::forget(sub);
        host_finalize();
    }

    /// An own-GIL interpreter and a handle as locals of the finalizing thread, dropped after
    /// `Py_FinalizeEx` returned.
    #[test]
    fn f3_own_gil_interpreter_and_handle_dropped_after_the_host_finalized() {
        child("f3_own_gil::child_f3_own_gil_locals");
    }

    #[test]
    #[ignore = "runs in a child process, started by f3_own_gil_interpreter_and_handle_dropped_after_the_host_finalized"]
    fn child_f3_own_gil_locals() {
        common::python();
        let sub = SubInterpreter::with_config(InterpreterConfig::isolated()).unwrap();
        let handle = sub.thread_state().unwrap();
        handle.run(|| common::run("x = 1")).unwrap();
        with_gil(|| ()); // see child_f3e
        host_finalize();
        drop(handle);
        drop(sub);
    }
}

// ---------------------------------------------------------------------------------------
// F4: creating a sub-interpreter while the runtime finalizes.

/// What F4's `__del__` got: whether the runtime was finalizing, and what `new` and
/// `with_config(legacy)` answered.
type F4Outcome = (bool, Result<(), GilError>, Result<(), GilError>);
static F4_OUTCOME: Mutex<Option<F4Outcome>> = Mutex::new(None);

/// Called by a `__del__` that `Py_FinalizeEx` runs: creates sub-interpreters (and ends any
/// that CPython let it create).
unsafe extern "C" fn f4_create_while_finalizing(
    _module: *mut ffi::PyObject,
    _args: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let finalizing = gilguard::is_finalizing();
    let new = SubInterpreter::new().map(drop);
    let with_config = SubInterpreter::with_config(InterpreterConfig::legacy()).map(drop);
    record(&F4_OUTCOME, (finalizing, new, with_config));
    common::none()
}

/// The F4: 3.11 aborted with `new_interpreter: Py_Initialize must be called first`,
/// 3.12/3.13 answered `CreationFailed` instead of `Finalizing`.
#[test]
fn f4_creating_a_sub_interpreter_from_a_finalizer_is_refused() {
    child("child_f4");
}

#[test]
#[ignore = "runs in a child process, started by f4_creating_a_sub_interpreter_from_a_finalizer_is_refused"]
fn child_f4() {
    common::python();
    with_gil(|| {
        common::define(c"f4_create_while_finalizing", f4_create_while_finalizing);
        // A global of `__main__`: finalization collects it after the `atexit` phase, with
        // CPython's finalizing flag set. The default argument keeps the function reachable
        // while the module's dict is cleared.
        common::run(
            "class Probe:\n    def __del__(self, probe=f4_create_while_finalizing):\n        probe()\n\
             probe_instance = Probe()\n",
        );
    });
    host_finalize();
    let (finalizing, new, with_config) = recorded(&F4_OUTCOME).expect("the __del__ ran");
    println!("observed: new: {new:?}, with_config(legacy): {with_config:?}");
    assert!(finalizing, "the __del__ ran before finalization started");
    assert_eq!(new, Err(GilError::Finalizing));
    assert_eq!(with_config, Err(GilError::Finalizing));
}

// ---------------------------------------------------------------------------------------
// F5: a handle made from a thread-local destructor that runs after the crate's own.

/// What the thread-local destructor of F5 got when it made a handle.
static F5_OUTCOME: Mutex<Option<Result<(), GilError>>> = Mutex::new(None);

/// Makes (and drops) a handle from its `Drop`: of the sub-interpreter if one is set, else of
/// the main interpreter.
struct HandleInTeardown(Cell<Option<&'static SubInterpreter>>);

impl Drop for HandleInTeardown {
    fn drop(&mut self) {
        let outcome = match self.0.get() {
            Some(sub) => sub.thread_state().map(drop),
            None => Interpreter::main().and_then(|main| {
                // SAFETY: the main interpreter outlives the handle, which is dropped at once.
                unsafe { main.thread_state() }.map(drop)
            }),
        };
        record(&F5_OUTCOME, outcome);
    }
}

thread_local! {
    static HANDLE_IN_TEARDOWN: HandleInTeardown = const { HandleInTeardown(Cell::new(None)) };
}

/// Arms the thread-local before the crate's first use on a native thread, so that the
/// crate's thread-locals, registered later, are destroyed first; then uses the crate.
fn f5_scenario(sub: Option<&'static SubInterpreter>) {
    std::thread::spawn(move || {
        HANDLE_IN_TEARDOWN.with(|armed| armed.0.set(sub));
        match sub {
            Some(sub) => drop(sub.thread_state().unwrap()),
            None => {
                let main = Interpreter::main().unwrap();
                // SAFETY: the main interpreter outlives the handle, dropped at once.
                drop(unsafe { main.thread_state() }.unwrap());
            }
        }
        with_gil(|| common::run("x = 1"));
    })
    .join()
    .unwrap();
    let outcome = recorded(&F5_OUTCOME).expect("the thread-local destructor ran");
    println!("observed: a handle made in thread teardown: {outcome:?}");
    with_gil(|| common::run("y = 2"));
}

/// The F5 ("thread local panicked on drop", process abort), with a handle of the
/// main interpreter.
#[test]
fn f5_a_main_interpreter_handle_made_in_thread_teardown() {
    child("child_f5_main");
}

#[test]
#[ignore = "runs in a child process, started by f5_a_main_interpreter_handle_made_in_thread_teardown"]
fn child_f5_main() {
    common::python();
    f5_scenario(None);
}

/// F5 with a handle of a sub-interpreter.
#[test]
fn f5_a_sub_interpreter_handle_made_in_thread_teardown() {
    child("child_f5_sub");
}

#[test]
#[ignore = "runs in a child process, started by f5_a_sub_interpreter_handle_made_in_thread_teardown"]
fn child_f5_sub() {
    common::python();
    f5_scenario(Some(leaked_sub_interpreter()));
}

// ---------------------------------------------------------------------------------------
// F6: process aborts by design that safe code reaches.

/// A `GilGuard` made outside `handle.run` and acquired inside it: refused or a panic, never
/// an abort, and the caller gets back its state. Inside a sub-interpreter's `run` the
/// acquire is refused; inside a main-interpreter handle's `run` it nests, and its frame,
/// owned by the guard from outside, outlives the closure.
#[test]
fn f6a_gil_guard_from_outside_acquired_inside_run() {
    child("child_f6a");
}

#[test]
#[ignore = "runs in a child process, started by f6a_gil_guard_from_outside_acquired_inside_run"]
fn child_f6a() {
    on_native_thread_with_sub(|_, sub_handle| {
        let main = Interpreter::main().unwrap();
        // SAFETY: the main interpreter outlives the handle, dropped at the end of this closure.
        let main_handle = unsafe { main.thread_state() }.unwrap();
        for (which, handle) in [("sub", sub_handle), ("main", &main_handle)] {
            for caller in Caller::ALL {
                caller.run(|before| {
                    let mut guard = GilGuard::new();
                    // Safe code reaches this with the guard in a thread-local.
                    let inside = SameThread(&mut guard);
                    let tried = handle.run(move || inside.get().try_acquire()).unwrap();
                    println!(
                        "observed: {which} handle, {caller:?} caller, try_acquire inside run: \
                         {tried:?}"
                    );
                    assert_eq!(common::attachment(), before);
                    drop(guard);
                    assert_eq!(common::attachment(), before);

                    let mut guard = GilGuard::new();
                    let acquired = panic::catch_unwind(AssertUnwindSafe(|| {
                        let inside = SameThread(&mut guard);
                        handle.run(move || inside.get().acquire()).unwrap();
                    }));
                    println!(
                        "observed: {which} handle, {caller:?} caller, acquire inside run \
                         panicked: {}",
                        acquired.is_err()
                    );
                    assert_eq!(common::attachment(), before);
                    drop(guard);
                    assert_eq!(common::attachment(), before);
                });
            }
        }
        main_handle.run(|| common::run("x = 1")).unwrap();
    });
}

/// A guard that outlives `handle.run` (safe code keeps it in a thread-local; `run`'s result
/// must be `Send`, so it cannot be returned): the caller gets back its state, and dropping
/// the guard later is harmless.
#[test]
fn f6b_guard_returned_out_of_run() {
    child("child_f6b");
}

#[test]
#[ignore = "runs in a child process, started by f6b_guard_returned_out_of_run"]
fn child_f6b() {
    on_native_thread_with_sub(|_, handle| {
        for caller in Caller::ALL {
            caller.run(|before| {
                let escaped = handle
                    .run(|| SameThread(with_gil(WithGil::acquire)))
                    .unwrap()
                    .get();
                assert_eq!(common::attachment(), before);
                with_gil(|| common::run("x = 1"));
                handle.run(|| common::run("x = 1")).unwrap();
                assert_eq!(common::attachment(), before);
                drop(escaped);
                assert_eq!(common::attachment(), before);
            });
        }
    });
}

thread_local! {
    /// The handle F6c leaks inside `without_gil`, for the test to use afterwards.
    static LEAKED_HANDLE: Cell<Option<&'static ThreadStateHandle<'static>>> =
        const { Cell::new(None) };
}

/// Inside `without_gil` (caller attached to the main interpreter), a handle's `attach` is
/// leaked: the caller would continue in the sub-interpreter.
#[test]
fn f6c_handle_attach_leaked_inside_without_gil() {
    child("child_f6c_without_gil_attach");
}

#[test]
#[ignore = "runs in a child process, started by f6c_handle_attach_leaked_inside_without_gil"]
fn child_f6c_without_gil_attach() {
    on_native_thread_with_sub(|_, _| {
        let other = leaked_sub_interpreter();
        with_gil(|| {
            without_gil(move || {
                let leaked: &'static ThreadStateHandle<'static> =
                    leaked(other.thread_state().unwrap());
                mem::forget(leaked.attach().unwrap());
                LEAKED_HANDLE.with(|slot| slot.set(Some(leaked)));
            });
            assert_eq!(common::attachment(), Attachment::Main);
            common::run("x = 1");
        });
        assert_eq!(common::attachment(), Attachment::Detached);
        let leaked = LEAKED_HANDLE.with(Cell::get).unwrap();
        leaked
            .run(|| assert_eq!(common::attachment(), Attachment::Sub(other.id())))
            .unwrap();
    });
}

/// As above, but the handle is dropped inside the closure, after its `attach` guard was
/// leaked.
#[test]
fn f6c_handle_attach_leaked_and_handle_dropped_inside_without_gil() {
    child("child_f6c_without_gil_attach_dropped");
}

#[test]
#[ignore = "runs in a child process, started by f6c_handle_attach_leaked_and_handle_dropped_inside_without_gil"]
fn child_f6c_without_gil_attach_dropped() {
    on_native_thread_with_sub(|_, _| {
        let other = leaked_sub_interpreter();
        with_gil(|| {
            without_gil(move || {
                let handle = other.thread_state().unwrap();
                mem::forget(handle.attach().unwrap());
                drop(handle);
            });
            assert_eq!(common::attachment(), Attachment::Main);
            common::run("x = 1");
        });
        assert_eq!(common::attachment(), Attachment::Detached);
        // The thread's claim on `other` may or may not have been given up.
        match other.thread_state() {
            Ok(again) => again.run(|| common::run("x = 1")).unwrap(),
            Err(error) => println!("observed: a new handle afterwards: {error:?}"),
        }
    });
}

/// Inside `handle.run`, the same handle's `attach` is leaked (it nests): the caller, detached
/// or in the main interpreter, would continue in the sub-interpreter.
#[test]
fn f6c_handle_attach_leaked_inside_run() {
    child("child_f6c_run_attach");
}

#[test]
#[ignore = "runs in a child process, started by f6c_handle_attach_leaked_inside_run"]
fn child_f6c_run_attach() {
    on_native_thread_with_sub(|sub, handle| {
        for caller in Caller::ALL {
            caller.run(|before| {
                let same = SameThread(handle);
                handle
                    .run(move || {
                        mem::forget(same.get().attach().unwrap());
                        assert_eq!(common::attachment(), Attachment::Sub(sub.id()));
                    })
                    .unwrap();
                assert_eq!(common::attachment(), before);
                with_gil(|| common::run("x = 1"));
                assert_eq!(common::attachment(), before);
            });
        }
    });
}

/// Inside `handle.run`, a `WithGil` is leaked: directly (refused with `AttachedElsewhere`, or
/// leaked if it succeeds), inside a nested `with_gil` and inside a nested `without_gil`. Each
/// closure form must hand back the sub-interpreter, and `run` the caller's state.
#[test]
fn f6c_with_gil_leaked_inside_run() {
    child("child_f6c_run_with_gil");
}

#[test]
#[ignore = "runs in a child process, started by f6c_with_gil_leaked_inside_run"]
fn child_f6c_run_with_gil() {
    on_native_thread_with_sub(|sub, handle| {
        let in_sub = Attachment::Sub(sub.id());
        for caller in Caller::ALL {
            caller.run(|before| {
                handle
                    .run(|| {
                        match WithGil::try_acquire() {
                            Ok(guard) => mem::forget(guard),
                            Err(error) => assert_eq!(error, GilError::AttachedElsewhere),
                        }
                        assert_eq!(common::attachment(), in_sub);
                        with_gil(|| mem::forget(WithGil::acquire()));
                        assert_eq!(common::attachment(), in_sub);
                        without_gil(|| mem::forget(WithGil::acquire()));
                        assert_eq!(common::attachment(), in_sub);
                        common::run("x = 1");
                    })
                    .unwrap();
                assert_eq!(common::attachment(), before);
                with_gil(|| common::run("x = 1"));
                assert_eq!(common::attachment(), before);
            });
        }
    });
}

/// Inside `with_gil` called in a sub-interpreter (through `handle.run`), another handle's
/// `attach` is leaked (refused with `AttachedElsewhere`, or leaked if it succeeds): `with_gil`
/// must hand back the sub-interpreter.
#[test]
fn f6c_other_handle_attach_leaked_inside_with_gil_in_a_sub_interpreter() {
    child("child_f6c_with_gil_attach");
}

#[test]
#[ignore = "runs in a child process, started by f6c_other_handle_attach_leaked_inside_with_gil_in_a_sub_interpreter"]
fn child_f6c_with_gil_attach() {
    on_native_thread_with_sub(|sub, handle| {
        let other = leaked_sub_interpreter();
        let other_handle = other.thread_state().unwrap();
        let in_sub = Attachment::Sub(sub.id());
        for caller in Caller::ALL {
            caller.run(|before| {
                let other_handle = SameThread(&other_handle);
                handle
                    .run(move || {
                        with_gil(|| match other_handle.get().attach() {
                            Ok(guard) => mem::forget(guard),
                            Err(error) => println!("observed: the other attach: {error:?}"),
                        });
                        assert_eq!(common::attachment(), in_sub);
                        common::run("x = 1");
                    })
                    .unwrap();
                assert_eq!(common::attachment(), before);
            });
        }
        other_handle.run(|| common::run("x = 1")).unwrap();
    });
}

// -- Undoing an attach detaches only what CPython confirms is attached -------------------

/// A guard dropped inside a region where foreign code released the thread (a C library's
/// `Py_BEGIN_ALLOW_THREADS`, stood for by a raw `PyEval_SaveThread`) finds the thread
/// detached already: undoing its attach must not detach again (a fatal error from 3.12 on,
/// and before 3.12 a release of whichever thread holds the GIL). The foreign code then
/// re-attaches as it planned, and the thread is attached with no guard left, as a leaked
/// guard would leave it.
#[test]
fn a_guard_dropped_inside_a_foreign_release_detaches_nothing() {
    child("child_dropped_inside_a_foreign_release");
}

#[test]
#[ignore = "runs in a child process, started by a_guard_dropped_inside_a_foreign_release_detaches_nothing"]
fn child_dropped_inside_a_foreign_release() {
    common::python();
    std::thread::spawn(|| {
        for how in ["kept thread state", "nested"] {
            let outer = (how == "nested").then(WithGil::acquire);
            let gil = WithGil::acquire();
            // SAFETY: FOREIGN: a C library's `Py_BEGIN_ALLOW_THREADS` while the guard
            // holds the thread attached; `Py_END_ALLOW_THREADS` below re-attaches.
            let saved = unsafe { ffi::PyEval_SaveThread() };
            drop(gil);
            assert!(!is_attached(), "{how}: the drop attached the thread");
            // SAFETY: FOREIGN: the matching `Py_END_ALLOW_THREADS`.
            unsafe { ffi::PyEval_RestoreThread(saved) };
            assert!(is_attached(), "{how}");
            common::run("x = 1");
            if let Some(outer) = outer {
                drop(outer);
            } else {
                // SAFETY: attached, by the foreign code, with no guard left to detach it.
                unsafe { ffi::PyEval_SaveThread() };
            }
            assert!(!is_attached(), "{how}");
        }
        with_gil(|| common::run("y = 2"));
    })
    .join()
    .unwrap();
}
