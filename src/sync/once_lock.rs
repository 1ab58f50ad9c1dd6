//! [`GilOnceLock`]: a value initialised once, waited for with the thread detached.
//!
//! No `unsafe` here: the value is a [`std::sync::OnceLock`], only ever set by the thread
//! that holds `init`; waiting for `init` detached is [`MutexExt::lock_detached`]'s.

use core::fmt;
use core::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use super::lock_ext::MutexExt;

/// A value initialised once, like [`std::sync::OnceLock`], that is safe to initialise and
/// wait for while attached to Python.
///
/// `std::sync::OnceLock::get_or_init` blocks while another thread initialises. If the
/// waiting thread holds the GIL and the initialiser needs it (it calls Python, which may
/// release and re-take the GIL at any time, or it releases it with
/// [`without_gil`](crate::without_gil)), neither finishes. `GilOnceLock` waits for another
/// thread's initialiser with the thread detached, and re-attaches before it returns, so:
///
/// * an initialiser may release the GIL, call Python, or start Python threads that call
///   `get_or_init` on the same lock;
/// * the initialiser runs in the caller's state (attached if the caller was);
/// * a panicking (or, for [`get_or_try_init`](Self::get_or_try_init), failing) initialiser
///   leaves the lock uninitialised: the panic propagates to its caller, and the next caller
///   (or a waiting thread) runs its own initialiser.
///
/// The value is initialised at most once, but with Python objects that is a choice of the
/// caller: several threads may each run Python that computes the same object, but only the
/// first initialiser's value is kept, and the others wait for it instead of running theirs.
///
/// A `GilOnceLock` is process-wide. For Python objects in an extension module that may be
/// imported into several sub-interpreters, use
/// [`InterpreterOnceLock`](super::InterpreterOnceLock): an object must not be shared between
/// interpreters.
///
/// # Fork
///
/// If the process forks while another thread runs an initialiser, the child has the lock
/// held by a thread that does not exist there: in the child, `get` returns `None` for it
/// and `get_or_init` waits forever. CPython itself warns about forking a process with
/// threads (a `DeprecationWarning` since 3.12) for the same reason; fork before starting
/// threads that initialise, or initialise before forking.
///
/// # Examples
///
/// ```
/// use gilguard::sync::GilOnceLock;
///
/// static ANSWER: GilOnceLock<u64> = GilOnceLock::new();
///
/// gilguard::initialize()?;
/// let answer = gilguard::with_gil(|| {
///     *ANSWER.get_or_init(|| {
///         // Releasing the GIL inside the initialiser cannot deadlock other callers.
///         gilguard::without_gil(|| 6 * 7)
///     })
/// });
/// assert_eq!(answer, 42);
/// assert_eq!(ANSWER.get(), Some(&42));
/// # Ok::<(), gilguard::GilError>(())
/// ```
pub struct GilOnceLock<T> {
    /// The value; set only by the thread holding `init`, and never cleared through `&self`.
    value: OnceLock<T>,
    /// Held by the thread that runs the initialiser; the others wait for it detached.
    init: Mutex<()>,
    /// The [`thread_token`] of the thread running the initialiser, 0 if none: a nested
    /// `get_or_init` on the same thread would wait for itself.
    running_on: AtomicUsize,
}

// `Send`, `Sync` and the unwind-safety traits follow from the fields, with the bounds of
// `std::sync::OnceLock<T>`: `Sync` needs `T: Send + Sync` (a value made on one thread, shared
// as `&T` and dropped on another). A panicking initialiser leaves the lock uninitialised and
// consistent (as `std`'s): the poisoned `init` is taken over by the next initialiser.
static_assertions::assert_impl_all!(GilOnceLock<Vec<u8>>: Send, Sync, Default);
static_assertions::assert_impl_all!(
    GilOnceLock<Vec<u8>>: std::panic::UnwindSafe,
    std::panic::RefUnwindSafe
);
static_assertions::assert_not_impl_any!(GilOnceLock<core::cell::Cell<u8>>: Sync);
static_assertions::assert_not_impl_any!(GilOnceLock<std::rc::Rc<u8>>: Send, Sync);

impl<T> GilOnceLock<T> {
    /// An uninitialised lock; `const`, so that it can be a `static`.
    ///
    /// # Examples
    ///
    /// ```
    /// static NAMES: gilguard::sync::GilOnceLock<Vec<String>> = gilguard::sync::GilOnceLock::new();
    /// assert!(NAMES.get().is_none());
    /// ```
    pub const fn new() -> GilOnceLock<T> {
        GilOnceLock {
            value: OnceLock::new(),
            init: Mutex::new(()),
            running_on: AtomicUsize::new(0),
        }
    }

    /// The value, if it has been initialised. Never waits, and needs no GIL.
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = gilguard::sync::GilOnceLock::new();
    /// assert_eq!(lock.get(), None);
    /// lock.get_or_init(|| 1);
    /// assert_eq!(lock.get(), Some(&1));
    /// ```
    #[inline]
    pub fn get(&self) -> Option<&T> {
        self.value.get()
    }

    /// The value, initialised by `f` if no other call did so first.
    ///
    /// If another thread is running its initialiser, this waits for it, detached if this
    /// thread is attached (re-attached before returning). `f` runs on this thread, in the
    /// state the caller is in.
    ///
    /// # Panics
    ///
    /// Panics of `f` propagate, and leave the lock uninitialised. Panics if `f` (on this
    /// thread) calls `get_or_init` or `get_or_try_init` on the same lock: it would wait for
    /// itself.
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::sync::GilOnceLock;
    ///
    /// let lock = GilOnceLock::new();
    /// assert_eq!(lock.get_or_init(|| "first"), &"first");
    /// assert_eq!(lock.get_or_init(|| "second"), &"first");
    /// ```
    #[inline]
    pub fn get_or_init(&self, f: impl FnOnce() -> T) -> &T {
        match self.get() {
            Some(value) => value,
            None => match self.initialize(|| Ok::<T, core::convert::Infallible>(f())) {
                Ok(value) => value,
                Err(never) => match never {},
            },
        }
    }

    /// The value, initialised by `f` if no other call did so first; an error of `f` is
    /// returned and leaves the lock uninitialised.
    ///
    /// Waits as [`get_or_init`](Self::get_or_init) does.
    ///
    /// # Errors
    ///
    /// The error of `f`, when `f` ran and failed.
    ///
    /// # Panics
    ///
    /// As [`get_or_init`](Self::get_or_init).
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::sync::GilOnceLock;
    ///
    /// let lock = GilOnceLock::new();
    /// assert_eq!(lock.get_or_try_init(|| "x".parse::<u8>()).is_err(), true);
    /// assert_eq!(lock.get(), None);
    /// assert_eq!(lock.get_or_try_init(|| "7".parse::<u8>()), Ok(&7));
    /// ```
    #[inline]
    pub fn get_or_try_init<E>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<&T, E> {
        match self.get() {
            Some(value) => Ok(value),
            None => self.initialize(f),
        }
    }

    /// Takes the value out, leaving the lock uninitialised.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut lock = gilguard::sync::GilOnceLock::new();
    /// lock.get_or_init(|| 3);
    /// assert_eq!(lock.take(), Some(3));
    /// assert_eq!(lock.get(), None);
    /// ```
    pub fn take(&mut self) -> Option<T> {
        self.value.take()
    }

    /// The value, if it was initialised, consuming the lock.
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = gilguard::sync::GilOnceLock::new();
    /// lock.get_or_init(|| String::from("value"));
    /// assert_eq!(lock.into_inner().as_deref(), Some("value"));
    /// ```
    pub fn into_inner(self) -> Option<T> {
        self.value.into_inner()
    }

    /// The slow path: waits for the right to initialise (detached if attached), then runs
    /// `f` unless another thread has initialised meanwhile.
    #[cold]
    fn initialize<E>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<&T, E> {
        let me = thread_token();
        assert!(
            self.running_on.load(Ordering::Relaxed) != me,
            "GilOnceLock: the initialiser called get_or_init on the same lock (it would wait \
             for itself)"
        );
        // Poisoning only says an initialiser panicked, which left `value` unset: the next
        // one runs.
        let _init = self
            .init
            .lock_detached()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(value) = self.get() {
            return Ok(value);
        }
        self.running_on.store(me, Ordering::Relaxed);
        let value = {
            let _done = scopeguard::guard((), |()| self.running_on.store(0, Ordering::Relaxed));
            f()?
        };
        // Only the holder of `init` sets `value`, and it was unset after `init` was taken:
        // this sets it, and `OnceLock`'s own (attached) wait is never entered.
        Ok(self.value.get_or_init(|| value))
    }
}

/// A number for this thread, unique among the live threads: the address of a thread-local.
fn thread_token() -> usize {
    thread_local! {
        // No destructor: readable during the thread's teardown too.
        static TOKEN: u8 = const { 0 };
    }
    TOKEN.with(|token| core::ptr::from_ref(token) as usize)
}

impl<T> Default for GilOnceLock<T> {
    fn default() -> Self {
        GilOnceLock::new()
    }
}

impl<T: fmt::Debug> fmt::Debug for GilOnceLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.get() {
            Some(value) => f.debug_tuple("GilOnceLock").field(value).finish(),
            None => f.write_str("GilOnceLock(<uninit>)"),
        }
    }
}

impl<T> From<T> for GilOnceLock<T> {
    /// An initialised lock.
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = gilguard::sync::GilOnceLock::from(5);
    /// assert_eq!(lock.get(), Some(&5));
    /// ```
    fn from(value: T) -> Self {
        GilOnceLock {
            value: OnceLock::from(value),
            init: Mutex::new(()),
            running_on: AtomicUsize::new(0),
        }
    }
}
