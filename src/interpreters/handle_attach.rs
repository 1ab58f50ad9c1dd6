//! Attaching a [`ThreadStateHandle`]: [`attach`](ThreadStateHandle::attach),
//! [`attach_suspending`](ThreadStateHandle::attach_suspending) and
//! [`run`](ThreadStateHandle::run), fast paths first. On a detached thread the fast path is
//! one count for the shutdown gate, `PyEval_RestoreThread` and the frame.

#![allow(unsafe_code, reason = "attaches handles' thread states")]

use crate::context::attached::attached_thread_state;
use crate::context::frame::{Entry, Frame, FrameIndex};
use crate::error::GilError;
use crate::guards::attach::Suspend;
use crate::guards::stack;
use crate::interpreters::attach_guard::AttachGuard;
use crate::interpreters::deferred;
use crate::interpreters::interpreter::Interpreter;
use crate::interpreters::thread_state::ThreadStateHandle;
use crate::raw::ffi;
use crate::runtime::shutdown;
#[cfg(feature = "stats")]
use crate::stats::{AttachKind, interp::InterpKey, record as stats};

/// Whether undoing an attach on a detached thread binds `PyGILState` to the main
/// interpreter again (3.12+): for another interpreter than the main one, when nothing
/// attaches the main one right after (see `context::frame::BIND_MAIN_AGAIN`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RebindMain {
    WhenUndone,
    No,
}

impl ThreadStateHandle<'_> {
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
    #[cfg_attr(feature = "stats", track_caller)]
    pub fn attach(&self) -> Result<AttachGuard<'_>, GilError> {
        #[cfg(feature = "stats")]
        crate::stats::record::enter(core::panic::Location::caller());
        Ok(AttachGuard::new(
            self.enter(Suspend::Refused, self.rebind_main())?,
        ))
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
    #[cfg_attr(feature = "stats", track_caller)]
    pub unsafe fn attach_suspending(&self) -> Result<AttachGuard<'_>, GilError> {
        #[cfg(feature = "stats")]
        crate::stats::record::enter(core::panic::Location::caller());
        let guard = AttachGuard::new(self.enter(Suspend::Allowed, self.rebind_main())?);
        // Suspending ended the other interpreter's hold.
        #[cfg(feature = "stats")]
        crate::stats::record::settled();
        Ok(guard)
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
    /// A guard made inside `f` that outlives it is ended when `f` returns ([closure forms are
    /// scopes](crate#the-soundness-model)).
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
    #[cfg_attr(feature = "stats", track_caller)]
    pub fn run<F, T>(&self, f: F) -> Result<T, GilError>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        #[cfg(feature = "stats")]
        crate::stats::record::enter(core::panic::Location::caller());
        if !self.elsewhere {
            return self.run_as(RebindMain::No, f);
        }
        // Another interpreter: `pyo3` must count the thread detached while it is attached.
        crate::guards::outside_pyo3(|main_reattached_after| {
            // The binding is restored with the main interpreter right after, if `pyo3`
            // detached it.
            let rebind = if main_reattached_after {
                RebindMain::No
            } else {
                RebindMain::WhenUndone
            };
            self.run_as(rebind, || {
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

    /// [`run`](Self::run), rebinding as for [`enter`](Self::enter).
    #[inline(always)]
    fn run_as<T>(&self, rebind: RebindMain, f: impl FnOnce() -> T) -> Result<T, GilError> {
        let index = self.enter(Suspend::Allowed, rebind)?;
        #[cfg(feature = "stats")]
        crate::stats::record::settled();
        let value = stack::in_scope::<stack::KeptFrame, T>(index, f);
        #[cfg(feature = "stats")]
        crate::stats::record::settled();
        Ok(value)
    }

    /// Attaches this thread state and pushes the frame that records it. Always inlined: the
    /// caller then gets the frame's index in a register rather than a `Result` in memory.
    #[inline(always)]
    fn enter(&self, suspend: Suspend, rebind: RebindMain) -> Result<FrameIndex, GilError> {
        let tstate = self.tstate.as_ptr();
        let current = ffi::current_thread_state();
        if current.is_null() {
            // `check_usable` in one load, once counted: only the runtime can be gone or
            // finalizing, since the interpreter outlives the handle (a borrowed
            // `SubInterpreter` is ended only by the shutdown, which the gate keeps out; an
            // `Interpreter` by `thread_state`'s contract).
            if shutdown::admit_handle_if_open(self.guards, self.fast_epoch) {
                return Ok(self.attach_detached());
            }
        } else if let Some(index) =
            stack::push_nested(current, |top| top.attached() == tstate, None)
        {
            #[cfg(feature = "stats")]
            stats::nested(self.stats_key());
            return Ok(index);
        }
        self.enter_slow(suspend, rebind)
    }

    /// Attaches this thread state on a detached thread and pushes its frame.
    ///
    /// Callers have checked that the thread is detached (before 3.12: that no thread holds
    /// the GIL), counted the attach for the shutdown gate and checked
    /// [`check_usable`](Self::check_usable), or done both with
    /// [`admit_handle_if_open`](crate::runtime::shutdown::admit_handle_if_open).
    #[inline(always)]
    fn attach_detached(&self) -> FrameIndex {
        let tstate = self.tstate.as_ptr();
        // Pushed first, as in `guards::attach::reattach_kept_first`.
        let index = stack::push(Frame::handle(Entry::Kept, tstate));
        #[cfg(feature = "stats")]
        let waiting = stats::before_attach(self.stats_key());
        // SAFETY: detached; `tstate` is this thread's, live, of a live interpreter (the caller's
        // checks). `Entry::Kept` undoes this by detaching it and uncounting the attach.
        unsafe { ffi::restore_thread(tstate) };
        #[cfg(feature = "stats")]
        stats::attached(waiting, AttachKind::Handle);
        index
    }

    /// [`enter`](Self::enter) when the fast paths do not apply.
    #[cold]
    #[inline(never)]
    fn enter_slow(&self, suspend: Suspend, rebind: RebindMain) -> Result<FrameIndex, GilError> {
        let tstate = self.tstate.as_ptr();
        if ffi::current_thread_state().is_null() {
            // Nothing attached (before 3.12: no thread holds the GIL at all).
            self.check_usable()?;
            self.admit()?;
            let index = self.attach_detached();
            #[cfg(Py_3_12)]
            if rebind == RebindMain::WhenUndone {
                stack::bind_main_again_when_undone(index);
            }
            #[cfg(not(Py_3_12))]
            let _ = rebind;
            return Ok(index);
        }
        let current = attached_thread_state();
        if current == tstate {
            #[cfg(feature = "stats")]
            stats::nested(self.stats_key());
            return Ok(stack::push(Frame::handle(Entry::Nested, tstate)));
        }
        self.check_usable()?;
        if !current.is_null() && suspend == Suspend::Refused {
            return Err(GilError::AttachedElsewhere);
        }
        self.admit()?;
        let mut frame = Frame::handle(Entry::Kept, tstate);
        if !current.is_null() {
            #[cfg(feature = "stats")]
            let detaching = stats::detaching();
            // SAFETY: `current` is attached to this thread; re-attached when the frame is
            // undone (`Frame::suspended`).
            frame.suspended = unsafe { ffi::save_thread() };
            // SAFETY: `current` was attached to this thread, so it is live.
            #[cfg(feature = "stats")]
            stats::released(detaching, || unsafe { InterpKey::of(current) });
        }
        #[cfg(feature = "stats")]
        let waiting = stats::before_attach(self.stats_key());
        // SAFETY: detached now; `tstate` is this thread's live state of a live interpreter.
        // `Entry::Kept` undoes this by detaching it and uncounting the attach.
        unsafe { ffi::restore_thread(tstate) };
        #[cfg(feature = "stats")]
        stats::attached(waiting, AttachKind::Handle);
        Ok(stack::push(frame))
    }

    /// Which interpreter the statistics count this handle's attaches in.
    #[cfg(feature = "stats")]
    #[inline(always)]
    fn stats_key(&self) -> InterpKey {
        InterpKey {
            id: self.interpreter.id(),
            epoch: self.interpreter.epoch(),
        }
    }

    /// How this handle's attaches from `attach` rebind `PyGILState` (see [`RebindMain`]).
    #[inline(always)]
    fn rebind_main(&self) -> RebindMain {
        if self.elsewhere {
            RebindMain::WhenUndone
        } else {
            RebindMain::No
        }
    }
}
