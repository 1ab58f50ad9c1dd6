//! `gil_stats()` and `gil_stats_reset()`: gilguard's `stats` snapshot as a Python dict.

use std::ffi::CString;
use std::time::Duration;

use gilguard::stats::{self, AttachKind, Counts, Snapshot};
use gilguard::{OwnedRef, PythonException, boundary};
use pyo3_ffi as ffi;

use crate::py::{self, owned};

/// `gil_stats() -> dict` (`METH_NOARGS`): `{"total": counts, "interpreters": [counts with
/// "id" and "runtime"], "sites": [{"site": "file:line", "attaches", "wait", "longest_wait",
/// "holds", "hold", "longest_hold"}]}`, the sites costliest first; counts are `{"nested",
/// "detached", "native", "handle", "restore", "detaches", "wait", "hold", "longest_hold",
/// "waiting_now"}`; times in seconds.
///
/// # Safety
/// Called by CPython, attached.
pub unsafe extern "C" fn gil_stats(
    _module: *mut ffi::PyObject,
    _unused: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    boundary(|| {
        // SAFETY: attached (CPython's calling convention).
        let dict = unsafe { snapshot_dict(&stats::snapshot()) }?;
        Ok(dict.to_owned_ptr()?.as_ptr())
    })
}

/// `gil_stats_reset()` (`METH_NOARGS`): sets the figures to zero.
///
/// # Safety
/// Called by CPython, attached.
pub unsafe extern "C" fn gil_stats_reset(
    _module: *mut ffi::PyObject,
    _unused: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    stats::reset();
    // SAFETY: attached.
    unsafe { py::none() }
}

/// The dict of `snapshot`.
///
/// # Safety
/// Attached.
unsafe fn snapshot_dict(snapshot: &Snapshot) -> Result<OwnedRef, PythonException> {
    // SAFETY: attached (caller); each object is a new reference held by an `OwnedRef` until
    // it is stored.
    unsafe {
        let dict = owned(ffi::PyDict_New())?;
        set(&dict, "total", &counts(&snapshot.total)?)?;
        let interpreters = owned(ffi::PyList_New(0))?;
        for interpreter in &snapshot.interpreters {
            let entry = counts(&interpreter.counts)?;
            set(&entry, "id", &int(interpreter.id)?)?;
            set(&entry, "runtime", &unsigned(interpreter.runtime)?)?;
            append(&interpreters, &entry)?;
        }
        set(&dict, "interpreters", &interpreters)?;
        let sites = owned(ffi::PyList_New(0))?;
        for site in &snapshot.sites {
            let entry = owned(ffi::PyDict_New())?;
            let place = format!("{}:{}", site.site.file(), site.site.line());
            set(&entry, "site", &text(&place)?)?;
            set(&entry, "attaches", &unsigned(site.attaches)?)?;
            set(&entry, "wait", &seconds(site.wait)?)?;
            set(&entry, "longest_wait", &seconds(site.longest_wait)?)?;
            set(&entry, "holds", &unsigned(site.holds)?)?;
            set(&entry, "hold", &seconds(site.hold)?)?;
            set(&entry, "longest_hold", &seconds(site.longest_hold)?)?;
            append(&sites, &entry)?;
        }
        set(&dict, "sites", &sites)?;
        Ok(dict)
    }
}

/// A dict of `counts`.
///
/// # Safety
/// Attached.
unsafe fn counts(counts: &Counts) -> Result<OwnedRef, PythonException> {
    // SAFETY: attached (caller).
    unsafe {
        let dict = owned(ffi::PyDict_New())?;
        for kind in AttachKind::ALL {
            set(&dict, kind.name(), &unsigned(counts.attaches(kind))?)?;
        }
        set(&dict, "detaches", &unsigned(counts.detaches)?)?;
        set(&dict, "wait", &seconds(counts.wait)?)?;
        set(&dict, "hold", &seconds(counts.hold)?)?;
        set(&dict, "longest_hold", &seconds(counts.longest_hold)?)?;
        set(&dict, "waiting_now", &unsigned(counts.waiting_now)?)?;
        Ok(dict)
    }
}

/// `dict[key] = value`.
///
/// # Safety
/// Attached; `dict` is a dict.
unsafe fn set(dict: &OwnedRef, key: &str, value: &OwnedRef) -> Result<(), PythonException> {
    let key = CString::new(key).expect("no NUL in a key");
    // SAFETY: attached, live objects (caller); the dict takes its own references.
    match unsafe { ffi::PyDict_SetItemString(dict.as_ptr(), key.as_ptr(), value.as_ptr()) } {
        0 => Ok(()),
        _ => Err(PythonException::fetch()),
    }
}

/// `list.append(value)`.
///
/// # Safety
/// Attached; `list` is a list.
unsafe fn append(list: &OwnedRef, value: &OwnedRef) -> Result<(), PythonException> {
    // SAFETY: attached, live objects (caller); the list takes its own reference.
    match unsafe { ffi::PyList_Append(list.as_ptr(), value.as_ptr()) } {
        0 => Ok(()),
        _ => Err(PythonException::fetch()),
    }
}

/// An `int`.
///
/// # Safety
/// Attached.
unsafe fn unsigned(value: u64) -> Result<OwnedRef, PythonException> {
    // SAFETY: attached (caller).
    unsafe { owned(ffi::PyLong_FromUnsignedLongLong(value)) }
}

/// An `int`.
///
/// # Safety
/// Attached.
unsafe fn int(value: i64) -> Result<OwnedRef, PythonException> {
    // SAFETY: attached (caller).
    unsafe { owned(ffi::PyLong_FromLongLong(value)) }
}

/// A `float` of seconds.
///
/// # Safety
/// Attached.
unsafe fn seconds(value: Duration) -> Result<OwnedRef, PythonException> {
    // SAFETY: attached (caller).
    unsafe { owned(ffi::PyFloat_FromDouble(value.as_secs_f64())) }
}

/// A `str`.
///
/// # Safety
/// Attached.
unsafe fn text(value: &str) -> Result<OwnedRef, PythonException> {
    let value = CString::new(value).expect("no NUL in a path");
    // SAFETY: attached (caller).
    unsafe { owned(ffi::PyUnicode_FromString(value.as_ptr())) }
}
