//! [`WithGil`] and [`with_gil`]: attach this thread to the main interpreter.

use crate::context::frame::FrameIndex;
use crate::error::{GilError, refused};
use crate::guards::attach::{Suspend, attach_main};
use crate::guards::stack;
use crate::marker::CPythonThreadState;

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
/// # What a live guard promises
///
/// While the guard lives, this crate does not detach the thread from the thread state the
/// guard attached (or found attached). Code outside the crate can: a C library's
/// `PyGILState_Release`, the end of the `pyo3::Python::attach` or of the Python thread the
/// guard was created in. A guard that outlives the foreign scope it nested in, or the
/// closure form it was created in (which ends it), no longer proves anything: ask
/// [`is_attached`](crate::is_attached), or, with the `pyo3` feature,
/// `WithGil::try_python`, which confirm with CPython.
///
/// Created inside a region where foreign code released the GIL (`Py_BEGIN_ALLOW_THREADS`,
/// `pyo3`'s `Python::detach`), a guard must be dropped before that region ends: the
/// foreign code re-attaches its own thread state then, which CPython refuses while this
/// thread is attached (a deadlock up to 3.12, `Fatal Python error` from 3.13). The crate
/// cannot see such a region end; its own [`without_gil`](crate::without_gil) ends guards
/// left inside it.
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
#[clippy::has_significant_drop]
#[must_use = "the GIL is released as soon as the guard is dropped"]
#[derive(Debug)]
pub struct WithGil {
    pub(crate) frame: FrameIndex,
    _thread: CPythonThreadState,
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
    #[inline(always)]
    pub fn acquire() -> WithGil {
        match WithGil::try_acquire() {
            Ok(guard) => guard,
            Err(error) => refused("WithGil::acquire", "WithGil::try_acquire", error),
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
    #[inline(always)]
    #[cfg_attr(feature = "stats", track_caller)]
    pub fn try_acquire() -> Result<WithGil, GilError> {
        #[cfg(feature = "stats")]
        crate::stats::record::enter(core::panic::Location::caller());
        Ok(WithGil {
            frame: attach_main(Suspend::Refused, None)?,
            _thread: CPythonThreadState::NEW,
        })
    }
}

impl Drop for WithGil {
    #[inline(always)]
    fn drop(&mut self) {
        stack::finish_main(self.frame);
        #[cfg(feature = "stats")]
        crate::stats::record::settled();
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
/// A guard made inside `f` that outlives it is ended when `f` returns ([closure forms are
/// scopes](crate#the-soundness-model)).
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
#[inline]
pub fn with_gil<T>(f: impl FnOnce() -> T) -> T {
    match try_with_gil(f) {
        Ok(value) => value,
        Err(error) => refused("with_gil", "try_with_gil", error),
    }
}

/// Runs `f` with this thread attached to the main interpreter, or returns why it cannot be.
///
/// # Errors
///
/// [`GilError::NotInitialized`] or [`GilError::Finalizing`], as for
/// [`WithGil::try_acquire`]; `f` is not called then.
///
/// A guard made inside `f` that outlives it is ended when `f` returns ([closure forms are
/// scopes](crate#the-soundness-model)).
///
/// # Examples
///
/// ```
/// gilguard::initialize()?;
/// let answer = gilguard::try_with_gil(|| 42)?;
/// assert_eq!(answer, 42);
/// # Ok::<(), gilguard::GilError>(())
/// ```
#[inline]
#[cfg_attr(feature = "stats", track_caller)]
pub fn try_with_gil<T>(f: impl FnOnce() -> T) -> Result<T, GilError> {
    #[cfg(feature = "stats")]
    crate::stats::record::enter(core::panic::Location::caller());
    let index = attach_main(Suspend::Allowed, None)?;
    let value = stack::in_main_scope(index, f);
    #[cfg(feature = "stats")]
    crate::stats::record::settled();
    Ok(value)
}
