//! `OwnedRef` releases its Python reference only in the object's interpreter and runtime:
//! at once where this thread is attached to it, by attaching for the main interpreter,
//! deferred to the next region this crate runs in a sub-interpreter, and never after the
//! runtime is gone. Clones share one reference and cross threads freely.

mod common;

use std::ptr::NonNull;

use gilguard::{GilError, OwnedRef, SubInterpreter, is_attached, with_gil};

/// A new list of the interpreter this thread is attached to, and a second strong reference
/// to it kept by the test, so that its count can be read while `OwnedRef` is alive or gone.
fn list_here() -> (OwnedRef, usize) {
    // SAFETY: attached (caller); a new reference, checked, given to the `OwnedRef`; the
    // increment is the test's own reference.
    unsafe {
        let list = NonNull::new(pyo3_ffi::PyList_New(0)).expect("a list");
        pyo3_ffi::Py_INCREF(list.as_ptr());
        (OwnedRef::from_owned(list).unwrap(), list.as_ptr() as usize)
    }
}

/// The reference count of the object at `address`; the thread is attached to its
/// interpreter.
fn count(address: usize) -> isize {
    // SAFETY: attached to the object's interpreter (caller), which the test's reference keeps
    // alive.
    unsafe { pyo3_ffi::Py_REFCNT(address as *mut pyo3_ffi::PyObject) }
}

/// Releases the test's own reference; attached to the object's interpreter.
fn release(address: usize) {
    // SAFETY: as for `count`; the test's reference is given up.
    unsafe { pyo3_ffi::Py_DECREF(address as *mut pyo3_ffi::PyObject) };
}

#[test]
fn clones_share_one_reference_and_the_last_drop_releases_it_on_any_thread() {
    common::python();
    let (object, address) = with_gil(list_here);
    let clones: Vec<OwnedRef> = (0..4).map(|_| object.clone()).collect();
    with_gil(|| assert_eq!(count(address), 2, "clones are not Python references"));
    // Dropped on threads Python did not create: the last one attaches to release it.
    std::thread::scope(|scope| {
        for clone in clones {
            scope.spawn(move || drop(clone));
        }
    });
    with_gil(|| assert_eq!(count(address), 2));
    std::thread::spawn(move || drop(object)).join().unwrap();
    assert!(!is_attached());
    with_gil(|| {
        assert_eq!(count(address), 1, "the last drop did not release");
        release(address);
    });
}

#[test]
fn it_is_usable_only_where_its_interpreter_is_attached() {
    common::python();
    let interpreter = SubInterpreter::new().unwrap();
    let (object, address) = with_gil(list_here);
    assert!(!object.is_usable());
    assert_eq!(object.to_owned_ptr(), Err(GilError::NotAttached));
    let handle = interpreter.thread_state().unwrap();
    let in_sub = handle
        .run(|| (object.is_usable(), object.to_owned_ptr().err()))
        .unwrap();
    assert_eq!(in_sub, (false, Some(GilError::NotAttached)));
    with_gil(|| {
        let new = object.to_owned_ptr().unwrap();
        assert_eq!(count(address), 3);
        release(new.as_ptr() as usize);
        drop(object);
        assert_eq!(count(address), 1);
        release(address);
    });
}

/// A sub-interpreter's object dropped where that interpreter is not attached (detached, or
/// attached to the main one) is released the next time this crate runs code there.
#[test]
fn a_sub_interpreters_object_is_released_there_later() {
    common::python();
    let interpreter = SubInterpreter::new().unwrap();
    let handle = interpreter.thread_state().unwrap();
    let (object, address) = handle.run(list_here).unwrap();
    assert_eq!(object.interpreter(), interpreter.interpreter());
    let clone = object.clone();
    drop(object); // not the last
    std::thread::spawn(move || with_gil(|| drop(clone)))
        .join()
        .unwrap();
    // Deferred until a region of the interpreter ends: the first one still sees it.
    assert_eq!(
        handle.run(|| count(address)).unwrap(),
        2,
        "released elsewhere"
    );
    assert_eq!(
        handle.run(|| count(address)).unwrap(),
        1,
        "not released in it"
    );
    handle.run(|| release(address)).unwrap();
}

/// Ending the interpreter releases what was deferred for it first.
#[test]
fn ending_an_interpreter_releases_what_was_deferred_for_it() {
    common::python();
    let mut interpreter = SubInterpreter::new().unwrap();
    let handle = interpreter.thread_state().unwrap();
    let (object, address) = handle.run(list_here).unwrap();
    handle.run(|| release(address)).unwrap(); // the `OwnedRef` holds the only reference
    drop(handle);
    drop(object); // deferred
    // A finalizer run by the release would be seen here; the count is not readable once
    // the object is gone, so the end's success is what is checked.
    assert_eq!(interpreter.end(), Ok(()));
}

/// An object of a finalized runtime is never released, neither after the finalization nor
/// into the next runtime, where addresses repeat.
#[test]
fn an_object_of_a_finalized_runtime_is_left_alone() {
    common::run_child("child_object_across_reinitialization");
}

#[test]
#[ignore = "runs in a child process, started by an_object_of_a_finalized_runtime_is_left_alone"]
fn child_object_across_reinitialization() {
    common::python();
    let (object, _) = with_gil(list_here);
    let after_finalization = object.clone();
    // SAFETY: this thread attaches and finalizes; nothing of this crate is alive on it.
    unsafe {
        pyo3_ffi::PyGILState_Ensure();
        assert_eq!(pyo3_ffi::Py_FinalizeEx(), 0);
    }
    drop(after_finalization);
    // SAFETY: starts the runtime again, then detaches, as `gilguard::initialize` would.
    unsafe {
        pyo3_ffi::Py_InitializeEx(0);
        pyo3_ffi::PyEval_SaveThread();
    }
    with_gil(|| {
        assert!(!object.is_usable());
        assert_eq!(object.to_owned_ptr(), Err(GilError::NotAttached));
        drop(object);
        common::run("x = 1");
    });
}
