//! [`ThreadStateHandle`]: one thread's thread state in one sub-interpreter, and
//! [`AttachGuard`], which makes it current.

#![allow(
    unsafe_code,
    reason = "creates, attaches and deletes handles' thread states"
)]

use core::ptr::NonNull;

use crate::raw::ffi::PyThreadState;

use crate::error::GilError;
use crate::guards::stack::{self, Entry, Frame, NO_FRAME};
use crate::guards::{attached, start};
use crate::interpreters::attach_guard::AttachGuard;
use crate::interpreters::deferred;
use crate::interpreters::handle_claims::{claim, record_thread_state, unclaim};
use crate::interpreters::interpreter::Interpreter;
use crate::interpreters::sub_interpreter::SubInterpreter;
use crate::marker::CPythonThreadState;
use crate::raw::ffi;
use crate::runtime::shutdown::{self, ThreadGuards};
use crate::runtime::{self, native_thread};

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
    interpreter: Interpreter,
    /// The owner whose count of live handles this one is in, if the crate owns it.
    owner: Option<&'i SubInterpreter>,
    tstate: NonNull<PyThreadState>,
    /// This thread's count of guards for the shutdown gate, which counts the handle's
    /// attaches: the shutdown may end the interpreter, and must know no thread is attaching.
    guards: &'static ThreadGuards,
    /// Whether the interpreter is not the main one: `pyo3` must not count the thread
    /// attached while it is.
    elsewhere: bool,
    /// The epoch the detached fast path compares with the open shutdown gate: the
    /// interpreter's, or on 3.12+ for another interpreter than the main one
    /// [`NEVER`](crate::raw::epoch::NEVER), which sends its attaches to the slow path, where
    /// their frames learn to bind the main interpreter again when undone.
    fast_epoch: u64,
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
        if !claim(&interpreter) {
            return Err(GilError::ThreadStateExists);
        }
        let elsewhere = !interpreter.is_main();
        if elsewhere {
            // So that `PyGILState` keeps, or gets back, a main-interpreter thread state.
            native_thread::keep_one();
        }
        let key = interpreter.as_ptr() as usize;
        // SAFETY: the interpreter is alive (caller, and not ended at shutdown: the count
        // above); creating a thread state needs no GIL and binds it to this thread.
        let tstate = unsafe { ffi::new_thread_state(interpreter.as_ptr()) };
        let Some(tstate) = NonNull::new(tstate) else {
            unclaim(key);
            panic!("PyThreadState_New could not allocate a thread state");
        };
        record_thread_state(key, tstate.as_ptr());
        crate::interpreters::interpreter_end::handle_state_created(
            interpreter.as_ptr(),
            tstate.as_ptr(),
        );
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

    /// Attaches this thread state, taking its interpreter's GIL, until the guard is dropped.
    /// Attaching again while attached is cheap and nests.
    ///
    /// # Errors
    ///
    /// [`GilError::AttachedElsewhere`] if the thread is attached to another thread state
    /// (for instance the main interpreter's): a guard must not suspend it, since leaking the
    /// guard would leave that code running in this interpreter. Use [`run`](Self::run),
    /// which restores it exactly. Also [`GilError::Finalizing`], [`GilError::InterpreterEnded`]
    /// and [`GilError::NotInitialized`], as for [`run`](Self::run).
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::{GilError, SubInterpreter, with_gil};
    ///
    /// gilguard::initialize()?;
    /// let interpreter = SubInterpreter::new()?;
    /// let handle = interpreter.thread_state()?;
    /// {
    ///     let _attached = handle.attach()?;
    ///     // SAFETY: attached to `interpreter`.
    ///     unsafe { pyo3_ffi::PyRun_SimpleString(c"answer = 42".as_ptr()) };
    /// }
    /// with_gil(|| assert_eq!(handle.attach().unwrap_err(), GilError::AttachedElsewhere));
    /// # Ok::<(), GilError>(())
    /// ```
    #[inline]
    pub fn attach(&self) -> Result<AttachGuard<'_>, GilError> {
        Ok(AttachGuard::new(self.enter(false, self.elsewhere)?))
    }

    /// Attaches this thread state, first detaching whatever thread state is attached (of
    /// another interpreter, usually), until the guard is dropped; then that one is attached
    /// again.
    ///
    /// # Safety
    ///
    /// As for [`WithoutGil::new`](crate::WithoutGil::new), since the previously attached
    /// thread state is released: until the guard is dropped, nothing on this thread may
    /// rely on that attachment (objects of the other interpreter, a `pyo3::Python` token),
    /// and the guard must not be leaked. With `pyo3` on the thread, `pyo3` still counts it
    /// as attached (it cannot be told): no `pyo3` value may be used or dropped, and no
    /// `Python::attach` run, until the guard is dropped ([`run`](Self::run) has no such
    /// rule).
    ///
    /// # Errors
    ///
    /// [`GilError::Finalizing`], [`GilError::InterpreterEnded`], [`GilError::NotInitialized`]
    /// (after the runtime was finalized).
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::{SubInterpreter, with_gil};
    ///
    /// gilguard::initialize()?;
    /// let interpreter = SubInterpreter::new()?;
    /// let handle = interpreter.thread_state()?;
    /// with_gil(|| {
    ///     // SAFETY: no main-interpreter object is used until the guard is dropped.
    ///     let _attached = unsafe { handle.attach_suspending() }.unwrap();
    ///     assert!(handle.is_attached());
    /// });
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    pub unsafe fn attach_suspending(&self) -> Result<AttachGuard<'_>, GilError> {
        Ok(AttachGuard::new(self.enter(true, self.elsewhere)?))
    }

    /// Runs `f` with this thread state attached, then puts the thread back exactly as it was
    /// (detached, or attached to the thread state that was current, of whichever
    /// interpreter), also when `f` panics.
    ///
    /// Like [`without_gil`](crate::without_gil), and `pyo3`'s `Python::detach` for the same
    /// reason, `f` and its result must be `Send`: the interpreter the thread was attached to
    /// is released while `f` runs, so nothing that belongs to it (a `pyo3::Python` token, a
    /// `Bound`, a borrowed object) can be captured, and nothing of this interpreter can be
    /// returned into it. Reach the main interpreter from inside with
    /// [`with_gil`](crate::with_gil), which switches there and back.
    ///
    /// # Errors
    ///
    /// [`GilError::Finalizing`], [`GilError::InterpreterEnded`], [`GilError::NotInitialized`]
    /// (after the runtime was finalized); `f` is not called then.
    ///
    /// # Guards that outlive the closure
    ///
    /// A guard created inside `f` that outlives it (leaked, stored in a thread-local, or
    /// returned) is ended when `f` returns: the caller gets back exactly the state it had, and
    /// the guard's own drop, if it comes, does nothing (see the guide, "Other owners").
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::{Interpreter, SubInterpreter, with_gil};
    ///
    /// gilguard::initialize()?;
    /// let interpreter = SubInterpreter::new()?;
    /// let handle = interpreter.thread_state()?;
    /// let id = interpreter.id();
    /// with_gil(|| {
    ///     // From the main interpreter into the sub-interpreter and back.
    ///     let inside = handle.run(|| Interpreter::current().unwrap().id()).unwrap();
    ///     assert_eq!(inside, id);
    /// });
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    ///
    /// What belongs to the interpreter the thread leaves cannot be captured:
    ///
    /// ```compile_fail,E0277
    /// # let interpreter = gilguard::SubInterpreter::new().unwrap();
    /// # let handle = interpreter.thread_state().unwrap();
    /// gilguard::with_gil(|| {
    ///     let main = gilguard::WithGil::acquire();
    ///     handle.run(|| drop(&main)) // `&WithGil` is not `Send`
    /// });
    /// ```
    #[inline]
    pub fn run<F, T>(&self, f: F) -> Result<T, GilError>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        if !self.elsewhere {
            return self.run_as(false, f);
        }
        // Another interpreter: `pyo3` must count the thread detached while it is attached.
        crate::guards::outside_pyo3(|main_reattached_after| {
            // The binding is restored with the main interpreter right after, if `pyo3`
            // detached it.
            self.run_as(!main_reattached_after, || {
                let value = f();
                // References of this interpreter dropped where it could not be attached.
                if let Ok(here) = Interpreter::current() {
                    // SAFETY: attached to `here`, named just now.
                    unsafe { deferred::release_here(here) };
                }
                value
            })
        })
    }

    /// [`run`](Self::run); `bind_main` as for [`enter`](Self::enter).
    #[inline(always)]
    fn run_as<T>(&self, bind_main: bool, f: impl FnOnce() -> T) -> Result<T, GilError> {
        let _attached = stack::Scope {
            index: self.enter(true, bind_main)?,
            likely: Entry::Kept,
        };
        Ok(f())
    }

    /// Attaches this thread state and pushes the frame that records it. `suspend` allows
    /// detaching another thread state first, which only closure forms may do safely.
    ///
    /// Always inlined: the caller then gets the frame's index in a register rather than a
    /// `Result` in memory, and the detached path adds to the raw calls only CPython's
    /// answer, one load and the frame (measured in docs/performance-log.md).
    ///
    /// `bind_main`: this is another interpreter than the main one, and nothing attaches the
    /// main one right after; an attach on a detached thread then binds `PyGILState` to the
    /// main interpreter again when it is undone (3.12+; see `stack::BIND_MAIN_AGAIN`).
    #[inline(always)]
    fn enter(&self, suspend: bool, bind_main: bool) -> Result<u32, GilError> {
        let tstate = self.tstate.as_ptr();
        let current = ffi::current_thread_state();
        if current.is_null() {
            // What `check_usable` asks, in one load, once the attach is counted: the
            // interpreter cannot have ended while the handle lives (a `SubInterpreter` owner
            // is borrowed, so only the shutdown can end it, and the gate keeps the attach
            // out of that; an `Interpreter`'s is the promise of its unsafe `thread_state`),
            // so only its runtime can be gone or finalizing.
            if shutdown::admit_handle_if_open(self.guards, self.fast_epoch) {
                return Ok(self.attach_detached());
            }
        } else if let Some(index) =
            stack::push_nested(current, |top| top.attached() == tstate, NO_FRAME)
        {
            return Ok(index);
        }
        self.enter_slow(suspend, bind_main)
    }

    /// Attaches this thread state on a detached thread and pushes its frame.
    ///
    /// Callers have checked that the thread is detached (before 3.12: that no thread holds
    /// the GIL), counted the attach for the shutdown gate and checked
    /// [`check_usable`](Self::check_usable), or done both with
    /// [`admit_handle_if_open`](crate::runtime::shutdown::admit_handle_if_open).
    #[inline(always)]
    fn attach_detached(&self) -> u32 {
        let tstate = self.tstate.as_ptr();
        // SAFETY: detached (caller); `tstate` is this thread's live state of a live
        // interpreter (`check_usable` or `admit_handle_if_open`, by the caller). `Entry::Kept`
        // undoes this by detaching it and uncounting the attach.
        unsafe { ffi::restore_thread(tstate) };
        stack::push(Frame::new(Entry::Kept, tstate, false, true))
    }

    /// [`enter`](Self::enter) when the fast paths do not apply.
    #[cold]
    #[inline(never)]
    fn enter_slow(&self, suspend: bool, bind_main: bool) -> Result<u32, GilError> {
        let tstate = self.tstate.as_ptr();
        if ffi::current_thread_state().is_null() {
            // Nothing attached (before 3.12: no thread holds the GIL at all).
            self.check_usable()?;
            self.admit()?;
            let index = self.attach_detached();
            #[cfg(Py_3_12)]
            if bind_main {
                stack::bind_main_again_when_undone(index);
            }
            #[cfg(not(Py_3_12))]
            let _ = bind_main;
            return Ok(index);
        }
        let current = attached::attached_thread_state();
        if current == tstate {
            return Ok(stack::push(Frame::new(Entry::Nested, tstate, false, true)));
        }
        self.check_usable()?;
        if !current.is_null() && !suspend {
            return Err(GilError::AttachedElsewhere);
        }
        self.admit()?;
        let mut frame = Frame::new(Entry::Kept, tstate, false, true);
        if !current.is_null() {
            // SAFETY: `current` is attached to this thread; re-attached when the frame is
            // undone (`Frame::suspended`).
            frame.suspended = unsafe { ffi::save_thread() };
        }
        // SAFETY: detached now; `tstate` is this thread's live state of a live interpreter.
        // `Entry::Kept` undoes this by detaching it and uncounting the attach.
        unsafe { ffi::restore_thread(tstate) };
        Ok(stack::push(frame))
    }

    /// Counts an attach for the shutdown gate, unless shutdown has begun.
    fn admit(&self) -> Result<(), GilError> {
        shutdown::admit_handle(self.guards).map_err(|()| GilError::Finalizing)
    }

    /// Refuses attaching when the interpreter is gone or the runtime cannot be attached to.
    #[inline]
    fn check_usable(&self) -> Result<(), GilError> {
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
        if ffi::current_thread_state() == tstate || stack::names(tstate) {
            // Still in use (attached right now by code outside this crate, such as a
            // `PyGILState_Ensure` that found it, or used by a leaked guard). It is left
            // alone; the interpreter keeps counting it as alive (ending it would abort), and
            // this thread keeps its claim on the interpreter, so no second handle is made
            // beside it.
            return;
        }
        // Given up once the thread state is gone: Python code that clearing it runs may call
        // back into this crate and must find the thread state still this thread's.
        let _claim = scopeguard::guard(self.interpreter.as_ptr() as usize, unclaim);
        // Counted like an attach: the shutdown, which may end the interpreter, either
        // refuses this or waits for it.
        if self.check_usable().is_err() || shutdown::admit_handle(self.guards).is_err() {
            // The interpreter was ended (and the thread state with it), or the runtime is
            // finalizing, which frees it: nothing to touch.
            return;
        }
        let delete = || {
            let previous = attached::attached_thread_state();
            let mut frame = Frame::new(Entry::Deleting, tstate, false, true);
            // SAFETY: `tstate` is this thread's, detached (no frame uses it), and its
            // interpreter is alive. Whatever is attached is suspended and re-attached after
            // the deletion.
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
        crate::interpreters::interpreter_end::handle_state_deleted(tstate);
        if let Some(owner) = self.owner {
            owner.thread_state_deleted();
        }
    }
}
