//! [`WithoutGil`] and [`without_gil`]: detach this thread while Rust code runs.

#![allow(unsafe_code, reason = "`WithoutGil::new` is `unsafe`")]

use crate::context::frame::FrameIndex;
use crate::error::GilError;
use crate::guards::release::{release, release_slow};
use crate::guards::stack;
use crate::marker::CPythonThreadState;

/// Releases the GIL (detaches this thread) until dropped, then re-attaches the same thread
/// state.
///
/// This is the C++ `without_gil` / `gil_scoped_release` idiom, and
/// `Py_BEGIN_ALLOW_THREADS` / `Py_END_ALLOW_THREADS` in C: `PyEval_SaveThread` on
/// creation, `PyEval_RestoreThread` on drop. It detaches whichever interpreter the thread is
/// attached to, so it also releases a sub-interpreter's own GIL.
///
/// Prefer [`without_gil`], which is safe. Creating this guard is `unsafe` because nothing
/// stops the guard from being leaked with [`mem::forget`](core::mem::forget), and code that
/// runs later on this thread (the Python caller of your extension function, a
/// `pyo3::Python` token further up the stack) then runs without the GIL it was promised.
///
/// # Examples
///
/// ```
/// use gilguard::{WithGil, WithoutGil, is_attached};
///
/// gilguard::initialize()?;
/// let _gil = WithGil::acquire();
/// {
///     // SAFETY: nothing on this thread touches Python until the guard is dropped, and the
///     // guard is not leaked.
///     let _released = unsafe { WithoutGil::new() }?;
///     assert!(!is_attached());
///     std::thread::sleep(std::time::Duration::from_millis(1)); // other threads run Python
/// }
/// assert!(is_attached());
/// # Ok::<(), gilguard::GilError>(())
/// ```
#[clippy::has_significant_drop]
#[must_use = "the GIL is re-acquired as soon as the guard is dropped"]
#[derive(Debug)]
pub struct WithoutGil {
    frame: FrameIndex,
    _thread: CPythonThreadState,
}

static_assertions::assert_not_impl_any!(WithoutGil: Send, Sync);

impl WithoutGil {
    /// Detaches this thread from its interpreter until the guard is dropped.
    ///
    /// # Safety
    ///
    /// Until the guard is dropped, no code on this thread may use anything that relies on
    /// the GIL being held without acquiring it first: Python objects, borrowed references,
    /// a `pyo3::Python` token, or C-API calls. Acquiring it again inside (a [`WithGil`],
    /// another library's `PyGILState_Ensure`) is fine.
    ///
    /// The guard must be dropped, not leaked, and dropped before the code that attached the
    /// thread state continues (in the scope it was created in): if it is forgotten, the
    /// thread stays detached for the code that called into yours, which expects to hold the
    /// GIL, and the thread state it re-attaches must still exist when the guard (or a newer
    /// guard it waits for) is dropped.
    ///
    /// `pyo3` does not see this release: no `pyo3::Python::attach` may run until the guard
    /// is dropped ([`without_gil`] with the `pyo3` feature has no such rule).
    ///
    /// [`WithGil`]: crate::WithGil
    ///
    /// # Errors
    ///
    /// [`GilError::NotAttached`] if the thread is not attached; CPython would abort with
    /// `Fatal Python error: PyEval_SaveThread: the function must be called with the GIL
    /// held`.
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::{GilError, WithoutGil};
    ///
    /// gilguard::initialize()?;
    /// // This thread is not attached, so there is nothing to release.
    /// // SAFETY: the guard is never created, let alone leaked.
    /// assert_eq!(unsafe { WithoutGil::new() }.unwrap_err(), GilError::NotAttached);
    /// # Ok::<(), GilError>(())
    /// ```
    #[inline]
    #[cfg_attr(feature = "stats", track_caller)]
    pub unsafe fn new() -> Result<WithoutGil, GilError> {
        #[cfg(feature = "stats")]
        crate::stats::record::enter(core::panic::Location::caller());
        let guard = WithoutGil {
            frame: release(None)?,
            _thread: CPythonThreadState::NEW,
        };
        #[cfg(feature = "stats")]
        crate::stats::record::settled();
        Ok(guard)
    }
}

impl Drop for WithoutGil {
    #[inline]
    fn drop(&mut self) {
        stack::finish_likely::<stack::ReleasedFrame>(self.frame);
        #[cfg(feature = "stats")]
        crate::stats::record::settled();
    }
}

/// Runs `f` with this thread detached (the GIL released), then re-attaches it, also when
/// `f` panics.
///
/// This is the safe way to release the GIL around a long computation or a blocking call
/// (`join`, I/O, `sleep`), so that other Python threads keep running. Like
/// `pyo3::Python::detach`, it requires `f` and its result to be `Send`: a `&WithGil`, a
/// `pyo3::Python` token or a borrowed Python object cannot be captured, so nothing that
/// needs the GIL can reach the code that runs without it. Code inside `f` that needs Python
/// acquires the GIL again with [`WithGil`](crate::WithGil).
///
/// If the thread is not attached, `f` simply runs: there is nothing to release.
///
/// **With `pyo3` on the same thread, enable this crate's `pyo3` feature.** `pyo3` tracks
/// attachment in a thread-local count of its own and trusts it: inside
/// `pyo3::Python::attach`, a nested `Python::attach` hands out a token without asking
/// CPython. With the feature, `without_gil` releases through `pyo3`'s own
/// `Python::detach`, so a `Python::attach` inside `f` really attaches; without it, a
/// `Python::attach` inside `f` that is itself inside a `Python::attach` gets a token for a
/// detached thread.
///
/// # Panics
///
/// Panics of `f` propagate, after the thread has been re-attached.
///
/// A guard made inside `f` that outlives it is ended when `f` returns ([closure forms are
/// scopes](crate#the-soundness-model)).
///
/// # Examples
///
/// ```
/// use gilguard::{with_gil, without_gil, is_attached};
///
/// gilguard::initialize()?;
/// let sum = with_gil(|| {
///     without_gil(|| {
///         assert!(!is_attached());
///         (1..=100u64).sum::<u64>() // other Python threads run meanwhile
///     })
/// });
/// assert_eq!(sum, 5050);
/// # Ok::<(), gilguard::GilError>(())
/// ```
///
/// Whatever needs the GIL cannot be captured:
///
/// ```compile_fail,E0277
/// gilguard::with_gil(|| {
///     let gil = gilguard::WithGil::acquire();
///     gilguard::without_gil(|| drop(&gil)); // `&WithGil` is not `Send`
/// });
/// ```
#[inline]
#[cfg_attr(feature = "stats", track_caller)]
pub fn without_gil<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    #[cfg(feature = "stats")]
    crate::stats::record::enter(core::panic::Location::caller());
    #[cfg(feature = "stats")]
    let f = reporting_first(f);
    let value = match detach(f) {
        Ok(value) => value,
        Err(f) => f(), // not attached: nothing to release
    };
    #[cfg(feature = "stats")]
    crate::stats::record::settled();
    value
}

/// Runs `f` with this thread detached, like [`without_gil`], or returns
/// [`GilError::NotAttached`] without running it if this crate cannot see the thread's
/// attachment.
///
/// For code that knows it is attached (a C function called by the Python interpreter) and
/// wants to hear about it if the GIL could not be released, rather than have `f` run with
/// it held. On CPython 3.9–3.11 that happens in a sub-interpreter entered by code outside
/// this crate (see [`is_attached`](crate::is_attached)).
///
/// # Errors
///
/// [`GilError::NotAttached`], and `f` is not called.
///
/// A guard made inside `f` that outlives it is ended when `f` returns ([closure forms are
/// scopes](crate#the-soundness-model)).
///
/// # Examples
///
/// ```
/// use gilguard::{GilError, try_without_gil, with_gil};
///
/// gilguard::initialize()?;
/// assert_eq!(try_without_gil(|| ()), Err(GilError::NotAttached));
/// assert_eq!(with_gil(|| try_without_gil(|| 42)), Ok(42));
/// # Ok::<(), GilError>(())
/// ```
#[inline]
#[cfg_attr(feature = "stats", track_caller)]
pub fn try_without_gil<F, T>(f: F) -> Result<T, GilError>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    #[cfg(feature = "stats")]
    crate::stats::record::enter(core::panic::Location::caller());
    #[cfg(feature = "stats")]
    let f = reporting_first(f);
    let value = detach(f).map_err(|_| GilError::NotAttached);
    #[cfg(feature = "stats")]
    crate::stats::record::settled();
    value
}

/// `f`, first reporting the long holds that the release before it ended, once the release's
/// frame is on the stack (`stats`).
#[cfg(feature = "stats")]
fn reporting_first<T>(f: impl FnOnce() -> T + Send) -> impl FnOnce() -> T + Send {
    move || {
        crate::stats::record::settled();
        f()
    }
}

/// Runs `f` with this thread detached, if it is attached, as a scope (`stack::in_scope`);
/// gives `f` back otherwise.
#[inline]
fn detach<F, T>(f: F) -> Result<T, F>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    #[cfg(feature = "pyo3")]
    let f = match crate::guards::pyo3_detach::detach(f) {
        Ok(value) => return Ok(value),
        Err(f) => f,
    };
    if let Some(pushed) = stack::push_released(None) {
        return Ok(stack::in_pushed_scope::<stack::ReleasedFrame, T>(pushed, f));
    }
    let Ok(index) = release_slow(None) else {
        return Err(f);
    };
    Ok(stack::in_scope::<stack::ReleasedFrame, T>(index, f))
}
