//! Critical sections: CPython's per-object locks of free-threaded builds, as closures and
//! as guards.
//!
//! On a free-threaded build (`Py_GIL_DISABLED`) these call `PyCriticalSection_Begin` /
//! `PyCriticalSection2_Begin` / `PyCriticalSection_BeginMutex` and the matching `End`,
//! which is what `Py_BEGIN_CRITICAL_SECTION` and its variants expand to. With the GIL those
//! macros expand to nothing, and so these only check that the thread is attached.
//!
//! CPython requires a thread's critical sections to end in the reverse order of their
//! beginning. The closure forms ([`with_critical_section`], [`with_critical_section2`],
//! `with_critical_section_mutex`) keep that order by construction and are the
//! recommended way; they keep the section struct on the stack, as CPython's macros do. The
//! guards ([`CriticalSection`], [`CriticalSection2`]) have `unsafe` constructors, since a
//! guard dropped out of order corrupts CPython's list; they box the struct so that a moved
//! guard stays valid and a leaked one leaves a section held for good instead of a pointer
//! into a dead frame.
//!
//! This file holds the closure forms; `guard.rs` the guards.

#![allow(
    unsafe_code,
    reason = "calls CPython's critical-section functions (C preconditions: raw::ffi)"
)]

mod guard;

use crate::raw::ffi::PyObject;
#[cfg(any(Py_GIL_DISABLED, Py_3_14))]
use crate::raw::ffi::critical_section as cs;

use crate::GilError;

pub use guard::{CriticalSection, CriticalSection2};

/// Runs `f` inside a critical section on `object`: on free-threaded builds no other thread
/// runs a critical section on the same object meanwhile (while this thread stays attached);
/// with the GIL, the GIL already does that.
///
/// As in CPython, the section is suspended while this thread is detached (inside `f`, by
/// [`without_gil`](crate::without_gil) or by a blocking Python call), and may be suspended
/// when `f` begins another critical section; it is re-acquired before `f` continues. So it
/// protects what `f` does between such points, not `f` as a whole, exactly as the GIL does
/// on a build that has one. It ends when `f` returns or panics.
///
/// This closure form is the recommended one: it ends the section where it began it, so
/// sections nest by construction, and it keeps CPython's section struct on the stack, as
/// `Py_BEGIN_CRITICAL_SECTION` does (no allocation). [`CriticalSection`] is the guard form,
/// for code a closure does not fit.
///
/// # Safety
///
/// `object` must point to a live Python object (of the interpreter this thread is attached
/// to) for the duration of the call.
///
/// # Errors
///
/// [`GilError::NotAttached`] if this thread is not attached; `f` has not run then. (CPython
/// would crash or corrupt the object.)
///
/// # Examples
///
/// ```
/// use gilguard::sync::with_critical_section;
///
/// gilguard::initialize()?;
/// gilguard::with_gil(|| {
///     // SAFETY: attached; a new list, released below.
///     let list = unsafe { pyo3_ffi::PyList_New(0) };
///     assert!(!list.is_null());
///     // SAFETY: `list` is a live object of this interpreter until the `Py_DECREF`.
///     let length = unsafe {
///         with_critical_section(list, || {
///             // SAFETY: attached, `list` is live, and no other thread mutates it now.
///             pyo3_ffi::PyList_Append(list, pyo3_ffi::Py_None());
///             pyo3_ffi::PyList_Size(list)
///         })
///     };
///     assert_eq!(length, Ok(1));
///     // SAFETY: releases the reference made above.
///     unsafe { pyo3_ffi::Py_DECREF(list) };
/// });
/// # Ok::<(), gilguard::GilError>(())
/// ```
pub unsafe fn with_critical_section<R>(
    object: *mut PyObject,
    f: impl FnOnce() -> R,
) -> Result<R, GilError> {
    if !crate::is_attached() {
        return Err(GilError::NotAttached);
    }
    #[cfg(Py_GIL_DISABLED)]
    {
        let mut section = core::mem::MaybeUninit::<cs::PyCriticalSection>::uninit();
        // SAFETY: attached (checked), `object` live (caller); `section` stays in place until
        // `End` below, which pairs with this.
        unsafe { cs::begin(section.as_mut_ptr(), object) };
        let _end = End(section.as_mut_ptr());
        Ok(f())
    }
    #[cfg(not(Py_GIL_DISABLED))]
    {
        let _ = object;
        Ok(f())
    }
}

/// Runs `f` inside a critical section on two objects at once, as
/// `Py_BEGIN_CRITICAL_SECTION2`: on free-threaded builds both are locked without the
/// lock-order deadlock two nested sections could have (CPython orders them); `a` and `b`
/// may be the same object. With the GIL, only the check that the thread is attached.
///
/// Suspended and resumed as [`with_critical_section`]'s. Recommended over the guard form,
/// [`CriticalSection2`], for the same reasons.
///
/// # Safety
///
/// `a` and `b` must point to live Python objects (of the interpreter this thread is
/// attached to) for the duration of the call.
///
/// # Errors
///
/// [`GilError::NotAttached`] if this thread is not attached; `f` has not run then.
///
/// # Examples
///
/// ```
/// use gilguard::sync::with_critical_section2;
///
/// gilguard::initialize()?;
/// gilguard::with_gil(|| {
///     // SAFETY: attached; two new lists, released below.
///     let (from, to) = unsafe { (pyo3_ffi::PyList_New(0), pyo3_ffi::PyList_New(0)) };
///     // SAFETY: both are live until the `Py_DECREF`s.
///     let moved = unsafe {
///         with_critical_section2(from, to, || {
///             // SAFETY: attached, both lists live and locked.
///             pyo3_ffi::PyList_Append(to, pyo3_ffi::Py_None());
///             pyo3_ffi::PyList_Size(to) - pyo3_ffi::PyList_Size(from)
///         })
///     };
///     assert_eq!(moved, Ok(1));
///     // SAFETY: releases the references made above.
///     unsafe {
///         pyo3_ffi::Py_DECREF(from);
///         pyo3_ffi::Py_DECREF(to);
///     }
/// });
/// # Ok::<(), gilguard::GilError>(())
/// ```
pub unsafe fn with_critical_section2<R>(
    a: *mut PyObject,
    b: *mut PyObject,
    f: impl FnOnce() -> R,
) -> Result<R, GilError> {
    if !crate::is_attached() {
        return Err(GilError::NotAttached);
    }
    #[cfg(Py_GIL_DISABLED)]
    {
        let mut section = core::mem::MaybeUninit::<cs::PyCriticalSection2>::uninit();
        // SAFETY: attached (checked), `a` and `b` live (caller); `section` stays in place
        // until `End2` below, which pairs with this.
        unsafe { cs::begin2(section.as_mut_ptr(), a, b) };
        let _end = End2(section.as_mut_ptr());
        Ok(f())
    }
    #[cfg(not(Py_GIL_DISABLED))]
    {
        let _ = (a, b);
        Ok(f())
    }
}

/// Runs `f` inside a critical section on `mutex`, as `Py_BEGIN_CRITICAL_SECTION_MUTEX`
/// (CPython 3.14+): for data that is not a Python object but is used from Python code, and
/// must follow the same rules (suspended while the thread is detached, no deadlock with the
/// critical sections of objects). With the GIL, CPython's macro does nothing, and so this
/// only checks that the thread is attached: the mutex is *not* locked then, and code that
/// locks it directly (`PyMutex_Lock`) is not excluded.
///
/// Safe, unlike the object forms: a reference is live for the call by construction. The
/// guard form is [`CriticalSection::begin_mutex`] (`unsafe`, as every guard form).
///
/// # Errors
///
/// [`GilError::NotAttached`] if this thread is not attached; `f` has not run then.
///
/// # Examples
///
/// ```
/// use gilguard::sync::with_critical_section_mutex;
///
/// static MUTEX: pyo3_ffi::PyMutex = pyo3_ffi::PyMutex::new();
///
/// gilguard::initialize()?;
/// assert_eq!(with_critical_section_mutex(&MUTEX, || 1), Err(gilguard::GilError::NotAttached));
/// assert_eq!(gilguard::with_gil(|| with_critical_section_mutex(&MUTEX, || 2)), Ok(2));
/// # Ok::<(), gilguard::GilError>(())
/// ```
#[cfg(Py_3_14)]
pub fn with_critical_section_mutex<R>(
    mutex: &cs::PyMutex,
    f: impl FnOnce() -> R,
) -> Result<R, GilError> {
    if !crate::is_attached() {
        return Err(GilError::NotAttached);
    }
    #[cfg(Py_GIL_DISABLED)]
    {
        let mut section = core::mem::MaybeUninit::<cs::PyCriticalSection>::uninit();
        // SAFETY: attached (checked); a `PyMutex` is an atomic byte, which CPython may change
        // through a pointer from a shared reference; `section` stays in place until `End`.
        unsafe { cs::begin_mutex(section.as_mut_ptr(), core::ptr::from_ref(mutex).cast_mut()) };
        let _end = End(section.as_mut_ptr());
        Ok(f())
    }
    #[cfg(not(Py_GIL_DISABLED))]
    {
        let _ = mutex;
        Ok(f())
    }
}

/// Ends a one-object (or mutex) critical section when dropped, also on unwinding.
#[cfg(Py_GIL_DISABLED)]
struct End(*mut cs::PyCriticalSection);

#[cfg(Py_GIL_DISABLED)]
impl Drop for End {
    fn drop(&mut self) {
        // SAFETY: pairs with the `Begin` that filled this section, the thread's innermost: every
        // section begun in the closure has ended (closures end theirs; guards must, by contract).
        unsafe { cs::end(self.0) }
    }
}

/// Ends a two-object critical section when dropped, also on unwinding.
#[cfg(Py_GIL_DISABLED)]
struct End2(*mut cs::PyCriticalSection2);

#[cfg(Py_GIL_DISABLED)]
impl Drop for End2 {
    fn drop(&mut self) {
        // SAFETY: as for `End`, with `PyCriticalSection2_Begin`.
        unsafe { cs::end2(self.0) }
    }
}
