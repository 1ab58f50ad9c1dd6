//! [`InterpreterOnceLock`]: one lazily initialised value per interpreter.

#![allow(
    unsafe_code,
    reason = "an append-only list of per-interpreter values, shared without a lock"
)]

use core::fmt;
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};
use std::panic::{RefUnwindSafe, UnwindSafe};

use super::GilOnceLock;
use crate::{GilError, Interpreter};

/// One value per interpreter, each initialised once, on first use in that interpreter.
///
/// An extension module can be imported into several sub-interpreters, and a Python object
/// belongs to the interpreter that made it: a cached object (a type, an imported module, an
/// interned string) shared between interpreters is a use-after-free waiting to happen, and
/// with own-GIL interpreters (3.12+) a data race. A process-wide once-cell (PyO3's
/// `PyOnceLock`, or [`GilOnceLock`]) has that problem; this keeps a value per
/// [`Interpreter`], and each value is initialised and waited for as a [`GilOnceLock`] is
/// (detached), independently of the others.
///
/// The key is the [`Interpreter`] the thread is attached to, compared as `Interpreter`
/// compares: by the interpreter's address, its id, and the runtime it belongs to (a
/// finalized and re-initialised runtime is another one). CPython can give a new interpreter
/// the address of one that has ended, but never its id in the same runtime, so a new
/// interpreter never sees an ended one's value.
///
/// Values of interpreters that have ended are kept until the lock is dropped (a `static`
/// never is), or until [`take`](Self::take)n: the lock cannot tell when an interpreter ends.
/// If a value holds references to Python objects, take it out before its interpreter ends
/// (an extension module's `m_free`, or an `atexit` hook in that interpreter) and release
/// them there, or never drop them.
///
/// # Examples
///
/// ```
/// use gilguard::sync::InterpreterOnceLock;
/// use gilguard::{Interpreter, SubInterpreter};
///
/// static ID: InterpreterOnceLock<i64> = InterpreterOnceLock::new();
///
/// gilguard::initialize()?;
/// let in_main = gilguard::with_gil(|| *ID.get_or_init(|| Interpreter::current().unwrap().id()));
/// let sub = SubInterpreter::new()?;
/// let in_sub = sub
///     .thread_state()?
///     .run(|| *ID.get_or_init(|| Interpreter::current().unwrap().id()))?;
/// assert_eq!(in_main, 0);
/// assert_eq!(in_sub, sub.id());
/// # Ok::<(), gilguard::GilError>(())
/// ```
pub struct InterpreterOnceLock<T> {
    /// A list of slots that only grows (newest first) until `&mut self`: a slot, once
    /// published, is neither moved nor freed while the lock is shared.
    head: AtomicPtr<Slot<T>>,
}

struct Slot<T> {
    interpreter: Interpreter,
    value: GilOnceLock<T>,
    /// The slot published before this one; null at the end.
    next: *mut Slot<T>,
}

// SAFETY: the slots are owned by the lock (freed only in `drop`, through `&mut self`), and
// hold `GilOnceLock<T>`s: sharing the lock shares `&T` between threads (`T: Sync`), and a
// value made on one thread may be dropped on another (`T: Send`), as for `GilOnceLock`.
unsafe impl<T: Send + Sync> Sync for InterpreterOnceLock<T> {}
// SAFETY: moving the lock moves ownership of its slots and values (`T: Send`).
unsafe impl<T: Send> Send for InterpreterOnceLock<T> {}

// Each value is a `GilOnceLock`'s: a panicking initialiser leaves it uninitialised.
impl<T: RefUnwindSafe + UnwindSafe> RefUnwindSafe for InterpreterOnceLock<T> {}
impl<T: UnwindSafe> UnwindSafe for InterpreterOnceLock<T> {}

static_assertions::assert_impl_all!(InterpreterOnceLock<Vec<u8>>: Send, Sync, Default);
static_assertions::assert_not_impl_any!(InterpreterOnceLock<core::cell::Cell<u8>>: Sync);
static_assertions::assert_not_impl_any!(InterpreterOnceLock<std::rc::Rc<u8>>: Send, Sync);

impl<T> InterpreterOnceLock<T> {
    /// A lock with no value for any interpreter; `const`, so that it can be a `static`.
    ///
    /// # Examples
    ///
    /// ```
    /// static CACHE: gilguard::sync::InterpreterOnceLock<u8> =
    ///     gilguard::sync::InterpreterOnceLock::new();
    /// assert_eq!(CACHE.get(), None); // not attached: no interpreter, no value
    /// ```
    pub const fn new() -> InterpreterOnceLock<T> {
        InterpreterOnceLock {
            head: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// The value of the interpreter this thread is attached to, if it has been initialised;
    /// `None` when the thread is not attached. Never waits.
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = gilguard::sync::InterpreterOnceLock::new();
    /// gilguard::initialize()?;
    /// gilguard::with_gil(|| {
    ///     assert_eq!(lock.get(), None);
    ///     lock.get_or_init(|| 1);
    ///     assert_eq!(lock.get(), Some(&1));
    /// });
    /// assert_eq!(lock.get(), None);
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    pub fn get(&self) -> Option<&T> {
        let interpreter = Interpreter::current().ok()?;
        self.find(self.head.load(Ordering::Acquire), interpreter)?
            .value
            .get()
    }

    /// The value of the interpreter this thread is attached to, initialised by `f` if no
    /// other call did so first in that interpreter.
    ///
    /// Waits for another thread's initialiser (of the same interpreter) detached, and runs
    /// `f` attached, as [`GilOnceLock::get_or_init`] does.
    ///
    /// # Panics
    ///
    /// If this thread is not attached to an interpreter (use
    /// [`try_get_or_init`](Self::try_get_or_init) to get an error instead), and as
    /// [`GilOnceLock::get_or_init`] (a panicking `f` leaves the value uninitialised).
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = gilguard::sync::InterpreterOnceLock::new();
    /// gilguard::initialize()?;
    /// assert_eq!(gilguard::with_gil(|| *lock.get_or_init(|| 'x')), 'x');
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    pub fn get_or_init(&self, f: impl FnOnce() -> T) -> &T {
        match self.try_get_or_init(f) {
            Ok(value) => value,
            Err(error) => panic!("InterpreterOnceLock::get_or_init: {error}"),
        }
    }

    /// As [`get_or_init`](Self::get_or_init), returning an error instead of panicking when
    /// this thread is not attached.
    ///
    /// # Errors
    ///
    /// [`GilError::NotAttached`] if this thread is not attached to an interpreter (on
    /// CPython 3.9–3.11, also when it is attached to a sub-interpreter by code outside this
    /// crate; see [`is_attached`](crate::is_attached)).
    ///
    /// # Panics
    ///
    /// As [`GilOnceLock::get_or_init`].
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::GilError;
    ///
    /// let lock = gilguard::sync::InterpreterOnceLock::new();
    /// gilguard::initialize()?;
    /// assert_eq!(lock.try_get_or_init(|| 1), Err(GilError::NotAttached));
    /// assert_eq!(gilguard::with_gil(|| lock.try_get_or_init(|| 2).copied()), Ok(2));
    /// # Ok::<(), GilError>(())
    /// ```
    pub fn try_get_or_init(&self, f: impl FnOnce() -> T) -> Result<&T, GilError> {
        let interpreter = Interpreter::current()?;
        Ok(self.slot(interpreter).value.get_or_init(f))
    }

    /// Takes the value of `interpreter` out, leaving it uninitialised there (a later
    /// `get_or_init` in that interpreter initialises it again).
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::Interpreter;
    ///
    /// let mut lock = gilguard::sync::InterpreterOnceLock::new();
    /// gilguard::initialize()?;
    /// gilguard::with_gil(|| *lock.get_or_init(|| 5));
    /// assert_eq!(lock.take(Interpreter::main()?), Some(5));
    /// assert_eq!(lock.take(Interpreter::main()?), None);
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    pub fn take(&mut self, interpreter: Interpreter) -> Option<T> {
        let slot = find(*self.head.get_mut(), interpreter);
        if slot.is_null() {
            return None;
        }
        // SAFETY: `&mut self`: no other reference to any slot exists, and `slot` (from
        // `Box::into_raw`) is a live slot of this lock.
        unsafe { (*slot).value.take() }
    }

    /// The slot of `interpreter` in the list that starts at `head`.
    fn find(&self, head: *mut Slot<T>, interpreter: Interpreter) -> Option<&Slot<T>> {
        // SAFETY: a slot found from `head` (read with Acquire, or from the `next` of a slot,
        // written before it was published) lives as long as `self`.
        unsafe { find(head, interpreter).as_ref() }
    }

    /// The slot of `interpreter`, published if there was none.
    fn slot(&self, interpreter: Interpreter) -> &Slot<T> {
        let mut head = self.head.load(Ordering::Acquire);
        let mut new: Option<Box<Slot<T>>> = None;
        loop {
            if let Some(slot) = self.find(head, interpreter) {
                return slot;
            }
            let mut slot = new.take().unwrap_or_else(|| {
                Box::new(Slot {
                    interpreter,
                    value: GilOnceLock::new(),
                    next: ptr::null_mut(),
                })
            });
            slot.next = head;
            let raw = Box::into_raw(slot);
            match self
                .head
                .compare_exchange(head, raw, Ordering::AcqRel, Ordering::Acquire)
            {
                // SAFETY: published: it lives as long as `self` (freed only by `drop`).
                Ok(_) => return unsafe { &*raw },
                Err(newer) => {
                    // SAFETY: not published, so still owned here; from `Box::into_raw`.
                    new = Some(unsafe { Box::from_raw(raw) });
                    // Another thread published a slot (maybe for this interpreter): look
                    // again.
                    head = newer;
                }
            }
        }
    }
}

/// The slot of `interpreter` in the list that starts at `slot`, or null.
fn find<T>(mut slot: *mut Slot<T>, interpreter: Interpreter) -> *mut Slot<T> {
    while !slot.is_null() {
        // SAFETY: the slots of a list are live while the lock they belong to is (the caller
        // holds a reference to it); the borrow ends before this function returns.
        let current = unsafe { &*slot };
        if current.interpreter == interpreter {
            break;
        }
        slot = current.next;
    }
    slot
}

impl<T> Default for InterpreterOnceLock<T> {
    fn default() -> Self {
        InterpreterOnceLock::new()
    }
}

impl<T> Drop for InterpreterOnceLock<T> {
    fn drop(&mut self) {
        let mut slot = *self.head.get_mut();
        while !slot.is_null() {
            // SAFETY: `&mut self`: the slots are owned here and no longer shared; each came
            // from `Box::into_raw` and is freed once.
            let owned = unsafe { Box::from_raw(slot) };
            slot = owned.next;
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for InterpreterOnceLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_map();
        let mut slot = self.head.load(Ordering::Acquire);
        while !slot.is_null() {
            // SAFETY: as in `find`.
            let current = unsafe { &*slot };
            list.entry(&current.interpreter.id(), &current.value);
            slot = current.next;
        }
        list.finish()
    }
}
