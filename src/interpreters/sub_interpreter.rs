//! [`SubInterpreter`]: create, share between threads, and end a sub-interpreter.

#![allow(unsafe_code, reason = "creates sub-interpreters")]

use core::ptr::NonNull;
use core::sync::atomic::Ordering;
use std::sync::Arc;

use crate::raw::ffi::PyThreadState;

use crate::error::GilError;
use crate::guards::{attach, stack, with_gil};
use crate::interpreters::interpreter::Interpreter;
use crate::interpreters::interpreter_config::InterpreterConfig;
use crate::interpreters::interpreter_end::Record;
use crate::raw::epoch::epoch;
use crate::raw::ffi;
use crate::runtime;

/// A sub-interpreter: its own modules, globals and `sys` state inside this process, and on
/// CPython 3.12+ optionally its own GIL (PEP 684), so that Python code runs in parallel
/// with the main interpreter and with other such interpreters.
///
/// A `SubInterpreter` only names an interpreter; it is `Send + Sync`, so threads share it by
/// reference (scoped threads, or an `Arc`). Each thread that runs Python in it creates its
/// own [`ThreadStateHandle`](crate::ThreadStateHandle) with [`thread_state`](Self::thread_state); the handle borrows
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
    /// What ending it needs, shared with the shutdown, which ends it if it is still alive
    /// then (see `interpreter_end`).
    record: Arc<Record>,
    /// `PyInterpreterState_GetID`, read at creation: valid after the interpreter is gone.
    id: i64,
    own_gil: bool,
}

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
        SubInterpreter::with_config(InterpreterConfig::legacy())
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
    /// match SubInterpreter::with_config(InterpreterConfig::isolated()) {
    ///     Ok(interpreter) => assert!(interpreter.has_own_gil()), // CPython 3.12+
    ///     Err(GilError::Unsupported(_)) => {}                     // CPython 3.9-3.11
    ///     Err(other) => panic!("{other}"),
    /// }
    /// # Ok::<(), GilError>(())
    /// ```
    pub fn with_config(config: InterpreterConfig) -> Result<SubInterpreter, GilError> {
        config.check()?;
        if cfg!(not(Py_3_12)) && !config.is_legacy() {
            return Err(GilError::Unsupported(
                "sub-interpreter settings other than InterpreterConfig::legacy() \
                 (own GIL, own allocator, restrictions) need CPython 3.12",
            ));
        }
        // Attached to the main interpreter for the creation: before 3.12 CPython requires
        // a GIL, and the closure form puts back whatever the thread was attached to. The new
        // interpreter runs Python code, during which `pyo3` must count the thread detached.
        crate::guards::outside_pyo3(|_| with_gil::try_with_gil(|| create(config)))?
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
    #[must_use]
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
    #[must_use]
    pub fn interpreter(&self) -> Interpreter {
        Interpreter::named(self.record.interp, self.record.epoch, self.id)
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
    #[must_use]
    pub fn has_own_gil(&self) -> bool {
        self.own_gil
    }

    /// Ends the interpreter (`Py_EndInterpreter`), from any thread, leaving that thread as
    /// it was.
    ///
    /// `&mut self` means no [`ThreadStateHandle`](crate::ThreadStateHandle) borrows the interpreter, so ending one in
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
    /// ```compile_fail,E0502
    /// let mut interpreter = gilguard::SubInterpreter::new().unwrap();
    /// let handle = interpreter.thread_state().unwrap();
    /// interpreter.end().unwrap(); // `interpreter` is borrowed by `handle`
    /// drop(handle);
    /// ```
    pub fn end(&mut self) -> Result<(), GilError> {
        self.check_usable()?;
        runtime::check_can_attach()?;
        if self.record.thread_states.load(Ordering::Acquire) != 0 {
            return Err(GilError::InterpreterInUse);
        }
        // Attached to the main interpreter around the end: before 3.12 `Py_EndInterpreter`
        // returns holding the GIL with no thread state, and swapping the main thread state
        // back in is the only way to hand that GIL on. The closure form puts back whatever
        // this thread was attached to.
        crate::guards::outside_pyo3(|_| with_gil::try_with_gil(|| self.record.end(&[])))?
    }

    /// Refuses use of an interpreter that was ended, or destroyed with its runtime.
    pub(crate) fn check_usable(&self) -> Result<(), GilError> {
        if self.record.is_usable() {
            Ok(())
        } else {
            Err(GilError::InterpreterEnded)
        }
    }

    pub(crate) fn thread_state_created(&self) {
        self.record.thread_states.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn thread_state_deleted(&self) {
        self.record.thread_states.fetch_sub(1, Ordering::AcqRel);
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
fn create(config: InterpreterConfig) -> Result<SubInterpreter, GilError> {
    // Also checked here, as `try_with_gil` does not check an attached thread: Python code
    // run while the runtime finalizes (a `__del__`, a later `atexit` callback) must not create
    // an interpreter no shutdown will end (3.11 aborts with `new_interpreter: Py_Initialize
    // must be called first`; 3.12+ fail with a less helpful message).
    runtime::check_can_attach()?;
    let epoch = epoch();
    if !runtime::watch_finalization(epoch) {
        return Err(runtime::no_exit_slot());
    }
    // In a runtime the host started, the shutdown callback that ends this interpreter may not
    // be registered yet.
    // SAFETY: attached to the main interpreter (the caller).
    unsafe { attach::install_hooks() };
    let main_tstate = ffi::current_thread_state();
    // The new interpreter runs Python code (`site`, `threading`) attached to a thread state
    // made inside the call, which may call back into Rust.
    let first = stack::calling_python(|| {
        let first = new_interpreter(&config)?;
        import_threading();
        Ok(first)
    })?;
    // SAFETY: `Py_NewInterpreter*` attached `first` in place of `main_tstate`: swapped back
    // here (on 3.12+ rebinding `PyGILState` to `main_tstate`, so `first` is bound to no thread).
    let (interp, id) = unsafe {
        let interp = ffi::interpreter_of(first);
        let id = ffi::interpreter_id(interp);
        ffi::save_thread();
        ffi::restore_thread(main_tstate);
        (interp, id)
    };
    let record = Record::register(
        NonNull::new(interp).expect("a new interpreter"),
        NonNull::new(first).expect("checked by new_interpreter"),
        ffi::thread_ident(),
        epoch,
    );
    Ok(SubInterpreter {
        record,
        id,
        own_gil: config.own_gil,
    })
}

/// `Py_NewInterpreterFromConfig`, or `Py_NewInterpreter` before 3.12. On success the new
/// interpreter's first thread state is attached; on failure CPython re-attached the caller's.
fn new_interpreter(config: &InterpreterConfig) -> Result<*mut PyThreadState, GilError> {
    // SAFETY: attached to the main interpreter (the caller); `config` passed `check()`.
    #[cfg(Py_3_12)]
    let created = unsafe { ffi::new_interpreter(&config.to_ffi()) };
    #[cfg(not(Py_3_12))]
    let created = {
        debug_assert!(config.is_legacy(), "checked by the caller");
        // SAFETY: attached to the main interpreter (the caller).
        unsafe { ffi::new_interpreter() }
    };
    created.map_err(GilError::CreationFailed)
}

/// Imports `threading` while the interpreter's first thread state is current.
///
/// `threading` takes the thread that first imports it for the interpreter's main thread,
/// and before 3.13 its shutdown fails (`assert tlock.locked()`, then no thread is joined)
/// if that thread's thread state is gone by then. Thread handles come and go; the first
/// thread state lives until the end, so it must be the one.
fn import_threading() {
    // SAFETY: attached to the new interpreter, with no exception set.
    unsafe { ffi::import(c"threading") };
}
