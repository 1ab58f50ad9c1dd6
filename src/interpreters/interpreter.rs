//! [`Interpreter`]: names an interpreter this crate may not own (the main one, or the one
//! an extension module was imported into), so that native threads can attach to it.

#![allow(
    unsafe_code,
    reason = "asks CPython which interpreter is current or main"
)]

use core::ptr::NonNull;

use crate::raw::ffi::PyInterpreterState;

use crate::context::attached;
use crate::error::GilError;
use crate::guards::start;
use crate::raw::epoch::epoch;
use crate::raw::ffi;
use crate::runtime;

/// An interpreter of the running Python, named by address: the main one, the one this
/// thread is attached to, or a [`SubInterpreter`](crate::SubInterpreter)'s.
///
/// Extension modules need this: a module imported into a sub-interpreter that starts a
/// native worker thread must call back into *that* interpreter, not the main one (which is
/// all [`WithGil`](crate::WithGil) knows). Capture `Interpreter::current()` while called
/// from Python, send it to the worker (it is `Send + Sync + Copy`), and create a
/// [`ThreadStateHandle`](crate::ThreadStateHandle) for it there.
///
/// An `Interpreter` does not keep the interpreter alive: whoever owns it can end it. That
/// is why [`thread_state`](Self::thread_state) is `unsafe`.
///
/// Two `Interpreter`s are equal when they name the same interpreter of the same runtime:
/// address, id and the runtime's life (an address reused by a later interpreter, or by a
/// re-initialized runtime, compares unequal). `Hash` agrees, so an `Interpreter` can key a
/// map of per-interpreter state.
///
/// # Examples
///
/// ```
/// use gilguard::{Interpreter, with_gil};
///
/// gilguard::initialize()?;
/// let here = with_gil(Interpreter::current)?;
/// assert!(here.is_main());
/// std::thread::spawn(move || {
///     // SAFETY: the main interpreter lives until the runtime finalizes, which the handle
///     // detects.
///     let handle = unsafe { here.thread_state() }?;
///     handle.run(|| assert!(gilguard::is_attached()))
/// })
/// .join()
/// .unwrap()?;
/// # Ok::<(), gilguard::GilError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interpreter {
    interp: NonNull<PyInterpreterState>,
    /// The runtime epoch it was named in: a finalized runtime takes every interpreter along.
    epoch: u64,
    /// Read when named, so that [`id`](Self::id) never touches an interpreter that may be
    /// gone.
    id: i64,
}

// SAFETY: an address and numbers, dereferenced only by CPython on a thread attached to it,
// or in `thread_state`, whose caller guarantees the interpreter is alive.
unsafe impl Send for Interpreter {}
// SAFETY: as above; it has no interior mutability.
unsafe impl Sync for Interpreter {}

impl Interpreter {
    /// The main interpreter.
    ///
    /// # Errors
    ///
    /// [`GilError::NotInitialized`] before the runtime is initialized, or after it was
    /// finalized; [`GilError::Finalizing`] while it finalizes, the first time a runtime the
    /// host started is named (this crate then attaches to watch it); and
    /// [`GilError::Unsupported`] if other code took every `Py_AtExit` slot.
    ///
    /// # Examples
    ///
    /// ```
    /// gilguard::initialize()?;
    /// assert_eq!(gilguard::Interpreter::main()?.id(), 0);
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    pub fn main() -> Result<Interpreter, GilError> {
        if !ffi::is_initialized() {
            return Err(GilError::NotInitialized);
        }
        // Named in a watched runtime, so that a later one is told apart (its main
        // interpreter may have the same address).
        start::ensure_watched()?;
        let interp = NonNull::new(ffi::main_interpreter()).ok_or(GilError::NotInitialized)?;
        // The main interpreter's id is always 0.
        Ok(Interpreter::named(interp, epoch(), 0))
    }

    /// The interpreter this thread is attached to.
    ///
    /// # Errors
    ///
    /// [`GilError::NotAttached`] if the thread is not attached, and
    /// [`GilError::Unsupported`] if other code took every `Py_AtExit` slot (the crate could
    /// not tell this runtime's interpreters from those of a later one).
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::{GilError, Interpreter};
    ///
    /// gilguard::initialize()?;
    /// assert_eq!(Interpreter::current(), Err(GilError::NotAttached));
    /// let interpreter = gilguard::SubInterpreter::new()?;
    /// let handle = interpreter.thread_state()?;
    /// let inside = handle.run(Interpreter::current)??;
    /// assert_eq!(inside, interpreter.interpreter());
    /// # Ok::<(), GilError>(())
    /// ```
    pub fn current() -> Result<Interpreter, GilError> {
        let tstate = attached::attached_thread_state();
        if tstate.is_null() {
            return Err(GilError::NotAttached);
        }
        // Named in a watched runtime, as in `main`: addresses and ids repeat in a later one.
        let epoch = runtime::watched_epoch()?;
        // SAFETY: a thread state attached to this thread is live, and so its interpreter.
        let (interp, id) = unsafe {
            let interp = ffi::interpreter_of(tstate);
            (interp, ffi::interpreter_id(interp))
        };
        let interp = NonNull::new(interp).expect("a thread state has an interpreter");
        Ok(Interpreter::named(interp, epoch, id))
    }

    /// `interp`, alive in the runtime of `epoch`, whose id is `id`.
    pub(crate) fn named(interp: NonNull<PyInterpreterState>, epoch: u64, id: i64) -> Interpreter {
        Interpreter { interp, epoch, id }
    }

    /// The interpreter's id (`PyInterpreterState_GetID`); the main interpreter is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// gilguard::initialize()?;
    /// assert_eq!(gilguard::Interpreter::main()?.id(), 0);
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    #[must_use]
    pub fn id(&self) -> i64 {
        self.id
    }

    /// Whether this is the main interpreter.
    ///
    /// # Examples
    ///
    /// ```
    /// gilguard::initialize()?;
    /// assert!(gilguard::Interpreter::main()?.is_main());
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    #[must_use]
    pub fn is_main(&self) -> bool {
        self.interp.as_ptr() == ffi::main_interpreter()
    }

    pub(crate) fn as_ptr(&self) -> *mut PyInterpreterState {
        self.interp.as_ptr()
    }

    /// The [runtime epoch](crate::raw::epoch) it was named in.
    #[inline(always)]
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether the runtime it was named in has been finalized (as far as the crate saw, which
    /// is always for a runtime it records identities in: see `runtime::watched_epoch`).
    pub(crate) fn is_of_a_finalized_runtime(&self) -> bool {
        self.epoch != epoch() || !ffi::is_initialized()
    }

    /// Refuses an interpreter from a runtime that has been finalized since it was named.
    pub(crate) fn check_epoch(&self) -> Result<(), GilError> {
        if self.epoch == epoch() {
            Ok(())
        } else {
            Err(GilError::InterpreterEnded)
        }
    }
}

static_assertions::assert_impl_all!(Interpreter: Send, Sync, Copy, Eq, core::hash::Hash);
