//! [`OwnedRef`]: a strong reference to a Python object that knows its interpreter and its
//! runtime, and is released only there.

#![allow(
    unsafe_code,
    reason = "takes over and releases references (C preconditions: raw::ffi)"
)]

use core::fmt;
use core::ptr::NonNull;
use std::sync::Arc;

use crate::raw::ffi::{self, PyObject};

use crate::error::GilError;
use crate::guards::with_gil::try_with_gil;
use crate::interpreters::deferred;
use crate::interpreters::interpreter::Interpreter;

/// A strong reference to a Python object, which remembers the interpreter and the runtime
/// the object belongs to: `Send` and `Sync`, cloned and dropped on any thread, and released
/// only where that is sound.
///
/// A Python object belongs to one interpreter, and its reference count may only change while
/// a thread is attached to that interpreter. A raw `*mut PyObject` cannot be sent to another
/// thread (and wrapping one in an `unsafe impl Send` type is how extension modules usually
/// get this wrong), and `pyo3`'s `Py<T>` releases into whichever interpreter the next token
/// comes from. This type keeps the reference's owner straight:
///
/// * **Cloning** shares the one Python reference it holds (an atomic count in Rust): no GIL
///   needed, on any thread.
/// * **Dropping the last clone** releases the Python reference: at once if this thread is
///   attached to the object's interpreter; otherwise, for the main interpreter, by attaching
///   to it ([`try_with_gil`](crate::try_with_gil)); for a sub-interpreter, the next time this
///   crate runs code there ([`ThreadStateHandle::run`](crate::ThreadStateHandle::run), or
///   when it ends the interpreter). Never into another interpreter: if the object's runtime
///   is finalizing or gone, the reference is leaked, as a leak is safe and a release there
///   is not.
/// * **Using the object** goes through [`as_ptr`](Self::as_ptr), in `unsafe` code attached
///   to the object's interpreter; [`is_usable`](Self::is_usable) tells whether this thread
///   is, and [`to_owned_ptr`](Self::to_owned_ptr) checks it before it hands out a new
///   reference.
///
/// # Examples
///
/// A module cached once per interpreter, from any thread:
///
/// ```
/// use gilguard::sync::InterpreterOnceLock;
/// use gilguard::{OwnedRef, PythonException, ffi, with_gil};
///
/// static JSON: InterpreterOnceLock<OwnedRef> = InterpreterOnceLock::new();
///
/// fn json() -> Result<OwnedRef, PythonException> {
///     let module = JSON.get_or_try_init(|| {
///         // SAFETY: attached (`get_or_try_init` runs attached); a new reference or null.
///         let module = unsafe { ffi::PyImport_ImportModule(c"json".as_ptr()) };
///         let module = core::ptr::NonNull::new(module).ok_or_else(PythonException::fetch)?;
///         // SAFETY: a new reference of the interpreter this thread is attached to.
///         Ok::<_, PythonException>(unsafe { OwnedRef::from_owned(module) }?)
///     })?;
///     Ok(module.clone())
/// }
///
/// gilguard::initialize()?;
/// let module = with_gil(json)?;
/// // Sent to another thread and dropped there: released under the main interpreter's GIL.
/// std::thread::spawn(move || drop(module)).join().unwrap();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct OwnedRef(Arc<Owned>);

/// The one Python reference all clones share.
struct Owned {
    object: NonNull<PyObject>,
    interpreter: Interpreter,
}

// SAFETY: an object belongs to an interpreter, not a thread; it is only used attached to it
// (by callers: `as_ptr`'s contract; `to_owned_ptr` and `Drop` check, or attach).
unsafe impl Send for Owned {}
// SAFETY: as for `Send`; shared access reads the address and the interpreter only.
unsafe impl Sync for Owned {}

static_assertions::assert_impl_all!(OwnedRef: Send, Sync, Clone);

impl OwnedRef {
    /// Takes over `object`, a strong reference of the interpreter this thread is attached
    /// to (what most C API calls return: a "new reference").
    ///
    /// # Safety
    /// `object` is a strong reference to a live object of that interpreter, which the caller
    /// owns and gives up.
    ///
    /// # Errors
    /// [`GilError::NotAttached`] if this thread is not attached (the reference is then still
    /// the caller's), and [`GilError::Unsupported`] as for
    /// [`Interpreter::current`](crate::Interpreter::current).
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::{OwnedRef, ffi, with_gil};
    ///
    /// gilguard::initialize()?;
    /// let answer = with_gil(|| {
    ///     // SAFETY: attached; `PyLong_FromLong` returns a new reference (checked below).
    ///     let object = unsafe { ffi::PyLong_FromLong(42) };
    ///     let object = core::ptr::NonNull::new(object).expect("no memory");
    ///     // SAFETY: a new reference of the interpreter this thread is attached to.
    ///     unsafe { OwnedRef::from_owned(object) }
    /// })?;
    /// assert!(!answer.is_usable()); // detached here
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    pub unsafe fn from_owned(object: NonNull<PyObject>) -> Result<OwnedRef, GilError> {
        let interpreter = Interpreter::current()?;
        // SAFETY: as required by the caller, of the current interpreter.
        Ok(unsafe { OwnedRef::new(object, interpreter) })
    }

    /// Takes over `object`, a strong reference of `interpreter`, which this thread is
    /// attached to (named by the caller).
    ///
    /// # Safety
    /// As [`from_owned`](Self::from_owned), and `interpreter` is the current one.
    pub(crate) unsafe fn new(object: NonNull<PyObject>, interpreter: Interpreter) -> OwnedRef {
        OwnedRef(Arc::new(Owned {
            object,
            interpreter,
        }))
    }

    /// A new strong reference to `object`, a borrowed reference of the interpreter this
    /// thread is attached to.
    ///
    /// # Safety
    /// `object` points to a live object of that interpreter.
    ///
    /// # Errors
    /// As [`from_owned`](Self::from_owned); nothing is changed then.
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::{OwnedRef, ffi, with_gil};
    ///
    /// gilguard::initialize()?;
    /// let none = with_gil(|| {
    ///     // SAFETY: attached; `Py_None` is a live object of every interpreter.
    ///     unsafe { OwnedRef::from_borrowed(core::ptr::NonNull::new(ffi::Py_None()).unwrap()) }
    /// })?;
    /// # drop(none);
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    pub unsafe fn from_borrowed(object: NonNull<PyObject>) -> Result<OwnedRef, GilError> {
        let interpreter = Interpreter::current()?;
        // SAFETY: attached to the object's interpreter (caller, and checked above); the new
        // reference is given to the value.
        unsafe {
            ffi::incref(object.as_ptr());
            Ok(OwnedRef::new(object, interpreter))
        }
    }

    /// The object's address, for `unsafe` code attached to its
    /// [`interpreter`](Self::interpreter) (check with [`is_usable`](Self::is_usable)). The
    /// reference stays this value's: the pointer is valid while it (or a clone) lives.
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::{OwnedRef, ffi, with_gil};
    ///
    /// gilguard::initialize()?;
    /// let text = with_gil(|| {
    ///     // SAFETY: attached; a new reference, checked.
    ///     let object = unsafe { ffi::PyUnicode_FromString(c"spam".as_ptr()) };
    ///     // SAFETY: a new reference of this interpreter.
    ///     unsafe { OwnedRef::from_owned(core::ptr::NonNull::new(object).unwrap()) }
    /// })?;
    /// let length = with_gil(|| {
    ///     assert!(text.is_usable());
    ///     // SAFETY: attached to the object's interpreter (checked just above).
    ///     unsafe { ffi::PyObject_Length(text.as_ptr()) }
    /// });
    /// assert_eq!(length, 4);
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    #[must_use]
    pub fn as_ptr(&self) -> *mut PyObject {
        self.0.object.as_ptr()
    }

    /// The interpreter the object belongs to (in the runtime it was made in).
    ///
    /// # Examples
    ///
    /// ```
    /// # use gilguard::{OwnedRef, ffi, with_gil};
    /// gilguard::initialize()?;
    /// let none = with_gil(|| {
    ///     // SAFETY: attached; `Py_None` is live.
    ///     unsafe { OwnedRef::from_borrowed(core::ptr::NonNull::new(ffi::Py_None()).unwrap()) }
    /// })?;
    /// assert!(none.interpreter().is_main());
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    #[must_use]
    pub fn interpreter(&self) -> Interpreter {
        self.0.interpreter
    }

    /// Whether this thread is attached to the object's interpreter, in the runtime it was
    /// made in: when [`as_ptr`](Self::as_ptr) may be used.
    ///
    /// # Examples
    ///
    /// ```
    /// # use gilguard::{OwnedRef, ffi, with_gil};
    /// gilguard::initialize()?;
    /// let none = with_gil(|| {
    ///     // SAFETY: attached; `Py_None` is live.
    ///     unsafe { OwnedRef::from_borrowed(core::ptr::NonNull::new(ffi::Py_None()).unwrap()) }
    /// })?;
    /// assert!(!none.is_usable());
    /// assert!(with_gil(|| none.is_usable()));
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    #[must_use]
    pub fn is_usable(&self) -> bool {
        self.0.is_usable()
    }

    /// A new strong reference to the object, for C code that takes one (an extension
    /// function's return value, a slot that steals), once this thread is confirmed attached
    /// to the object's interpreter.
    ///
    /// # Errors
    /// [`GilError::NotAttached`] if this thread is not attached to the object's interpreter
    /// (or is, to one of a later runtime).
    ///
    /// # Examples
    ///
    /// ```
    /// # use gilguard::{GilError, OwnedRef, ffi, with_gil};
    /// gilguard::initialize()?;
    /// let none = with_gil(|| {
    ///     // SAFETY: attached; `Py_None` is live.
    ///     unsafe { OwnedRef::from_borrowed(core::ptr::NonNull::new(ffi::Py_None()).unwrap()) }
    /// })?;
    /// assert_eq!(none.to_owned_ptr().unwrap_err(), GilError::NotAttached);
    /// with_gil(|| {
    ///     let returned = none.to_owned_ptr().unwrap();
    ///     // SAFETY: attached; releases the new reference (a caller would return it).
    ///     unsafe { ffi::Py_DECREF(returned.as_ptr()) };
    /// });
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    pub fn to_owned_ptr(&self) -> Result<NonNull<PyObject>, GilError> {
        if !self.is_usable() {
            return Err(GilError::NotAttached);
        }
        // SAFETY: attached to the object's interpreter (checked); the object is alive while
        // `self` holds its reference.
        unsafe { ffi::incref(self.as_ptr()) };
        Ok(self.0.object)
    }
}

impl OwnedRef {
    /// [`to_owned_ptr`](Self::to_owned_ptr), giving up this value: the last clone hands its
    /// own reference over, without a count change (an extension function returning an object
    /// it made).
    ///
    /// # Errors
    /// As [`to_owned_ptr`](Self::to_owned_ptr); the value is dropped then.
    ///
    /// # Examples
    ///
    /// ```
    /// # use gilguard::{OwnedRef, ffi, with_gil};
    /// gilguard::initialize()?;
    /// with_gil(|| {
    ///     // SAFETY: attached; a new reference, checked, given to the `OwnedRef`.
    ///     let list = unsafe { OwnedRef::from_owned(core::ptr::NonNull::new(ffi::PyList_New(0)).unwrap()) }?;
    ///     let returned = list.into_owned_ptr()?;
    ///     // SAFETY: attached; the one reference, released (a caller would return it).
    ///     unsafe { ffi::Py_DECREF(returned.as_ptr()) };
    ///     Ok::<(), gilguard::GilError>(())
    /// })?;
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    pub fn into_owned_ptr(self) -> Result<NonNull<PyObject>, GilError> {
        if !self.is_usable() {
            return Err(GilError::NotAttached);
        }
        match Arc::try_unwrap(self.0) {
            Ok(last) => {
                let object = last.object;
                // The reference goes to the caller instead of being released.
                core::mem::forget(last);
                Ok(object)
            }
            Err(shared) => OwnedRef(shared).to_owned_ptr(),
        }
    }
}

impl Owned {
    fn is_usable(&self) -> bool {
        Interpreter::current().is_ok_and(|here| here == self.interpreter)
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        let object = self.object;
        if self.is_usable() {
            // SAFETY: attached to the object's interpreter (checked); the last clone gives
            // up the reference (may run Python code: finalizers).
            unsafe { ffi::decref(object.as_ptr()) };
            return;
        }
        let interpreter = self.interpreter;
        if interpreter.is_of_a_finalized_runtime() {
            return; // its runtime is gone, and the object with it
        }
        if interpreter.is_main() {
            let address = object.as_ptr() as usize;
            // Refused (and leaked) while the runtime finalizes.
            let _ = try_with_gil(|| {
                // SAFETY: attached to the main interpreter (`try_with_gil`) of the object's
                // runtime (same epoch); gives up the reference.
                unsafe { ffi::decref(address as *mut PyObject) };
            });
            return;
        }
        deferred::defer(interpreter, object);
    }
}

impl fmt::Debug for OwnedRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedRef")
            .field("object", &self.0.object)
            .field("interpreter", &self.0.interpreter)
            .finish()
    }
}
