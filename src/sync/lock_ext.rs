//! [`MutexExt`] and [`RwLockExt`]: `std` locks that wait with the thread detached.

#![allow(
    unsafe_code,
    reason = "waits for a lock under `WithoutGil::new`, whose guard never leaves the function"
)]

use std::sync::{
    LockResult, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError,
    TryLockResult,
};

use crate::WithoutGil;

mod sealed {
    /// Only the `std` locks implement the extension traits: their contract (what waiting
    /// detached means, poisoning) is written for them.
    pub trait Sealed {}
    impl<T: ?Sized> Sealed for std::sync::Mutex<T> {}
    impl<T: ?Sized> Sealed for std::sync::RwLock<T> {}
}

/// [`std::sync::Mutex`] locked without holding the GIL while it waits.
///
/// A thread that holds the GIL and blocks on a mutex whose holder needs the GIL (to call
/// Python, or to re-attach after a blocking call) deadlocks. `lock_detached` avoids that:
///
/// * when the mutex is free, it is taken at once, as [`Mutex::try_lock`] would: nothing
///   else happens (the thread stays as it is);
/// * when it is held and this thread is attached, the thread detaches while it waits and
///   re-attaches before the guard is returned, so the guard is used attached;
/// * when it is held and this thread is detached, it is a plain [`Mutex::lock`].
///
/// Every thread that may lock the mutex while attached must use `lock_detached`: a plain
/// `lock` on an attached thread can still deadlock with a holder that waits for the GIL.
///
/// This trait is sealed: only `std::sync::Mutex` implements it.
///
/// # Examples
///
/// ```
/// use gilguard::sync::MutexExt;
/// use std::sync::Mutex;
///
/// static CACHE: Mutex<Vec<u32>> = Mutex::new(Vec::new());
///
/// gilguard::initialize()?;
/// gilguard::with_gil(|| {
///     CACHE.lock_detached().unwrap().push(1);
///     assert!(gilguard::is_attached()); // the guard is returned attached
/// });
/// # Ok::<(), gilguard::GilError>(())
/// ```
pub trait MutexExt<T: ?Sized>: sealed::Sealed {
    /// Locks the mutex; if it has to wait and this thread is attached, it waits detached
    /// and re-attaches before returning.
    ///
    /// # Errors
    ///
    /// As [`Mutex::lock`]: if another thread panicked while holding the mutex, the guard is
    /// returned inside a [`PoisonError`](std::sync::PoisonError).
    ///
    /// # Panics
    ///
    /// As [`Mutex::lock`]: locking a mutex the current thread already holds may panic (or
    /// deadlock). The thread is re-attached before the panic propagates.
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::sync::MutexExt;
    /// use std::sync::Mutex;
    ///
    /// let counter = Mutex::new(0);
    /// *counter.lock_detached().unwrap() += 1; // detached: a plain lock
    /// assert_eq!(*counter.lock().unwrap(), 1);
    /// ```
    fn lock_detached(&self) -> LockResult<MutexGuard<'_, T>>;
}

/// [`std::sync::RwLock`] locked without holding the GIL while it waits.
///
/// As [`MutexExt`], for both ways of locking a `RwLock`: a free lock is taken at once, a
/// held one is waited for detached when this thread is attached (and the thread re-attached
/// before the guard is returned), and plainly when it is not.
///
/// This trait is sealed: only `std::sync::RwLock` implements it.
///
/// # Examples
///
/// ```
/// use gilguard::sync::RwLockExt;
/// use std::sync::RwLock;
///
/// static SETTINGS: RwLock<u32> = RwLock::new(1);
///
/// gilguard::initialize()?;
/// gilguard::with_gil(|| {
///     *SETTINGS.write_detached().unwrap() = 2;
///     assert_eq!(*SETTINGS.read_detached().unwrap(), 2);
/// });
/// # Ok::<(), gilguard::GilError>(())
/// ```
pub trait RwLockExt<T: ?Sized>: sealed::Sealed {
    /// Locks for reading; if it has to wait and this thread is attached, it waits detached
    /// and re-attaches before returning.
    ///
    /// # Errors
    ///
    /// As [`RwLock::read`]: a lock poisoned by a writer that panicked returns the guard
    /// inside a [`PoisonError`](std::sync::PoisonError).
    ///
    /// # Panics
    ///
    /// As [`RwLock::read`], which may panic if the current thread already holds the lock.
    /// The thread is re-attached before the panic propagates.
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::sync::RwLockExt;
    /// use std::sync::RwLock;
    ///
    /// let lock = RwLock::new(5);
    /// assert_eq!(*lock.read_detached().unwrap(), 5);
    /// ```
    fn read_detached(&self) -> LockResult<RwLockReadGuard<'_, T>>;

    /// Locks for writing; if it has to wait and this thread is attached, it waits detached
    /// and re-attaches before returning.
    ///
    /// # Errors
    ///
    /// As [`RwLock::write`]: a lock poisoned by a writer that panicked returns the guard
    /// inside a [`PoisonError`](std::sync::PoisonError).
    ///
    /// # Panics
    ///
    /// As [`RwLock::write`], which may panic if the current thread already holds the lock.
    /// The thread is re-attached before the panic propagates.
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::sync::RwLockExt;
    /// use std::sync::RwLock;
    ///
    /// let lock = RwLock::new(5);
    /// *lock.write_detached().unwrap() += 1;
    /// assert_eq!(*lock.read_detached().unwrap(), 6);
    /// ```
    fn write_detached(&self) -> LockResult<RwLockWriteGuard<'_, T>>;
}

impl<T: ?Sized> MutexExt<T> for Mutex<T> {
    #[inline]
    fn lock_detached(&self) -> LockResult<MutexGuard<'_, T>> {
        try_then_wait(self.try_lock(), || self.lock())
    }
}

impl<T: ?Sized> RwLockExt<T> for RwLock<T> {
    #[inline]
    fn read_detached(&self) -> LockResult<RwLockReadGuard<'_, T>> {
        try_then_wait(self.try_read(), || self.read())
    }

    #[inline]
    fn write_detached(&self) -> LockResult<RwLockWriteGuard<'_, T>> {
        try_then_wait(self.try_write(), || self.write())
    }
}

/// The result of a `try_` lock when it did not have to wait (poisoned or not); `wait`,
/// detached if this thread is attached, when it would have blocked.
///
/// The uncontended path is the `try_` call alone: whether the thread is attached is only
/// asked when it has to wait.
#[inline(always)]
fn try_then_wait<G>(
    tried: TryLockResult<G>,
    wait: impl FnOnce() -> LockResult<G>,
) -> LockResult<G> {
    match tried {
        Ok(guard) => Ok(guard),
        Err(TryLockError::Poisoned(poisoned)) => Err(poisoned),
        Err(TryLockError::WouldBlock) => wait_detached(wait),
    }
}

/// Runs `wait` detached if this thread is attached (re-attaching before returning, also
/// on unwinding), plainly if it is not.
#[cold]
#[inline(never)]
pub(super) fn wait_detached<R>(wait: impl FnOnce() -> R) -> R {
    // SAFETY: `WithoutGil::new`'s contract: while the guard, a local, lives, this thread only
    // waits for a `std` lock (no Python, no `Python::attach`); it is dropped before returning.
    match unsafe { WithoutGil::new() } {
        Ok(detached) => {
            let result = wait();
            drop(detached);
            result
        }
        // Not attached: there is no GIL to let go of.
        Err(_) => wait(),
    }
}
