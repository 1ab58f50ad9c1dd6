//! Issue 30: a reference to a Python object cloned and dropped, `OwnedRef` beside the raw
//! counts and `pyo3`'s `Py<T>`: on an attached thread, and released from a detached one.

use std::hint::black_box;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use gilguard::{OwnedRef, with_gil};
use pyo3::prelude::*;
use pyo3_ffi as ffi;

use super::{Group, Place, timed};

/// A list of the main interpreter, held by the test while the cases run.
fn list() -> OwnedRef {
    with_gil(|| {
        // SAFETY: attached (`with_gil`); a new reference, checked, given to the `OwnedRef`.
        unsafe { OwnedRef::from_owned(NonNull::new(ffi::PyList_New(0)).expect("a list")) }
    })
    .expect("attached")
}

/// Clone and drop on a thread attached to the object's interpreter.
pub fn attached() -> Group {
    Group {
        name: "reference_attached",
        place: Place::MainThread,
        raw: "raw_incref_decref",
        pyo3: Some("pyo3_clone_ref_drop"),
        cases: vec![
            ("raw_incref_decref", |n| {
                let object = list();
                with_gil(|| {
                    timed(n, || {
                        // SAFETY: attached to the list's interpreter; the pair is balanced.
                        unsafe {
                            ffi::Py_INCREF(black_box(object.as_ptr()));
                            ffi::Py_DECREF(black_box(object.as_ptr()));
                        }
                    })
                })
            }),
            ("owned_ref_clone_drop", |n| {
                let object = list();
                with_gil(|| timed(n, || drop(black_box(object.clone()))))
            }),
            ("pyo3_clone_ref_drop", |n| {
                Python::attach(|py| {
                    let object = pyo3::types::PyList::empty(py).unbind();
                    timed(n, || drop(black_box(object.clone_ref(py))))
                })
            }),
        ],
    }
}

/// The last reference released from a detached thread: the C way attaches for it; an
/// `OwnedRef` attaches too (`pyo3` cannot clone there, and only queues the release for its
/// next attach, which the case does not time). Set-up, making the references, is not timed.
pub fn detached() -> Group {
    Group {
        name: "reference_released_detached",
        place: Place::MainThread,
        raw: "raw_attach_decref",
        pyo3: Some("pyo3_drop_queued"),
        cases: vec![
            ("raw_attach_decref", |n| {
                let objects: Vec<usize> = with_gil(|| {
                    // SAFETY: attached; new references, released below.
                    (0..n)
                        .map(|_| unsafe { ffi::PyList_New(0) } as usize)
                        .collect()
                });
                let started = Instant::now();
                for object in objects {
                    // SAFETY: initialized and detached; a balanced pair around the release
                    // of a reference this case owns.
                    unsafe {
                        let state = ffi::PyGILState_Ensure();
                        ffi::Py_DECREF(black_box(object) as *mut ffi::PyObject);
                        ffi::PyGILState_Release(state);
                    }
                }
                started.elapsed()
            }),
            ("owned_ref_drop", |n| {
                let objects: Vec<OwnedRef> = (0..n).map(|_| list()).collect();
                timed_drops(objects)
            }),
            ("pyo3_drop_queued", |n| {
                let objects: Vec<Py<PyAny>> = Python::attach(|py| {
                    (0..n)
                        .map(|_| pyo3::types::PyList::empty(py).into_any().unbind())
                        .collect()
                });
                let elapsed = timed_drops(objects);
                Python::attach(|_| ()); // releases the queue, untimed
                elapsed
            }),
        ],
    }
}

/// How long dropping `objects`, one by one on this thread, takes.
fn timed_drops<T>(objects: Vec<T>) -> Duration {
    let started = Instant::now();
    for object in objects {
        drop(black_box(object));
    }
    started.elapsed()
}
