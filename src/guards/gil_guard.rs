//! [`GilGuard`]: a stack of acquire and release frames owned by one value.

#![allow(unsafe_code, reason = "`GilGuard::release` is `unsafe`")]

use crate::context::frame::FrameIndex;
use crate::error::GilError;
use crate::guards::attach::{Suspend, attach_main};
use crate::guards::release::release;
use crate::guards::stack;
use crate::marker::CPythonThreadState;
use crate::raw::ffi;

/// A guard that can acquire, release and restore repeatedly, and undoes everything it did
/// when dropped.
///
/// This is the C++ `gil_guard` idiom: code that must switch between holding and not
/// holding the GIL several times (acquire, call Python, release around a blocking call,
/// restore, ...) keeps one value instead of nesting scopes. Each [`acquire`](Self::acquire)
/// or [`release`](Self::release) pushes a frame; [`restore`](Self::restore) undoes the most
/// recent one; dropping the guard undoes all that are left, most recent first.
///
/// Frames live on the thread's frame stack together with those of every other guard, so
/// interleaving a `GilGuard` with [`WithGil`](crate::WithGil) and
/// [`WithoutGil`](crate::WithoutGil) values keeps CPython's last-in, first-out order,
/// whatever the order of drops and restores. Creating and using a guard allocates nothing
/// unless the thread nests more than 16 frames.
///
/// # Examples
///
/// ```
/// use gilguard::{GilGuard, is_attached};
///
/// gilguard::initialize()?;
/// let mut guard = GilGuard::new();
/// guard.acquire();
/// assert!(guard.owns_gil());
/// // ... call Python ...
/// // SAFETY: nothing that needs the GIL runs until the matching `restore`.
/// unsafe { guard.release() }?;
/// assert!(!is_attached());
/// // ... block on I/O ...
/// guard.restore()?;
/// assert!(guard.owns_gil());
/// drop(guard); // releases the GIL acquired above
/// assert!(!is_attached());
/// # Ok::<(), gilguard::GilError>(())
/// ```
#[clippy::has_significant_drop]
#[must_use = "dropping the guard undoes every frame it pushed"]
#[derive(Debug)]
pub struct GilGuard {
    /// The newest frame this guard pushed, if any; each links to the one before.
    top: Option<FrameIndex>,
    _thread: CPythonThreadState,
}

static_assertions::assert_not_impl_any!(GilGuard: Send, Sync);

impl GilGuard {
    /// A guard with no frames: creating it changes nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// let guard = gilguard::GilGuard::new();
    /// assert_eq!(guard.depth(), 0);
    /// assert!(!guard.owns_gil());
    /// ```
    pub const fn new() -> GilGuard {
        GilGuard {
            top: None,
            _thread: CPythonThreadState::NEW,
        }
    }

    /// Pushes a frame that attaches this thread to the main interpreter, like
    /// [`WithGil::acquire`](crate::WithGil::acquire).
    ///
    /// # Panics
    ///
    /// If Python is not initialized or is finalizing and the thread is not attached yet, or
    /// if the thread is attached to a sub-interpreter. Use [`GilGuard::try_acquire`] to get
    /// a [`GilError`] instead.
    ///
    /// # Examples
    ///
    /// ```
    /// gilguard::initialize()?;
    /// let mut guard = gilguard::GilGuard::new();
    /// guard.acquire();
    /// guard.acquire(); // nested: cheap
    /// assert_eq!(guard.depth(), 2);
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    #[track_caller]
    #[inline]
    pub fn acquire(&mut self) {
        if let Err(error) = self.try_acquire() {
            crate::error::refused("GilGuard::acquire", "GilGuard::try_acquire", error);
        }
    }

    /// Pushes a frame that attaches this thread to the main interpreter, or returns why it
    /// cannot.
    ///
    /// # Errors
    ///
    /// As [`WithGil::try_acquire`](crate::WithGil::try_acquire); no frame is pushed then.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut guard = gilguard::GilGuard::new();
    /// if guard.try_acquire().is_err() {
    ///     // Python is not running: nothing was pushed.
    ///     assert_eq!(guard.depth(), 0);
    /// }
    /// ```
    #[inline]
    #[cfg_attr(feature = "stats", track_caller)]
    pub fn try_acquire(&mut self) -> Result<(), GilError> {
        #[cfg(feature = "stats")]
        crate::stats::record::enter(core::panic::Location::caller());
        self.top = Some(attach_main(Suspend::Refused, self.top)?);
        Ok(())
    }

    /// Pushes a frame that detaches this thread, like
    /// [`WithoutGil::new`](crate::WithoutGil::new).
    ///
    /// # Safety
    ///
    /// As for [`WithoutGil::new`](crate::WithoutGil::new): until this frame is restored
    /// (or the guard dropped), nothing on this thread may rely on the GIL without
    /// acquiring it, and the guard must not be leaked while the frame is on it.
    ///
    /// # Errors
    ///
    /// [`GilError::NotAttached`] if the thread is not attached; no frame is pushed then.
    ///
    /// # Examples
    ///
    /// ```
    /// gilguard::initialize()?;
    /// let mut guard = gilguard::GilGuard::new();
    /// guard.acquire();
    /// // SAFETY: no Python access until the restore below.
    /// unsafe { guard.release() }?;
    /// assert!(!gilguard::is_attached());
    /// guard.restore()?;
    /// assert!(gilguard::is_attached());
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    #[inline]
    #[cfg_attr(feature = "stats", track_caller)]
    pub unsafe fn release(&mut self) -> Result<(), GilError> {
        #[cfg(feature = "stats")]
        crate::stats::record::enter(core::panic::Location::caller());
        self.top = Some(release(self.top)?);
        #[cfg(feature = "stats")]
        crate::stats::record::settled();
        Ok(())
    }

    /// Undoes this guard's most recent frame: re-attaches after a
    /// [`release`](Self::release), releases after an [`acquire`](Self::acquire).
    ///
    /// If guards created after that frame are still alive, the thread stays in the state
    /// they asked for, and the frame is undone as soon as the last of them is dropped.
    ///
    /// # Errors
    ///
    /// [`GilError::NothingToRestore`] if the guard has no frame left.
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::{GilError, GilGuard};
    ///
    /// gilguard::initialize()?;
    /// let mut guard = GilGuard::new();
    /// guard.acquire();
    /// guard.restore()?;
    /// assert_eq!(guard.restore(), Err(GilError::NothingToRestore));
    /// # Ok::<(), GilError>(())
    /// ```
    #[inline]
    pub fn restore(&mut self) -> Result<(), GilError> {
        let Some(top) = self.top else {
            return Err(GilError::NothingToRestore);
        };
        self.top = stack::finish(top);
        #[cfg(feature = "stats")]
        crate::stats::record::settled();
        Ok(())
    }

    /// Whether this guard's most recent frame acquired the GIL and this thread holds it
    /// now, as opposed to: no frame, a release frame on top, or a frame pushed later by
    /// another guard that detached the thread.
    ///
    /// The answer comes from this crate's record confirmed against CPython, never from
    /// `PyGILState_Check`, which answers 1 unconditionally once a sub-interpreter exists.
    ///
    /// # Examples
    ///
    /// ```
    /// gilguard::initialize()?;
    /// let mut guard = gilguard::GilGuard::new();
    /// assert!(!guard.owns_gil());
    /// guard.acquire();
    /// assert!(guard.owns_gil());
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    #[must_use]
    pub fn owns_gil(&self) -> bool {
        self.top.and_then(stack::frame).is_some_and(|frame| {
            let tstate = frame.attached();
            !tstate.is_null() && ffi::current_thread_state() == tstate
        })
    }

    /// The number of frames this guard has pushed and not yet restored.
    ///
    /// # Examples
    ///
    /// ```
    /// gilguard::initialize()?;
    /// let mut guard = gilguard::GilGuard::new();
    /// guard.acquire();
    /// guard.acquire();
    /// guard.restore()?;
    /// assert_eq!(guard.depth(), 1);
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    #[must_use]
    pub fn depth(&self) -> usize {
        core::iter::successors(self.top.and_then(stack::frame), |frame| {
            frame.below_in_guard.and_then(stack::frame)
        })
        .count()
    }
}

impl Default for GilGuard {
    fn default() -> Self {
        GilGuard::new()
    }
}

impl Drop for GilGuard {
    fn drop(&mut self) {
        while self.restore().is_ok() {}
    }
}
