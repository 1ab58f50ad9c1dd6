//! `boundary`: a function Python calls returns its error value with the exception set, for
//! an error and for a panic, and a panic leaves the thread as the function found it (every
//! guard of the body undone by the unwinding).

mod common;

use std::ffi::c_int;

use gilguard::{
    ExceptionKind, GilError, PythonException, WithGil, boundary, ffi, is_attached, with_gil,
    without_gil,
};

/// What the attached thread has raised, taken out.
fn raised() -> String {
    PythonException::take()
        .unwrap()
        .map_or_else(|| String::from("nothing"), |raised| raised.to_string())
}

#[test]
fn errors_and_panics_become_the_exception_and_the_error_value() {
    common::python();
    std::thread::spawn(|| {
        with_gil(|| {
            let value: c_int = boundary(|| Ok(7));
            assert_eq!((value, raised()), (7, String::from("nothing")));

            let value: c_int =
                boundary(|| Err(PythonException::new(ExceptionKind::KeyError, "missing")));
            assert_eq!((value, raised()), (-1, String::from("KeyError: 'missing'")));

            // `?` converts a refusal of this crate.
            let value: ffi::Py_ssize_t = boundary(|| {
                gilguard::GilGuard::new().restore()?;
                Ok(0)
            });
            let refusal = GilError::NothingToRestore.to_string();
            assert_eq!((value, raised()), (-1, format!("RuntimeError: {refusal}")));

            let value: *mut ffi::PyObject = boundary(|| panic!("in the body"));
            assert!(value.is_null());
            assert_eq!(raised(), "RuntimeError: Rust panic: in the body");
        });
    })
    .join()
    .unwrap();
}

/// Panics inside the body's guards: the unwinding undoes them before the boundary raises.
#[test]
fn a_panic_leaves_the_thread_as_the_function_found_it() {
    common::python();
    std::thread::spawn(|| {
        with_gil(|| {
            let value: c_int = boundary(|| {
                without_gil(|| -> () { panic!("detached") });
                Ok(0)
            });
            assert!(is_attached());
            assert_eq!(
                (value, raised()),
                (-1, String::from("RuntimeError: Rust panic: detached"))
            );

            let value: c_int = boundary(|| {
                let _nested = WithGil::acquire();
                let mut guard = gilguard::GilGuard::new();
                // SAFETY: nothing uses the GIL until the panic unwinds through the guard.
                unsafe { guard.release() }.unwrap();
                panic!("released by a guard");
            });
            assert!(is_attached());
            assert_eq!(value, -1);
            assert_eq!(raised(), "RuntimeError: Rust panic: released by a guard");
        });
        assert!(!is_attached());
    })
    .join()
    .unwrap();
}

/// A native worker's panic, carried back with `join` and raised by the waiting function.
#[test]
fn a_workers_panic_is_raised_by_the_function_that_waits_for_it() {
    common::python();
    std::thread::spawn(|| {
        with_gil(|| {
            let value: *mut ffi::PyObject = boundary(|| {
                let joined = without_gil(|| {
                    std::thread::spawn(|| with_gil(|| -> c_int { panic!("on the worker") })).join()
                });
                let answer = joined.map_err(PythonException::from_panic)?;
                // SAFETY: attached; a new reference or null with an exception set.
                Ok(unsafe { ffi::PyLong_FromLong(answer.into()) })
            });
            assert!(value.is_null());
            assert_eq!(raised(), "RuntimeError: Rust panic: on the worker");
        });
    })
    .join()
    .unwrap();
}
