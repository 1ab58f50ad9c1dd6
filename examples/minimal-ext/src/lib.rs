//! `gilguard_minimal`: the smallest extension module on the raw C API and gilguard.
//!
//! * `sum_of_squares(n)`: `0² + 1² + … + (n-1)²` (wrapping at 2⁶⁴), computed with the GIL
//!   released ([`gilguard::without_gil`]), so other Python threads run meanwhile.
//! * `call_from_threads(callback, threads)`: calls `callback(i)` on `threads` native threads
//!   at once, each attached with [`gilguard::try_with_gil`], and returns the results as a
//!   list. The callback crosses to the workers as a [`gilguard::OwnedRef`]; an exception it
//!   raises on a worker is carried back ([`gilguard::PythonException`]) and raised to the
//!   caller unchanged.
//! * `panic_in(place)`: panics in the function, in a native worker, or inside
//!   `without_gil`; each panic reaches Python as a `RuntimeError`.
//!
//! Every function's body runs in [`gilguard::boundary`]: its errors (`?` on a `GilError` or
//! a `PythonException`) and its panics become the Python exception its caller sees.
//! Single-phase initialization keeps it short; CPython therefore refuses to import it in
//! an isolated sub-interpreter, and `call_from_threads` refuses to run in a legacy one
//! (its workers attach to the main interpreter).

use core::ptr::{self, NonNull};

use gilguard::ffi::{self, PyObject};
use gilguard::{
    ExceptionKind, Interpreter, OwnedRef, PythonException, boundary, try_with_gil, without_gil,
};

/// `sum_of_squares(n: int) -> int`.
extern "C" fn sum_of_squares(_module: *mut PyObject, n: *mut PyObject) -> *mut PyObject {
    boundary(|| {
        // SAFETY: CPython calls a METH_O function attached, with a borrowed argument.
        let n = unsafe { ffi::PyLong_AsUnsignedLongLong(n) };
        // SAFETY: attached; the error indicator is only read.
        if n == u64::MAX && unsafe { !ffi::PyErr_Occurred().is_null() } {
            return Err(PythonException::fetch()); // not an int, or negative
        }
        // Only Rust data crosses into the closure (it must be `Send`): no Python object can
        // be touched while detached. (`black_box` keeps the loop from being folded away.)
        let sum = without_gil(|| {
            (0..n).fold(0u64, |sum, i| {
                let i = core::hint::black_box(i);
                sum.wrapping_add(i.wrapping_mul(i))
            })
        });
        // SAFETY: attached again (`without_gil` re-attached on return).
        checked(unsafe { ffi::PyLong_FromUnsignedLongLong(sum) })
    })
}

/// `call_from_threads(callback, threads: int) -> list`.
extern "C" fn call_from_threads(_module: *mut PyObject, args: *mut PyObject) -> *mut PyObject {
    boundary(|| {
        let mut callback: *mut PyObject = ptr::null_mut();
        let mut threads: ffi::Py_ssize_t = 0;
        // SAFETY: attached (METH_VARARGS); "On" writes a borrowed object and a Py_ssize_t.
        if unsafe { ffi::PyArg_ParseTuple(args, c"On".as_ptr(), &mut callback, &mut threads) } == 0
        {
            return Err(PythonException::fetch());
        }
        // Workers attach to the main interpreter: refuse to hand them another one's objects.
        if !Interpreter::current()?.is_main() {
            let refusal = "call_from_threads runs in the main interpreter only";
            return Err(PythonException::new(ExceptionKind::RuntimeError, refusal));
        }
        let callback = NonNull::new(callback).ok_or_else(PythonException::fetch)?;
        // SAFETY: a live object (the caller's argument) of this, the main, interpreter.
        let callback = unsafe { OwnedRef::from_borrowed(callback) }?;
        // Detached while waiting, so that the workers can attach; all results are `Send`.
        let results: Vec<Result<i64, PythonException>> = without_gil(move || {
            let workers: Vec<_> = (0..threads.max(0) as i64)
                .map(|i| {
                    let callback = callback.clone();
                    std::thread::spawn(move || call_on_this_thread(&callback, i))
                })
                .collect();
            let join = |worker: std::thread::JoinHandle<_>| {
                worker
                    .join()
                    .unwrap_or_else(|panic| Err(PythonException::from_panic(panic)))
            };
            workers.into_iter().map(join).collect()
        });
        // The first failure is raised; the others are dropped (released under the GIL).
        let values = results.into_iter().collect::<Result<Vec<i64>, _>>()?;
        // SAFETY: attached again; a new list, filled at every index (`PyList_SetItem` steals
        // each new int, checked first; on failure the list is released, holes and all).
        unsafe {
            let list = checked(ffi::PyList_New(values.len() as ffi::Py_ssize_t))?;
            for (i, value) in values.into_iter().enumerate() {
                let item = ffi::PyLong_FromLongLong(value);
                if item.is_null() {
                    ffi::Py_DECREF(list);
                    return Err(PythonException::fetch());
                }
                ffi::PyList_SetItem(list, i as ffi::Py_ssize_t, item);
            }
            Ok(list)
        }
    })
}

/// One worker: attaches, calls `callback(i)`, and brings back an `int` or the exception
/// (a refusal to attach becomes one too).
fn call_on_this_thread(callback: &OwnedRef, i: i64) -> Result<i64, PythonException> {
    try_with_gil(|| {
        // SAFETY: attached to the main interpreter (`try_with_gil`), which `callback`
        // belongs to (checked by the caller); new references are released.
        unsafe {
            let argument = checked(ffi::PyLong_FromLongLong(i))?;
            let result = ffi::PyObject_CallOneArg(callback.as_ptr(), argument);
            ffi::Py_DECREF(argument);
            let result = checked(result)?;
            let value = ffi::PyLong_AsLongLong(result);
            ffi::Py_DECREF(result);
            if value == -1 && !ffi::PyErr_Occurred().is_null() {
                return Err(PythonException::fetch());
            }
            Ok(value)
        }
    })?
}

/// `panic_in(place: str)`: panics `"here"`, on a native `"worker"`, or `"without_gil"`.
extern "C" fn panic_in(_module: *mut PyObject, place: *mut PyObject) -> *mut PyObject {
    boundary(|| {
        // SAFETY: attached (METH_O), a borrowed argument; the UTF-8 buffer belongs to it.
        let place = unsafe { ffi::PyUnicode_AsUTF8(place) };
        // SAFETY: a NUL-terminated string, alive while the argument is (checked first).
        let place = unsafe { core::ffi::CStr::from_ptr(checked(place.cast_mut())?) };
        match place.to_bytes() {
            b"here" => panic!("in the function"),
            b"worker" => without_gil(|| std::thread::spawn(|| panic!("on a worker")).join())
                .map_err(PythonException::from_panic)?,
            b"without_gil" => without_gil(|| panic!("inside without_gil")),
            _ => {
                let message = "place is 'here', 'worker' or 'without_gil'";
                return Err(PythonException::new(ExceptionKind::ValueError, message));
            }
        }
        unreachable!("every place panics")
    })
}

/// `pointer`, the result of a C call that returns null with an exception set on failure.
fn checked<T>(pointer: *mut T) -> Result<*mut T, PythonException> {
    if pointer.is_null() {
        Err(PythonException::fetch())
    } else {
        Ok(pointer)
    }
}

/// The module's functions. CPython only reads them.
static mut METHODS: [ffi::PyMethodDef; 4] = [
    ffi::PyMethodDef {
        ml_name: c"sum_of_squares".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer { PyCFunction: sum_of_squares },
        ml_flags: ffi::METH_O,
        ml_doc: c"sum_of_squares(n)\n--\n\nSum of i*i for i < n, computed without the GIL.".as_ptr(),
    },
    ffi::PyMethodDef {
        ml_name: c"call_from_threads".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer { PyCFunction: call_from_threads },
        ml_flags: ffi::METH_VARARGS,
        ml_doc: c"call_from_threads(callback, threads)\n--\n\n[callback(i) for i in range(threads)], each on its own native thread.".as_ptr(),
    },
    ffi::PyMethodDef {
        ml_name: c"panic_in".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer { PyCFunction: panic_in },
        ml_flags: ffi::METH_O,
        ml_doc: c"panic_in(place)\n--\n\nPanics 'here', on a 'worker' thread or 'without_gil': a RuntimeError.".as_ptr(),
    },
    ffi::PyMethodDef::zeroed(),
];

/// The module definition. CPython initializes its header once and otherwise only reads it.
static mut MODULE: ffi::PyModuleDef = ffi::PyModuleDef {
    m_base: ffi::PyModuleDef_HEAD_INIT,
    m_name: c"gilguard_minimal".as_ptr(),
    m_doc: c"The smallest extension module on gilguard.".as_ptr(),
    m_size: -1,
    m_methods: &raw mut METHODS as *mut ffi::PyMethodDef,
    m_slots: ptr::null_mut(),
    m_traverse: None,
    m_clear: None,
    m_free: None,
};

/// The module's entry point (single-phase initialization).
#[unsafe(no_mangle)]
pub extern "C" fn PyInit_gilguard_minimal() -> *mut PyObject {
    // SAFETY: called by the import machinery, attached; `&raw mut` makes no reference to
    // the `static mut`, which CPython keeps for the life of the module.
    unsafe { ffi::PyModule_Create(&raw mut MODULE) }
}
