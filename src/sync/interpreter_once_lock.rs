//! [`InterpreterOnceLock`]: one lazily initialised value per interpreter.
//!
//! No `unsafe` here: the values live in an append-only chain of `OnceLock<Box<Node>>`, so a
//! node, once set, is neither moved nor freed while the lock is shared, and `&T` borrows
//! `&self`.

use core::fmt;
use std::sync::OnceLock;

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
    /// The first node of a chain that only grows (oldest first) until `&mut self`: a node,
    /// once set, is neither moved nor freed while the lock is shared.
    head: OnceLock<Box<Node<T>>>,
}

struct Node<T> {
    interpreter: Interpreter,
    value: GilOnceLock<T>,
    /// The node set after this one; unset at the end of the chain.
    next: OnceLock<Box<Node<T>>>,
}

// `Send`, `Sync` and the unwind-safety traits follow from the fields: those of
// `GilOnceLock<T>` (`Sync` needs `T: Send + Sync`, `Send` needs `T: Send`). Each value is a
// `GilOnceLock`'s: a panicking initialiser leaves it uninitialised.
static_assertions::assert_impl_all!(InterpreterOnceLock<Vec<u8>>: Send, Sync, Default);
static_assertions::assert_impl_all!(
    InterpreterOnceLock<Vec<u8>>: std::panic::UnwindSafe,
    std::panic::RefUnwindSafe
);
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
            head: OnceLock::new(),
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
        self.nodes()
            .find(|node| node.interpreter == interpreter)?
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
        Ok(self.node(interpreter).value.get_or_init(f))
    }

    /// The value of the interpreter this thread is attached to, initialised by `f` if no
    /// other call did so first in that interpreter; `f`'s error leaves it uninitialised.
    /// Waits and runs `f` as [`get_or_init`](Self::get_or_init) does.
    ///
    /// # Errors
    ///
    /// `f`'s error, or [`GilError::NotAttached`] (converted into `E`) if this thread is not
    /// attached to an interpreter.
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::{GilError, PythonException};
    ///
    /// let lock = gilguard::sync::InterpreterOnceLock::new();
    /// gilguard::initialize()?;
    /// let detached = lock.get_or_try_init(|| Ok::<u8, PythonException>(1));
    /// assert_eq!(detached.unwrap_err().message(), GilError::NotAttached.to_string());
    /// let value = gilguard::with_gil(|| lock.get_or_try_init(|| Ok::<u8, GilError>(2)).copied());
    /// assert_eq!(value, Ok(2));
    /// # Ok::<(), GilError>(())
    /// ```
    pub fn get_or_try_init<E: From<GilError>>(
        &self,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<&T, E> {
        let interpreter = Interpreter::current()?;
        self.node(interpreter).value.get_or_try_init(f)
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
        let mut next = &mut self.head;
        while let Some(node) = next.get_mut() {
            if node.interpreter == interpreter {
                return node.value.take();
            }
            next = &mut node.next;
        }
        None
    }

    /// The nodes of the chain, oldest first.
    fn nodes(&self) -> impl Iterator<Item = &Node<T>> {
        core::iter::successors(self.head.get(), |node| node.next.get()).map(|node| &**node)
    }

    /// The node of `interpreter`, appended if there was none.
    ///
    /// Walks to the first unset `next` (or `head`) and sets it; a thread that loses that
    /// race gets its node back and walks on from the node the winner set (which may be
    /// this interpreter's). `OnceLock::set` may wait, attached, for another thread's `set`
    /// of the same link, which only moves a `Box` in: it never waits for Python.
    fn node(&self, interpreter: Interpreter) -> &Node<T> {
        let mut new: Option<Box<Node<T>>> = None;
        let mut link = &self.head;
        loop {
            if let Some(node) = link.get() {
                if node.interpreter == interpreter {
                    return node;
                }
                link = &node.next;
                continue;
            }
            let node = new.take().unwrap_or_else(|| {
                Box::new(Node {
                    interpreter,
                    value: GilOnceLock::new(),
                    next: OnceLock::new(),
                })
            });
            // Set: the loop finds it next. Lost the race: keep the node and look at the one
            // that won (maybe this interpreter's).
            if let Err(node) = link.set(node) {
                new = Some(node);
            }
        }
    }
}

impl<T> Default for InterpreterOnceLock<T> {
    fn default() -> Self {
        InterpreterOnceLock::new()
    }
}

impl<T> Drop for InterpreterOnceLock<T> {
    /// Unlinks the chain node by node: dropping it as nested boxes would recurse once per
    /// interpreter.
    fn drop(&mut self) {
        let mut next = self.head.take();
        while let Some(mut node) = next {
            next = node.next.take();
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for InterpreterOnceLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.nodes()
                    .map(|node| (node.interpreter.id(), &node.value)),
            )
            .finish()
    }
}
