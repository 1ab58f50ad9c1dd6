//! [`SubInterpreter`]: create, share between threads, and end a sub-interpreter.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use pyo3_ffi::{PyInterpreterState, PyThreadState};

use crate::error::GilError;
use crate::interpreter_config::InterpreterConfig;
use crate::interpreter_ref::Interpreter;
use crate::stack::{self, Entry, Frame};
use crate::thread_state::ThreadStateHandle;
use crate::{ffi, runtime, with_gil};

/// A sub-interpreter: its own modules, globals and `sys` state inside this process, and on
/// CPython 3.12+ optionally its own GIL (PEP 684), so that Python code runs in parallel
/// with the main interpreter and with other such interpreters.
///
/// A `SubInterpreter` only names an interpreter; it is `Send + Sync`, so threads share it by
/// reference (scoped threads, or an `Arc`). Each thread that runs Python in it creates its
/// own [`ThreadStateHandle`] with [`thread_state`](Self::thread_state); the handle borrows
/// the interpreter, so the interpreter cannot be ended while a handle exists.
///
/// Dropping the interpreter ends it, like [`end`](Self::end); if ending is refused (see
/// there), the interpreter is left running rather than crashing the process.
///
/// # Examples
///
/// ```
/// use gilguard::SubInterpreter;
///
/// gilguard::initialize()?;
/// let interpreter = SubInterpreter::new()?;
/// std::thread::scope(|scope| {
///     for _ in 0..2 {
///         scope.spawn(|| {
///             let handle = interpreter.thread_state()?;
///             handle.run(|| {
///                 // SAFETY: attached to `interpreter`, so its C API may be called.
///                 unsafe { pyo3_ffi::PyRun_SimpleString(c"x = 6 * 7".as_ptr()) }
///             })
///         });
///     }
/// });
/// drop(interpreter); // ends it
/// # Ok::<(), gilguard::GilError>(())
/// ```
#[must_use = "the interpreter is ended as soon as it is dropped"]
#[derive(Debug)]
pub struct SubInterpreter {
    interp: NonNull<PyInterpreterState>,
    /// The interpreter's first thread state, kept detached until the end: CPython 3.11 and
    /// 3.12 reuse a statically allocated thread state when an interpreter has none left,
    /// and abort (`init_threadstate: thread state already initialized`) when that one was
    /// used before. Keeping it alive means the interpreter always has one. It is also the
    /// thread `threading` considers the interpreter's main thread (see `import_threading`).
    first: NonNull<PyThreadState>,
    /// `PyThread_get_thread_ident()` of the creating thread, which `threading` records as
    /// the interpreter's main thread.
    main_thread_ident: core::ffi::c_ulong,
    /// `PyInterpreterState_GetID`, read at creation: valid after the interpreter is gone.
    id: i64,
    /// Live `ThreadStateHandle`s; a leaked one keeps this above zero for good.
    thread_states: AtomicUsize,
    /// The runtime epoch it was created in: finalization destroys it with the runtime.
    epoch: u64,
    own_gil: bool,
    ended: bool,
}

// SAFETY: a `SubInterpreter` is the address of an interpreter plus counters. Every use of
// the interpreter goes through a thread state created on, and attached by, the thread that
// uses it; the address itself may be read from any thread. Ending needs `&mut self`, so it
// never races with `thread_state` or with live handles.
unsafe impl Send for SubInterpreter {}
// SAFETY: as above; shared access only creates handles (an atomic counter) or reads fields.
unsafe impl Sync for SubInterpreter {}

static_assertions::assert_impl_all!(SubInterpreter: Send, Sync);

impl SubInterpreter {
    /// Creates a sub-interpreter with `Py_NewInterpreter`: shared GIL, every feature
    /// allowed ([`InterpreterConfig::legacy`]). Works on every supported CPython version.
    ///
    /// The calling thread may be attached to any interpreter or detached; it is left exactly
    /// as it was.
    ///
    /// # Errors
    ///
    /// [`GilError::NotInitialized`], [`GilError::Finalizing`],
    /// [`GilError::CreationFailed`] with CPython's message, or [`GilError::Unsupported`] if
    /// other code took every `Py_AtExit` slot.
    ///
    /// # Examples
    ///
    /// ```
    /// gilguard::initialize()?;
    /// let interpreter = gilguard::SubInterpreter::new()?;
    /// assert!(!interpreter.has_own_gil());
    /// assert!(!gilguard::is_attached()); // the calling thread is as it was
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    pub fn new() -> Result<SubInterpreter, GilError> {
        SubInterpreter::with_config(&InterpreterConfig::legacy())
    }

    /// Creates a sub-interpreter with the given settings: `Py_NewInterpreterFromConfig` on
    /// CPython 3.12+, `Py_NewInterpreter` before (which only knows the legacy settings).
    ///
    /// The calling thread may be attached to any interpreter or detached; it is left exactly
    /// as it was.
    ///
    /// # Errors
    ///
    /// * [`GilError::InvalidConfig`] for settings CPython forbids together (checked first);
    /// * [`GilError::Unsupported`] for anything but [`InterpreterConfig::legacy`] before
    ///   CPython 3.12, or if other code took every `Py_AtExit` slot;
    /// * [`GilError::NotInitialized`], [`GilError::Finalizing`];
    /// * [`GilError::CreationFailed`] with the message of CPython's `PyStatus`.
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::{GilError, InterpreterConfig, SubInterpreter};
    ///
    /// gilguard::initialize()?;
    /// match SubInterpreter::with_config(&InterpreterConfig::isolated()) {
    ///     Ok(interpreter) => assert!(interpreter.has_own_gil()), // CPython 3.12+
    ///     Err(GilError::Unsupported(_)) => {}                     // CPython 3.9-3.11
    ///     Err(other) => panic!("{other}"),
    /// }
    /// # Ok::<(), GilError>(())
    /// ```
    pub fn with_config(config: &InterpreterConfig) -> Result<SubInterpreter, GilError> {
        config.check()?;
        if cfg!(not(Py_3_12)) && !config.is_legacy() {
            return Err(GilError::Unsupported(
                "sub-interpreter settings other than InterpreterConfig::legacy() \
                 (own GIL, own allocator, restrictions) need CPython 3.12",
            ));
        }
        // Attached to the main interpreter for the creation: before 3.12 CPython requires
        // a GIL, and the closure form puts back whatever the thread was attached to.
        with_gil::try_with_gil(|| create(config))?
    }

    /// Creates this thread's [`ThreadStateHandle`] for the interpreter: see
    /// [`ThreadStateHandle::new`].
    ///
    /// # Errors
    ///
    /// As [`ThreadStateHandle::new`].
    ///
    /// # Panics
    ///
    /// As [`ThreadStateHandle::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// gilguard::initialize()?;
    /// let interpreter = gilguard::SubInterpreter::new()?;
    /// let handle = interpreter.thread_state()?;
    /// handle.run(|| assert!(gilguard::is_attached()))?;
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    pub fn thread_state(&self) -> Result<ThreadStateHandle<'_>, GilError> {
        ThreadStateHandle::new(self)
    }

    /// The interpreter's id (`PyInterpreterState_GetID`), as Python's
    /// `interpreters.get_current().id` reports it; the main interpreter is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// gilguard::initialize()?;
    /// let interpreter = gilguard::SubInterpreter::new()?;
    /// assert!(interpreter.id() > 0);
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    pub fn id(&self) -> i64 {
        self.id
    }

    /// This interpreter as an [`Interpreter`], for code that serves any interpreter.
    ///
    /// # Examples
    ///
    /// ```
    /// gilguard::initialize()?;
    /// let interpreter = gilguard::SubInterpreter::new()?;
    /// assert!(!interpreter.interpreter().is_main());
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    pub fn interpreter(&self) -> Interpreter {
        Interpreter::named(self.interp, self.epoch, self.id)
    }

    /// Whether the interpreter has its own GIL.
    ///
    /// # Examples
    ///
    /// ```
    /// gilguard::initialize()?;
    /// assert!(!gilguard::SubInterpreter::new()?.has_own_gil());
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    pub fn has_own_gil(&self) -> bool {
        self.own_gil
    }

    /// Ends the interpreter (`Py_EndInterpreter`), from any thread, leaving that thread as
    /// it was.
    ///
    /// `&mut self` means no [`ThreadStateHandle`] borrows the interpreter, so ending one in
    /// use does not compile. What lifetimes cannot see is checked: a handle leaked with
    /// `mem::forget`, or Python daemon threads still running in the interpreter, leave
    /// thread states CPython would abort on (`Py_EndInterpreter: not the last thread`).
    /// Before checking, non-daemon `threading` threads are joined and the interpreter's
    /// `atexit` callbacks run (where extension modules stop their native threads), as
    /// `Py_EndInterpreter` itself does.
    ///
    /// # Errors
    ///
    /// [`GilError::InterpreterInUse`] in the cases above (the interpreter keeps running and
    /// may be ended later, but its `atexit` callbacks have run), [`GilError::InterpreterEnded`] if it already was,
    /// [`GilError::Finalizing`] or [`GilError::NotInitialized`].
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::{GilError, SubInterpreter};
    ///
    /// gilguard::initialize()?;
    /// let mut interpreter = SubInterpreter::new()?;
    /// interpreter.end()?;
    /// assert_eq!(interpreter.end(), Err(GilError::InterpreterEnded));
    /// assert_eq!(interpreter.thread_state().unwrap_err(), GilError::InterpreterEnded);
    /// # Ok::<(), GilError>(())
    /// ```
    ///
    /// Ending while a handle exists does not compile:
    ///
    /// ```compile_fail
    /// let mut interpreter = gilguard::SubInterpreter::new().unwrap();
    /// let handle = interpreter.thread_state().unwrap();
    /// interpreter.end().unwrap(); // `interpreter` is borrowed by `handle`
    /// drop(handle);
    /// ```
    pub fn end(&mut self) -> Result<(), GilError> {
        self.check_usable()?;
        runtime::check_can_attach()?;
        if self.thread_states.load(Ordering::Acquire) != 0 {
            return Err(GilError::InterpreterInUse);
        }
        // Attached to the main interpreter around the end: before 3.12 `Py_EndInterpreter`
        // returns holding the GIL with no thread state, and swapping the main thread state
        // back in is the only way to hand that GIL on. The closure form puts back whatever
        // this thread was attached to.
        with_gil::try_with_gil(|| self.end_from_main())??;
        self.ended = true;
        Ok(())
    }

    /// Ends the interpreter; the thread is attached to the main interpreter, and is again
    /// on return.
    ///
    /// `Py_EndInterpreter` needs a current thread state of the interpreter on this thread.
    /// On the thread `threading` considers the interpreter's main thread, that must be the
    /// first thread state: `threading`'s shutdown expects its lock still held. On any other
    /// thread, a new thread state is made, and the first one deleted just before the end.
    fn end_from_main(&self) -> Result<(), GilError> {
        let main_tstate = ffi::current_thread_state();
        let first = self.first.as_ptr();
        // SAFETY: reads the calling thread's identifier.
        let on_main_thread =
            unsafe { pyo3_ffi::PyThread_get_thread_ident() } == self.main_thread_ident;
        // SAFETY: the interpreter and `first` are alive, and `first` is detached; creating
        // a thread state needs no GIL. The main thread state is detached here and
        // re-attached below, on every path.
        let tstate = unsafe {
            let tstate = if on_main_thread {
                first
            } else {
                pyo3_ffi::PyThreadState_New(self.interp.as_ptr())
            };
            pyo3_ffi::PyEval_SaveThread();
            pyo3_ffi::PyEval_RestoreThread(tstate);
            tstate
        };
        let ended = {
            // Recorded so that Python code run by the shutdown (atexit handlers,
            // finalizers) that calls back into Rust sees where the thread is.
            let _ending = stack::Scope {
                index: stack::push(Frame::new(Entry::Nested, tstate, false)),
                likely: Entry::Nested,
            };
            wind_down();
            if self.only_thread_states(tstate) {
                // SAFETY: the interpreter's GIL is held. Unless it is `tstate`, `first` is
                // detached, of this interpreter and unused: it may be cleared and deleted
                // from here. Clearing a thread state other than the current one is what
                // CPython itself does when it ends an interpreter (`zapthreads`); with the
                // GIL held nothing else touches it. Then `tstate` is current, frameless and
                // the only thread state: `Py_EndInterpreter`'s preconditions.
                unsafe {
                    if tstate != first {
                        pyo3_ffi::PyThreadState_Clear(first);
                        pyo3_ffi::PyThreadState_Delete(first);
                    }
                    pyo3_ffi::Py_EndInterpreter(tstate);
                }
                true
            } else if tstate == first {
                // SAFETY: attached above; detaching releases the interpreter's GIL.
                unsafe { pyo3_ffi::PyEval_SaveThread() };
                false
            } else {
                // SAFETY: `tstate` is attached and was created above; clearing and deleting
                // it detaches the thread and releases the interpreter's GIL.
                unsafe {
                    pyo3_ffi::PyThreadState_Clear(tstate);
                    pyo3_ffi::PyThreadState_DeleteCurrent();
                }
                false
            }
        };
        // SAFETY: no thread state is current now, and `main_tstate` was detached above.
        unsafe { reattach(main_tstate, ended) };
        if ended {
            Ok(())
        } else {
            Err(GilError::InterpreterInUse)
        }
    }

    /// Refuses use of an interpreter that was ended, or destroyed with its runtime.
    pub(crate) fn check_usable(&self) -> Result<(), GilError> {
        if self.ended || self.epoch != runtime::epoch() {
            Err(GilError::InterpreterEnded)
        } else {
            Ok(())
        }
    }

    pub(crate) fn thread_state_created(&self) {
        self.thread_states.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn thread_state_deleted(&self) {
        self.thread_states.fetch_sub(1, Ordering::AcqRel);
    }

    /// Whether the interpreter's thread states are `tstate` and `first` and nothing else.
    /// The caller holds the interpreter's GIL.
    fn only_thread_states(&self, tstate: *mut PyThreadState) -> bool {
        let expected = if tstate == self.first.as_ptr() { 1 } else { 2 };
        // SAFETY: the interpreter is alive and its GIL is held; reading the list of its
        // thread states is what `Py_EndInterpreter` does for the same check.
        unsafe {
            let mut count = 0;
            let mut next = pyo3_ffi::PyInterpreterState_ThreadHead(self.interp.as_ptr());
            while !next.is_null() {
                if next != tstate && next != self.first.as_ptr() {
                    return false;
                }
                count += 1;
                next = pyo3_ffi::PyThreadState_Next(next);
            }
            count == expected
        }
    }
}

impl Drop for SubInterpreter {
    fn drop(&mut self) {
        // Refusals leave the interpreter running: better than `Fatal Python error`.
        let _ = self.end();
    }
}

/// Creates the interpreter. The thread is attached to the main interpreter, and is again
/// on return.
fn create(config: &InterpreterConfig) -> Result<SubInterpreter, GilError> {
    let epoch = runtime::epoch();
    if !runtime::watch_finalization(epoch) {
        return Err(GilError::Unsupported(
            "no Py_AtExit slot left to watch finalization",
        ));
    }
    let main_tstate = ffi::current_thread_state();
    let first = new_interpreter(config)?;
    import_threading();
    // SAFETY: `Py_NewInterpreter*` attached `first`, the new interpreter's first thread
    // state, and detached `main_tstate`. `first` is detached (releasing the new
    // interpreter's GIL) and kept for the interpreter's life; re-attaching the main thread
    // state also makes it this thread's `PyGILState` state again on 3.12+, so `first` is
    // bound to no thread.
    let (interp, id) = unsafe {
        let interp = pyo3_ffi::PyThreadState_GetInterpreter(first);
        let id = pyo3_ffi::PyInterpreterState_GetID(interp);
        pyo3_ffi::PyEval_SaveThread();
        pyo3_ffi::PyEval_RestoreThread(main_tstate);
        (interp, id)
    };
    Ok(SubInterpreter {
        interp: NonNull::new(interp).expect("a new interpreter"),
        id,
        first: NonNull::new(first).expect("checked by new_interpreter"),
        // SAFETY: reads the calling thread's identifier.
        main_thread_ident: unsafe { pyo3_ffi::PyThread_get_thread_ident() },
        thread_states: AtomicUsize::new(0),
        epoch,
        own_gil: config.own_gil,
        ended: false,
    })
}

/// `Py_NewInterpreterFromConfig`, or `Py_NewInterpreter` before 3.12. On success the new
/// interpreter's first thread state is attached; on failure CPython re-attached the caller's.
fn new_interpreter(config: &InterpreterConfig) -> Result<*mut PyThreadState, GilError> {
    #[cfg(Py_3_12)]
    {
        let ffi_config = config.to_ffi();
        let mut tstate = core::ptr::null_mut();
        // SAFETY: attached to the main interpreter; `ffi_config` passed `check()`.
        let status = unsafe { pyo3_ffi::Py_NewInterpreterFromConfig(&mut tstate, &ffi_config) };
        // SAFETY: `PyStatus_Exception` only inspects the value.
        if unsafe { pyo3_ffi::PyStatus_Exception(status) } != 0 || tstate.is_null() {
            return Err(GilError::CreationFailed(ffi::status_message(&status)));
        }
        Ok(tstate)
    }
    #[cfg(not(Py_3_12))]
    {
        debug_assert!(config.is_legacy(), "checked by the caller");
        // SAFETY: attached to the main interpreter, as required before 3.12.
        let tstate = unsafe { pyo3_ffi::Py_NewInterpreter() };
        if tstate.is_null() {
            return Err(GilError::CreationFailed("Py_NewInterpreter failed".into()));
        }
        Ok(tstate)
    }
}

/// Imports `threading` while the interpreter's first thread state is current.
///
/// `threading` takes the thread that first imports it for the interpreter's main thread,
/// and before 3.13 its shutdown fails (`assert tlock.locked()`, then no thread is joined)
/// if that thread's thread state is gone by then. Thread handles come and go; the first
/// thread state lives until the end, so it must be the one.
fn import_threading() {
    // SAFETY: attached to the new interpreter; the module reference is released, and a
    // failure is reported as unraisable rather than left pending.
    unsafe {
        let threading = pyo3_ffi::PyImport_ImportModule(c"threading".as_ptr());
        if threading.is_null() {
            pyo3_ffi::PyErr_WriteUnraisable(core::ptr::null_mut());
        } else {
            pyo3_ffi::Py_DECREF(threading);
        }
    }
}

/// Joins the interpreter's non-daemon `threading` threads and runs its `atexit` callbacks,
/// which is what `Py_EndInterpreter` does before it checks that no other thread state is
/// left: extension modules stop their own native threads from `atexit` callbacks, so the
/// check is only meaningful after them.
///
/// `threading._shutdown` cannot be called for the join: `Py_EndInterpreter` calls it
/// again, and on 3.12 a second call in a sub-interpreter fails (`assert tlock is not
/// None`). `atexit._run_exitfuncs` clears the callbacks it runs, so they run once.
fn wind_down() {
    const JOIN: &core::ffi::CStr = c"
import sys
threading = sys.modules.get('threading')
while threading is not None:
    pending = [
        thread for thread in threading.enumerate()
        if not thread.daemon
        and thread is not threading.main_thread()
        and thread.ident != threading.get_ident()
    ]
    if not pending:
        break
    for thread in pending:
        thread.join()
import atexit
atexit._run_exitfuncs()
";
    // SAFETY: attached to the interpreter being ended; the code runs in a fresh namespace,
    // every new reference is released, and a failure is reported as unraisable.
    unsafe {
        let namespace = pyo3_ffi::PyDict_New();
        if namespace.is_null()
            || pyo3_ffi::PyDict_SetItemString(
                namespace,
                c"__builtins__".as_ptr(),
                pyo3_ffi::PyEval_GetBuiltins(),
            ) != 0
        {
            pyo3_ffi::PyErr_WriteUnraisable(core::ptr::null_mut());
            pyo3_ffi::Py_XDECREF(namespace);
            return;
        }
        let result =
            pyo3_ffi::PyRun_String(JOIN.as_ptr(), pyo3_ffi::Py_file_input, namespace, namespace);
        if result.is_null() {
            pyo3_ffi::PyErr_WriteUnraisable(core::ptr::null_mut());
        } else {
            pyo3_ffi::Py_DECREF(result);
        }
        pyo3_ffi::Py_DECREF(namespace);
    }
}

/// Re-attaches the main thread state after the thread state attached in its place was
/// deleted (`PyThreadState_DeleteCurrent`, which releases the interpreter's GIL) or, if
/// `ended`, consumed by `Py_EndInterpreter`.
///
/// # Safety
/// No thread state is current; `main_tstate` is a detached thread state of this thread.
unsafe fn reattach(main_tstate: *mut PyThreadState, ended: bool) {
    // Before 3.12 `Py_EndInterpreter` returns with the (single) GIL still held: swapping
    // only sets the current pointer, so the GIL is held on behalf of `main_tstate`, as if
    // `PyEval_RestoreThread(main_tstate)` had run.
    #[cfg(not(Py_3_12))]
    if ended {
        // SAFETY: the GIL is held with nothing current, and `main_tstate` is detached.
        unsafe { pyo3_ffi::PyThreadState_Swap(main_tstate) };
        return;
    }
    #[cfg(Py_3_12)]
    let _ = ended;
    // SAFETY: detached with the GIL released (caller); `main_tstate` is this thread's.
    unsafe { pyo3_ffi::PyEval_RestoreThread(main_tstate) };
}
