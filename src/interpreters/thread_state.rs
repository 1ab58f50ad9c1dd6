//! [`ThreadStateHandle`]: one thread's thread state in one interpreter, made and deleted
//! here; attaching it is in `handle_attach`.

#![allow(
    unsafe_code,
    reason = "creates, attaches and deletes handles' thread states"
)]

use core::ptr::NonNull;

use crate::raw::ffi::PyThreadState;

use crate::context::attached::attached_thread_state;
use crate::context::claims::InterpreterLife;
use crate::context::frame::{Entry, Frame};
use crate::context::guard_count::ThreadGuards;
use crate::context::queries;
use crate::context::thread;
use crate::error::GilError;
use crate::guards::{stack, start};
use crate::interpreters::interpreter::Interpreter;
use crate::interpreters::interpreter_end;
use crate::interpreters::sub_interpreter::SubInterpreter;
use crate::marker::CPythonThreadState;
use crate::raw::ffi;
use crate::runtime::{self, native_thread, shutdown};

/// The thread state of one (thread, interpreter) pair: created on the current thread for a
/// [`SubInterpreter`] (or any [`Interpreter`]), used by that thread only, and reused for
/// every attach.
///
/// `PyGILState_*` cannot serve sub-interpreters (it only knows one thread state per
/// thread), so a thread that runs Python in a sub-interpreter keeps a handle and attaches it
/// when it needs the interpreter: [`run`](Self::run) for a closure, [`attach`](Self::attach)
/// for a guard. Attaching takes that interpreter's GIL (its own GIL on 3.12+, if it has one).
///
/// A thread has at most one handle per interpreter. A handle made from a [`SubInterpreter`]
/// borrows it, so the interpreter outlives it; dropping the handle clears and deletes the thread state on
/// this thread, with the interpreter's GIL, whatever this thread is attached to at the time.
///
/// # Examples
///
/// ```
/// use gilguard::SubInterpreter;
///
/// gilguard::initialize()?;
/// let interpreter = SubInterpreter::new()?;
/// let handle = interpreter.thread_state()?;
/// for _ in 0..3 {
///     let _attached = handle.attach()?; // the same thread state every time
///     assert!(handle.is_attached());
/// }
/// assert!(!handle.is_attached());
/// # Ok::<(), gilguard::GilError>(())
/// ```
#[must_use = "the thread state is deleted as soon as the handle is dropped"]
#[derive(Debug)]
pub struct ThreadStateHandle<'i> {
    pub(super) interpreter: Interpreter,
    /// The owner whose count of live handles this one is in, if the crate owns it.
    pub(super) owner: Option<&'i SubInterpreter>,
    pub(super) tstate: NonNull<PyThreadState>,
    /// This thread's count of guards for the shutdown gate, which counts the handle's
    /// attaches: the shutdown may end the interpreter, and must know no thread is attaching.
    pub(super) guards: &'static ThreadGuards,
    /// Whether the interpreter is not the main one: `pyo3` must not count the thread
    /// attached while it is.
    pub(super) elsewhere: bool,
    /// The epoch the detached fast path compares with the open shutdown gate: the
    /// interpreter's, or on 3.12+ for another interpreter than the main one
    /// [`NEVER`](crate::raw::epoch::NEVER), which sends its attaches to the slow path, where
    /// their frames learn to bind the main interpreter again when undone.
    pub(super) fast_epoch: u64,
    _thread: CPythonThreadState,
}

static_assertions::assert_not_impl_any!(ThreadStateHandle<'static>: Send, Sync);

impl<'i> ThreadStateHandle<'i> {
    /// Creates this thread's thread state for `interpreter` (`PyThreadState_New`); it is not
    /// attached yet.
    ///
    /// The first handle of a runtime that neither [`initialize`](crate::initialize) nor a
    /// thread Python did not create has prepared (a runtime the host started) attaches to
    /// the main interpreter to register the crate's `atexit`, after-fork and
    /// end-of-finalization callbacks. That runs Python code, which may let other threads
    /// take the GIL for a moment; an exception the caller has pending is kept.
    ///
    /// # Errors
    ///
    /// [`GilError::ThreadStateExists`] if this thread already has a handle for the
    /// interpreter, [`GilError::InterpreterEnded`], [`GilError::NotInitialized`],
    /// [`GilError::Finalizing`], or [`GilError::Unsupported`] if other code took every
    /// `Py_AtExit` slot (the handle could not tell when the runtime is finalized).
    ///
    /// # Panics
    ///
    /// If CPython cannot allocate the thread state (out of memory).
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::{GilError, SubInterpreter, ThreadStateHandle};
    ///
    /// gilguard::initialize()?;
    /// let interpreter = SubInterpreter::new()?;
    /// let handle = ThreadStateHandle::new(&interpreter)?;
    /// assert_eq!(ThreadStateHandle::new(&interpreter).unwrap_err(), GilError::ThreadStateExists);
    /// # drop(handle);
    /// # Ok::<(), GilError>(())
    /// ```
    pub fn new(interpreter: &'i SubInterpreter) -> Result<ThreadStateHandle<'i>, GilError> {
        interpreter.check_usable()?;
        // SAFETY: the handle borrows `interpreter`, which cannot be ended meanwhile.
        unsafe { ThreadStateHandle::create(interpreter.interpreter(), Some(interpreter)) }
    }

    /// # Safety
    /// `interpreter` stays alive while the handle exists (see [`Interpreter::thread_state`]).
    pub(crate) unsafe fn create(
        interpreter: Interpreter,
        owner: Option<&'i SubInterpreter>,
    ) -> Result<ThreadStateHandle<'i>, GilError> {
        interpreter.check_epoch()?;
        runtime::check_can_attach()?;
        // Handles must learn when the runtime is finalized, even in a process where nothing
        // else of this crate attached yet.
        start::ensure_watched()?;
        let guards = native_thread::thread_guards_or_register();
        // Counted while the thread state is made: the shutdown, which may end the
        // interpreter, either refuses this or waits for it.
        shutdown::admit_handle(guards).map_err(|()| GilError::Finalizing)?;
        let _counted = scopeguard::guard((), |()| shutdown::dismiss(guards));
        if let Some(owner) = owner {
            owner.check_usable()?;
        }
        let life = interpreter_end::record_of(interpreter.as_ptr())
            .map(|record| record as std::sync::Arc<dyn InterpreterLife>);
        let claimed = thread::with(|context| {
            (context.claims).claim(interpreter.as_ptr(), life, interpreter.epoch())
        });
        if !claimed {
            return Err(GilError::ThreadStateExists);
        }
        let elsewhere = !interpreter.is_main();
        if elsewhere {
            // So that `PyGILState` keeps, or gets back, a main-interpreter thread state.
            native_thread::keep_one();
        }
        // SAFETY: the interpreter is alive (caller, and not ended at shutdown: the count
        // above); creating a thread state needs no GIL and binds it to this thread.
        let tstate = unsafe { ffi::new_thread_state(interpreter.as_ptr()) };
        let Some(tstate) = NonNull::new(tstate) else {
            thread::with(|context| context.claims.unclaim(interpreter.as_ptr()));
            panic!("PyThreadState_New could not allocate a thread state");
        };
        thread::with(|context| {
            (context.claims).record_thread_state(interpreter.as_ptr(), tstate.as_ptr());
        });
        interpreter_end::handle_state_created(interpreter.as_ptr(), tstate.as_ptr());
        if let Some(owner) = owner {
            owner.thread_state_created();
        }
        Ok(ThreadStateHandle {
            interpreter,
            owner,
            tstate,
            guards,
            elsewhere,
            fast_epoch: if elsewhere && cfg!(Py_3_12) {
                crate::raw::epoch::NEVER
            } else {
                interpreter.epoch()
            },
            _thread: CPythonThreadState::NEW,
        })
    }

    /// The interpreter this thread state belongs to.
    ///
    /// # Examples
    ///
    /// ```
    /// gilguard::initialize()?;
    /// let interpreter = gilguard::SubInterpreter::new()?;
    /// let handle = interpreter.thread_state()?;
    /// assert_eq!(handle.interpreter(), interpreter.interpreter());
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    #[must_use]
    pub fn interpreter(&self) -> Interpreter {
        self.interpreter
    }

    /// Whether this thread state is the one attached to this thread right now.
    ///
    /// # Examples
    ///
    /// ```
    /// gilguard::initialize()?;
    /// let interpreter = gilguard::SubInterpreter::new()?;
    /// let handle = interpreter.thread_state()?;
    /// assert!(!handle.is_attached());
    /// let attached = handle.attach()?;
    /// assert!(handle.is_attached());
    /// # drop(attached);
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    #[must_use]
    pub fn is_attached(&self) -> bool {
        ffi::current_thread_state() == self.tstate.as_ptr()
    }

    /// Counts an attach for the shutdown gate, unless shutdown has begun.
    pub(super) fn admit(&self) -> Result<(), GilError> {
        shutdown::admit_handle(self.guards).map_err(|()| GilError::Finalizing)
    }

    /// Refuses attaching when the interpreter is gone or the runtime cannot be attached to.
    #[inline]
    pub(super) fn check_usable(&self) -> Result<(), GilError> {
        match self.owner {
            Some(owner) => owner.check_usable()?,
            None => self.interpreter.check_epoch()?,
        }
        runtime::check_not_finalizing()
    }
}

impl Drop for ThreadStateHandle<'_> {
    fn drop(&mut self) {
        let tstate = self.tstate.as_ptr();
        if ffi::current_thread_state() == tstate || queries::names(tstate) {
            // Still in use (attached by foreign code, such as a `PyGILState_Ensure` that found
            // it, or by a leaked guard): left alone, counted as alive by the interpreter (ending
            // it would abort), and still claimed, so that no second handle is made beside it.
            return;
        }
        // Given up once the thread state is gone: Python code that clearing it runs may call
        // back into this crate and must find the thread state still this thread's.
        let _claim = scopeguard::guard(self.interpreter.as_ptr(), |interpreter| {
            thread::with(|context| context.claims.unclaim(interpreter));
        });
        // Counted like an attach, as in `create`.
        if self.check_usable().is_err() || shutdown::admit_handle(self.guards).is_err() {
            // The interpreter was ended (and the thread state with it), or the runtime is
            // finalizing, which frees it: nothing to touch.
            return;
        }
        let delete = || {
            let previous = attached_thread_state();
            let mut frame = Frame::handle(Entry::Deleting, tstate);
            // SAFETY: `tstate` is this thread's, detached (no frame uses it), of a live
            // interpreter; what is attached is suspended, and re-attached after the deletion.
            unsafe {
                if !previous.is_null() {
                    frame.suspended = ffi::save_thread();
                }
                ffi::restore_thread(tstate);
            }
            // Undone at once: cleared (finalizers may run, and see it attached), the guards
            // its finalizers left on it ended, then deleted.
            stack::finish(stack::push(frame));
        };
        if !self.elsewhere {
            delete();
        } else {
            // Clearing runs Python code of another interpreter: `pyo3` must count the thread
            // detached meanwhile.
            crate::guards::outside_pyo3(|_| delete());
        }
        shutdown::dismiss(self.guards);
        interpreter_end::handle_state_deleted(tstate);
        if let Some(owner) = self.owner {
            owner.thread_state_deleted();
        }
    }
}

impl Interpreter {
    /// Creates this thread's [`ThreadStateHandle`] for the interpreter.
    ///
    /// # Safety
    ///
    /// The interpreter must stay alive while the handle exists: whoever owns it must not
    /// end it before the handle is dropped (an extension module typically stops its worker
    /// threads from an `atexit` hook or when its objects are deallocated, both of which run
    /// before the interpreter is ended). The main interpreter always qualifies: it lives
    /// until the runtime finalizes, which handles detect.
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
    /// let main = gilguard::Interpreter::main()?;
    /// // SAFETY: the main interpreter outlives the handle.
    /// let handle = unsafe { main.thread_state() }?;
    /// handle.run(|| assert!(gilguard::is_attached()))?;
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    pub unsafe fn thread_state(&self) -> Result<ThreadStateHandle<'static>, GilError> {
        // SAFETY: forwarded from the caller.
        unsafe { ThreadStateHandle::create(*self, None) }
    }
}

impl SubInterpreter {
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
}
