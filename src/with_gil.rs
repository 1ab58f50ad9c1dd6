//! [`WithGil`] and [`with_gil`]: attach this thread to the main interpreter.

use core::marker::PhantomData;

use crate::error::GilError;
use crate::marker::ThreadBound;
use crate::stack::{self, Entry, Frame};
use crate::{ffi, native_thread, runtime};

/// Holds the GIL of the main interpreter, on any thread, until dropped.
///
/// This is the C++ `with_gil` / `gil_scoped_acquire` idiom, built on `PyGILState_Ensure`
/// semantics with three differences:
///
/// * **Cheap nesting.** When this crate already attached the thread, creating another
///   `WithGil` makes no C call beyond one pointer read that confirms nothing outside the
///   crate detached the thread in between.
/// * **Native threads keep their thread state.** On a thread Python did not create, the
///   first acquisition creates a thread state and later ones re-attach it, instead of
///   creating and destroying one every time. It is deleted when the thread exits.
/// * **Always the main interpreter.** A `PyGILState` thread state that belongs to a
///   sub-interpreter is never used. A thread attached to a sub-interpreter is refused with
///   [`GilError::AttachedElsewhere`]: [`with_gil`] detaches that interpreter for the call
///   and re-attaches it afterwards, but a guard could be leaked, leaving the code that
///   attached the sub-interpreter running in the main one.
///
/// A thread that is already attached keeps working even while the runtime finalizes (so
/// finalizers that call back into Rust still can); only *attaching* is refused then.
///
/// Guards may be dropped in any order: see the crate documentation on the frame stack.
///
/// # Examples
///
/// ```
/// use gilguard::{WithGil, is_attached};
///
/// gilguard::initialize()?;
/// std::thread::spawn(|| {
///     // A thread Python never heard of.
///     assert!(!is_attached());
///     {
///         let _gil = WithGil::acquire();
///         assert!(is_attached());
///         // ... call the C API ...
///     }
///     assert!(!is_attached());
/// })
/// .join()
/// .unwrap();
/// # Ok::<(), gilguard::GilError>(())
/// ```
#[must_use = "the GIL is released as soon as the guard is dropped"]
#[derive(Debug)]
pub struct WithGil {
    frame: u32,
    _thread: ThreadBound,
}

static_assertions::assert_not_impl_any!(WithGil: Send, Sync);

impl WithGil {
    /// Attaches this thread to the main interpreter, or confirms that it already is.
    ///
    /// # Panics
    ///
    /// If Python is not initialized or is finalizing and the thread is not attached yet, or
    /// if the thread is attached to a sub-interpreter. Use [`WithGil::try_acquire`] to get a
    /// [`GilError`] instead.
    ///
    /// # Examples
    ///
    /// ```
    /// gilguard::initialize()?;
    /// let outer = gilguard::WithGil::acquire();
    /// let inner = gilguard::WithGil::acquire(); // nested: no C call
    /// drop(outer); // any order: the thread stays attached until `inner` is gone too
    /// assert!(gilguard::is_attached());
    /// drop(inner);
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    #[track_caller]
    pub fn acquire() -> WithGil {
        match WithGil::try_acquire() {
            Ok(guard) => guard,
            Err(error) => {
                panic!("WithGil::acquire: {error} (use WithGil::try_acquire to handle this)")
            }
        }
    }

    /// Attaches this thread to the main interpreter, or returns why it cannot.
    ///
    /// # Errors
    ///
    /// [`GilError::NotInitialized`] before [`initialize`](crate::initialize) (or after
    /// finalization), [`GilError::Finalizing`] while the runtime finalizes. Neither is
    /// returned when the thread is already attached to the main interpreter.
    /// [`GilError::AttachedElsewhere`] when the thread is attached to a sub-interpreter.
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::{GilError, WithGil};
    ///
    /// match WithGil::try_acquire() {
    ///     Ok(_gil) => { /* call Python */ }
    ///     Err(GilError::NotInitialized | GilError::Finalizing) => { /* skip the callback */ }
    ///     Err(other) => panic!("{other}"),
    /// }
    /// ```
    pub fn try_acquire() -> Result<WithGil, GilError> {
        let frame = enter(false)?;
        Ok(WithGil {
            frame: stack::push(frame),
            _thread: PhantomData,
        })
    }
}

impl Drop for WithGil {
    fn drop(&mut self) {
        stack::finish(self.frame);
    }
}

/// Runs `f` with this thread attached to the main interpreter.
///
/// When `f` returns or panics, the thread is returned exactly to the state it was in: the
/// GIL released again, or, if the thread was attached to a sub-interpreter, that
/// interpreter re-attached.
///
/// # Panics
///
/// If Python is not initialized or is finalizing and the thread is not attached yet (use
/// [`try_with_gil`] to get a [`GilError`] instead). Panics of `f` propagate after the thread
/// state is restored.
///
/// # Examples
///
/// ```
/// gilguard::initialize()?;
/// let version = gilguard::with_gil(|| {
///     // SAFETY: attached, and `Py_GetVersion` returns a static C string.
///     unsafe { std::ffi::CStr::from_ptr(pyo3_ffi::Py_GetVersion()) }
///         .to_string_lossy()
///         .into_owned()
/// });
/// assert!(version.starts_with('3'));
/// # Ok::<(), gilguard::GilError>(())
/// ```
#[track_caller]
pub fn with_gil<T>(f: impl FnOnce() -> T) -> T {
    match try_with_gil(f) {
        Ok(value) => value,
        Err(error) => panic!("with_gil: {error} (use try_with_gil to handle this)"),
    }
}

/// Runs `f` with this thread attached to the main interpreter, or returns why it cannot be.
///
/// # Errors
///
/// [`GilError::NotInitialized`] or [`GilError::Finalizing`], as for
/// [`WithGil::try_acquire`]; `f` is not called then.
///
/// # Examples
///
/// ```
/// gilguard::initialize()?;
/// let answer = gilguard::try_with_gil(|| 42)?;
/// assert_eq!(answer, 42);
/// # Ok::<(), gilguard::GilError>(())
/// ```
pub fn try_with_gil<T>(f: impl FnOnce() -> T) -> Result<T, GilError> {
    let _gil = stack::Scope::push(enter(true)?);
    Ok(f())
}

/// The frame for attaching this thread to the main interpreter, with the change made.
/// `suspend` allows detaching a sub-interpreter first, which only closure forms may do.
#[inline]
pub(crate) fn enter(suspend: bool) -> Result<Frame, GilError> {
    if let Some(top) = stack::top() {
        let tstate = top.attached();
        // The stack is a cache: code outside this crate may have detached the thread since
        // the top frame was pushed, so confirm with CPython before trusting it.
        if top.main && !tstate.is_null() && ffi::current_thread_state() == tstate {
            return Ok(Frame::new(Entry::Nested, tstate, true));
        }
    }
    enter_slow(suspend)
}

#[cold]
fn enter_slow(suspend: bool) -> Result<Frame, GilError> {
    let current = runtime::attached_thread_state();
    if !current.is_null() {
        // SAFETY: a thread state attached to this thread is live.
        if unsafe { ffi::is_main_interpreter_state(current) } {
            return Ok(Frame::new(Entry::Nested, current, true));
        }
        if !suspend {
            return Err(GilError::AttachedElsewhere);
        }
    }
    runtime::check_can_attach()?;
    if current.is_null() {
        // SAFETY: initialized, not finalizing (checked above) and detached.
        return Ok(unsafe { attach_detached() });
    }
    // Attached to a sub-interpreter: suspend it for as long as the frame lives.
    // SAFETY: `current` is attached to this thread. Pairs with the `PyEval_RestoreThread`
    // of `Frame::suspended` when the frame is undone.
    let suspended = unsafe { pyo3_ffi::PyEval_SaveThread() };
    // SAFETY: initialized and not finalizing (checked above), detached just now.
    let mut frame = unsafe { attach_detached() };
    frame.suspended = suspended;
    Ok(frame)
}

/// Attaches this detached thread to a main-interpreter thread state.
///
/// # Safety
/// The runtime is initialized and not finalizing, and this thread is detached.
unsafe fn attach_detached() -> Frame {
    let mut own = stack::released_main_thread_state();
    if own.is_null() {
        own = native_thread::kept_thread_state();
    }
    if !own.is_null() {
        // SAFETY: `own` is a live main-interpreter state of this thread that is detached (a
        // frame of ours released it, or it is the state kept for this thread in the
        // current epoch), and the thread is detached. `Entry::Restored` undoes this with
        // `PyEval_SaveThread`.
        unsafe { pyo3_ffi::PyEval_RestoreThread(own) };
        return Frame::new(Entry::Restored, own, true);
    }
    let gilstate = ffi::gilstate_thread_state();
    if gilstate.is_null() {
        // SAFETY: forwarded from the caller, and no `PyGILState` thread state exists.
        return unsafe { native_thread::attach_new() };
    }
    // SAFETY: the thread state `PyGILState` binds to this thread is live.
    if unsafe { ffi::is_main_interpreter_state(gilstate) } {
        // SAFETY: initialized and detached; attaches `gilstate`. Paired with
        // `PyGILState_Release` by `Entry::Ensured`.
        let state = unsafe { pyo3_ffi::PyGILState_Ensure() };
        return Frame::new(Entry::Ensured(state), gilstate, true);
    }
    // This thread's `PyGILState` state belongs to a sub-interpreter (CPython binds the
    // first thread state created on a thread, whatever its interpreter), so
    // `PyGILState_Ensure` would attach *that* interpreter. Use a state of our own instead.
    // SAFETY: the main interpreter exists (initialized) and creating a thread state needs
    // no GIL; the new state is attached to this detached thread, and `Entry::Deleting`
    // clears and deletes it on undo.
    unsafe {
        let tstate = pyo3_ffi::PyThreadState_New(ffi::main_interpreter());
        pyo3_ffi::PyEval_RestoreThread(tstate);
        Frame::new(Entry::Deleting, tstate, true)
    }
}
