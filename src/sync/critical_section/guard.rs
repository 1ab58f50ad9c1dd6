//! The guard forms of critical sections, [`CriticalSection`] and [`CriticalSection2`]:
//! `unsafe` constructors, and on free-threaded builds the section struct in a heap
//! allocation (see the parent module's docs).

#![allow(
    unsafe_code,
    reason = "calls CPython's critical-section functions (C preconditions: raw::ffi)"
)]

use core::marker::PhantomData;

use crate::raw::ffi::PyObject;
#[cfg(any(Py_GIL_DISABLED, Py_3_14))]
use crate::raw::ffi::critical_section as cs;

use crate::GilError;
use crate::marker::CPythonThreadState;

/// A critical section on one Python object (or, on 3.14+, on a `PyMutex`), held until the
/// guard is dropped: `Py_BEGIN_CRITICAL_SECTION` / `Py_END_CRITICAL_SECTION` as a guard.
///
/// Prefer [`with_critical_section`](super::with_critical_section) (and
/// `with_critical_section_mutex` on 3.14+): a closure ends its section where it began it,
/// so the rules of [`begin`](CriticalSection::begin)'s `# Safety` hold by construction.
/// The guard is for code a closure does not fit, such as a section that spans several
/// `match` arms or that is begun in one function and ended by its caller's scope; it has
/// an `unsafe` constructor because misusing it is unsound, as [`WithoutGil`]'s has.
///
/// On a free-threaded build the guard owns one heap allocation holding CPython's
/// `PyCriticalSection`, whose address CPython links into the thread state's list of
/// critical sections: moving the guard does not move the section. With the GIL the guard
/// holds nothing (CPython's macros expand to nothing there); beginning it only checks that
/// the thread is attached. Suspension and resumption are
/// [`with_critical_section`](super::with_critical_section)'s: the section protects what
/// the thread does while it stays attached and begins no other section, not the guard's
/// whole life.
///
/// [`WithoutGil`]: crate::WithoutGil
#[must_use = "the critical section ends as soon as the guard is dropped"]
#[clippy::has_significant_drop]
#[derive(Debug)]
pub struct CriticalSection<'a> {
    /// From `boxed`; freed by `drop` after `PyCriticalSection_End`, never if leaked.
    #[cfg(Py_GIL_DISABLED)]
    section: core::ptr::NonNull<cs::PyCriticalSection>,
    _object: PhantomData<&'a ()>,
    _thread: CPythonThreadState,
}

static_assertions::assert_not_impl_any!(CriticalSection<'static>: Send, Sync);

impl<'a> CriticalSection<'a> {
    /// Begins a critical section on `object`, held until the guard is dropped.
    ///
    /// # Safety
    ///
    /// * `object` points to a live Python object of the interpreter this thread is attached
    ///   to, and stays alive as long as the guard exists (at least for `'a`, which the
    ///   compiler does not relate to `object`); for good if the guard is leaked.
    /// * The thread's critical sections end in the reverse order of their beginning: this
    ///   guard is dropped after every critical section this thread begins after it (guards,
    ///   closure forms, CPython's own `Py_BEGIN_CRITICAL_SECTION` in code you call) and
    ///   before any begun before it ends (those of the closure forms and of the C code that
    ///   called yours: do not return the guard out of such a closure or callback). Guards
    ///   dropped in reverse order of creation, that is strictly nested, satisfy this.
    /// * It is dropped on the thread that created it (the compiler enforces that) while that
    ///   thread is attached to the thread state it was attached to when the section began:
    ///   not inside a [`without_gil`](crate::without_gil) or [`WithoutGil`](crate::WithoutGil)
    ///   begun after it, nor with another interpreter's thread state attached.
    ///
    /// **Leaking** a guard (`mem::forget`, an `Rc` cycle) is allowed within these rules: the
    /// section then never ends, so nothing begun before it may end either, and the object
    /// must stay alive for good. On a free-threaded build that is not undefined behaviour,
    /// because the section lives in an allocation that only `drop` frees: every pointer
    /// CPython keeps to it (the thread state's innermost section, the link of each section
    /// begun later) stays valid. When the thread detaches, CPython walks the active
    /// sections from the innermost, unlocks their mutexes and marks them suspended (writing
    /// into that allocation); when it attaches again, and when a newer section ends, it
    /// resumes only the innermost one, locking its mutex again (the object's, which is why
    /// the object must stay alive). So a leaked section is a section whose end never comes:
    /// the object stays locked except while the section is suspended, and other
    /// threads' critical sections on the object wait meanwhile: at worst a deadlock, like
    /// a leaked `MutexGuard`'s, not memory unsafety. What breaks is ending an older section
    /// afterwards, which the nesting rule forbids: CPython's end unlocks that section's
    /// mutex and makes its predecessor the innermost without checking that it was the
    /// innermost, so the leaked section leaves the list with its lock held for good, or,
    /// if the older section was suspended when the newer one began (beginning may wait
    /// detached), a mutex this thread does not hold is unlocked: another thread's section
    /// loses its exclusion (undefined behaviour), or CPython aborts on a mutex that is not
    /// locked. A section on the stack, as `Py_BEGIN_CRITICAL_SECTION` makes, would
    /// instead leave CPython pointing into a dead frame. With the GIL a leaked guard has no
    /// effect at all.
    ///
    /// # Errors
    ///
    /// [`GilError::NotAttached`] if this thread is not attached; no section has begun then
    /// (CPython would crash or corrupt the object).
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::sync::CriticalSection;
    ///
    /// gilguard::initialize()?;
    /// // SAFETY: not attached, so the pointer is never used.
    /// let refused = unsafe { CriticalSection::begin(std::ptr::null_mut()) };
    /// assert_eq!(refused.unwrap_err(), gilguard::GilError::NotAttached);
    /// gilguard::with_gil(|| -> Result<(), gilguard::GilError> {
    ///     // SAFETY: attached; a new list, released below.
    ///     let list = unsafe { pyo3_ffi::PyList_New(0) };
    ///     assert!(!list.is_null());
    ///     // SAFETY: `list` is live until the `Py_DECREF`, after the guard is dropped; the
    ///     // guard is dropped below, on this thread, attached, and no section is begun
    ///     // meanwhile.
    ///     let section = unsafe { CriticalSection::begin(list)? };
    ///     // SAFETY: attached, `list` is live, and no other thread mutates it now.
    ///     let length = unsafe {
    ///         pyo3_ffi::PyList_Append(list, pyo3_ffi::Py_None());
    ///         pyo3_ffi::PyList_Size(list)
    ///     };
    ///     drop(section);
    ///     assert_eq!(length, 1);
    ///     // SAFETY: releases the reference made above.
    ///     unsafe { pyo3_ffi::Py_DECREF(list) };
    ///     Ok(())
    /// })?;
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    pub unsafe fn begin(object: *mut PyObject) -> Result<CriticalSection<'a>, GilError> {
        if !crate::is_attached() {
            return Err(GilError::NotAttached);
        }
        #[cfg(Py_GIL_DISABLED)]
        {
            let section = boxed::<cs::PyCriticalSection>();
            // SAFETY: attached (checked), `object` live (caller); `section`, a fresh allocation,
            // stays in place until `drop`, whose `End` pairs with this.
            unsafe { cs::begin(section.as_ptr(), object) };
            Ok(CriticalSection {
                section,
                _object: PhantomData,
                _thread: CPythonThreadState::NEW,
            })
        }
        #[cfg(not(Py_GIL_DISABLED))]
        {
            let _ = object;
            Ok(CriticalSection {
                _object: PhantomData,
                _thread: CPythonThreadState::NEW,
            })
        }
    }

    /// Begins a critical section on `mutex` (CPython 3.14+), held until the guard is
    /// dropped: `Py_BEGIN_CRITICAL_SECTION_MUTEX` as a guard. With the GIL the mutex is
    /// *not* locked, as in CPython (see
    /// [`with_critical_section_mutex`](super::with_critical_section_mutex)).
    ///
    /// # Safety
    ///
    /// As [`CriticalSection::begin`]'s, with `mutex` for the object: the borrow keeps it
    /// alive for `'a`, but a leaked guard needs it alive for good (a `static`, or leaked
    /// too), since CPython locks it again whenever it resumes the section.
    ///
    /// # Errors
    ///
    /// [`GilError::NotAttached`] if this thread is not attached; no section has begun then.
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::sync::CriticalSection;
    ///
    /// static MUTEX: pyo3_ffi::PyMutex = pyo3_ffi::PyMutex::new();
    ///
    /// gilguard::initialize()?;
    /// gilguard::with_gil(|| {
    ///     // SAFETY: `MUTEX` lives for good; the guard is dropped at the end of this
    ///     // closure, attached, and no section is begun meanwhile.
    ///     let _section = unsafe { CriticalSection::begin_mutex(&MUTEX) }?;
    ///     // ... use what `MUTEX` protects ...
    ///     Ok::<(), gilguard::GilError>(())
    /// })?;
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    #[cfg(Py_3_14)]
    pub unsafe fn begin_mutex(mutex: &'a cs::PyMutex) -> Result<CriticalSection<'a>, GilError> {
        if !crate::is_attached() {
            return Err(GilError::NotAttached);
        }
        #[cfg(Py_GIL_DISABLED)]
        {
            let section = boxed::<cs::PyCriticalSection>();
            // SAFETY: as in `begin`; a `PyMutex` is an atomic byte, so CPython may change it
            // through a pointer from a shared reference, live while the section is (caller).
            unsafe { cs::begin_mutex(section.as_ptr(), core::ptr::from_ref(mutex).cast_mut()) };
            Ok(CriticalSection {
                section,
                _object: PhantomData,
                _thread: CPythonThreadState::NEW,
            })
        }
        #[cfg(not(Py_GIL_DISABLED))]
        {
            let _ = mutex;
            Ok(CriticalSection {
                _object: PhantomData,
                _thread: CPythonThreadState::NEW,
            })
        }
    }
}

impl Drop for CriticalSection<'_> {
    #[inline]
    fn drop(&mut self) {
        #[cfg(Py_GIL_DISABLED)]
        // SAFETY: by the constructor's contract, the innermost section, on the same thread state,
        // its object live: `End` pairs with its `Begin` and unlinks it; then freed once.
        unsafe {
            cs::end(self.section.as_ptr());
            unboxed(self.section);
        }
    }
}

/// A critical section on two Python objects at once, held until the guard is dropped:
/// `Py_BEGIN_CRITICAL_SECTION2` / `Py_END_CRITICAL_SECTION2` as a guard. Both objects are
/// locked without the lock-order deadlock two nested sections could have; they may be the
/// same object.
///
/// Prefer [`with_critical_section2`](super::with_critical_section2); the guard is
/// [`CriticalSection`]'s two-object form, with the same storage (one allocation on
/// free-threaded builds, nothing with the GIL) and the same rules.
#[must_use = "the critical section ends as soon as the guard is dropped"]
#[clippy::has_significant_drop]
#[derive(Debug)]
pub struct CriticalSection2<'a> {
    /// From `boxed`; freed by `drop` after `PyCriticalSection2_End`, never if leaked.
    #[cfg(Py_GIL_DISABLED)]
    section: core::ptr::NonNull<cs::PyCriticalSection2>,
    _objects: PhantomData<&'a ()>,
    _thread: CPythonThreadState,
}

static_assertions::assert_not_impl_any!(CriticalSection2<'static>: Send, Sync);

impl<'a> CriticalSection2<'a> {
    /// Begins a critical section on `a` and `b`, held until the guard is dropped.
    ///
    /// # Safety
    ///
    /// As [`CriticalSection::begin`]'s, for both objects: `a` and `b` live as long as the
    /// guard exists (for good if it is leaked), sections end in the reverse order of their
    /// beginning, and the guard is dropped attached to the thread state it began in. A
    /// leaked guard is not undefined behaviour for the reasons given there; CPython
    /// suspends and resumes both mutexes of a two-object section together.
    ///
    /// # Errors
    ///
    /// [`GilError::NotAttached`] if this thread is not attached; no section has begun then.
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::sync::{CriticalSection, CriticalSection2};
    ///
    /// gilguard::initialize()?;
    /// gilguard::with_gil(|| -> Result<(), gilguard::GilError> {
    ///     // SAFETY: attached; two new lists, released below.
    ///     let (from, to) = unsafe { (pyo3_ffi::PyList_New(0), pyo3_ffi::PyList_New(0)) };
    ///     // SAFETY: both lists are live until the `Py_DECREF`s, after both guards are
    ///     // dropped; the guards are dropped newest first, here, attached.
    ///     let (outer, inner) = unsafe {
    ///         let outer = CriticalSection::begin(from)?;
    ///         (outer, CriticalSection2::begin(from, to)?)
    ///     };
    ///     // SAFETY: attached, both lists live and locked (the inner section is the
    ///     // innermost, which holds both).
    ///     let moved = unsafe {
    ///         pyo3_ffi::PyList_Append(to, pyo3_ffi::Py_None());
    ///         pyo3_ffi::PyList_Size(to) - pyo3_ffi::PyList_Size(from)
    ///     };
    ///     drop(inner);
    ///     drop(outer);
    ///     assert_eq!(moved, 1);
    ///     // SAFETY: releases the references made above.
    ///     unsafe {
    ///         pyo3_ffi::Py_DECREF(from);
    ///         pyo3_ffi::Py_DECREF(to);
    ///     }
    ///     Ok(())
    /// })?;
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    pub unsafe fn begin(
        a: *mut PyObject,
        b: *mut PyObject,
    ) -> Result<CriticalSection2<'a>, GilError> {
        if !crate::is_attached() {
            return Err(GilError::NotAttached);
        }
        #[cfg(Py_GIL_DISABLED)]
        {
            let section = boxed::<cs::PyCriticalSection2>();
            // SAFETY: attached (checked), `a` and `b` live (caller); `section`, a fresh
            // allocation, stays in place until `drop`, whose `End2` pairs with this.
            unsafe { cs::begin2(section.as_ptr(), a, b) };
            Ok(CriticalSection2 {
                section,
                _objects: PhantomData,
                _thread: CPythonThreadState::NEW,
            })
        }
        #[cfg(not(Py_GIL_DISABLED))]
        {
            let _ = (a, b);
            Ok(CriticalSection2 {
                _objects: PhantomData,
                _thread: CPythonThreadState::NEW,
            })
        }
    }
}

impl Drop for CriticalSection2<'_> {
    #[inline]
    fn drop(&mut self) {
        #[cfg(Py_GIL_DISABLED)]
        // SAFETY: as for `CriticalSection`'s drop, pairing with `PyCriticalSection2_Begin`.
        unsafe {
            cs::end2(self.section.as_ptr());
            unboxed(self.section);
        }
    }
}

/// A fresh, uninitialised heap slot for a section struct, at an address that stays put
/// until [`unboxed`]: CPython fills it in `Begin` and links it into the thread state.
/// Kept as a raw pointer, not a `Box`, so that moving the guard asserts nothing about the
/// slot CPython writes through its own pointers.
#[cfg(Py_GIL_DISABLED)]
fn boxed<T>() -> core::ptr::NonNull<T> {
    let slot = Box::new(core::mem::MaybeUninit::<T>::uninit());
    core::ptr::NonNull::from(Box::leak(slot)).cast()
}

/// Frees a slot made by [`boxed`].
///
/// # Safety
///
/// `slot` came from `boxed::<T>()`, is no longer used by CPython (its section has ended),
/// and is freed only once.
#[cfg(Py_GIL_DISABLED)]
unsafe fn unboxed<T>(slot: core::ptr::NonNull<T>) {
    // SAFETY: a `Box<MaybeUninit<T>>` allocation that nothing else uses (caller).
    drop(unsafe { Box::from_raw(slot.cast::<core::mem::MaybeUninit<T>>().as_ptr()) });
}
