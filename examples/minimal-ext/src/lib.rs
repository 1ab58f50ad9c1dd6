//! `gilguard_minimal`: the smallest extension module on the raw C API and gilguard.
//!
//! * `sum_of_squares(n)`: `0² + 1² + … + (n-1)²` (wrapping at 2⁶⁴), computed with the GIL
//!   released ([`gilguard::without_gil`]), so other Python threads run meanwhile.
//! * `call_from_threads(callback, threads)`: calls `callback(i)` on `threads` native threads
//!   at once, each attached with [`gilguard::try_with_gil`], and returns the results as a
//!   list. An exception raised by `callback` on a worker is carried back
//!   ([`gilguard::PythonException`]) and raised to the caller unchanged; a refusal to attach
//!   becomes a Python exception ([`gilguard::GilError::raise_in_python`]).
//!
//! Single-phase initialization keeps it short; CPython therefore refuses to import it in
//! an isolated sub-interpreter, and `call_from_threads` refuses to run in a legacy one
//! (its workers attach to the main interpreter).

use core::ptr;

use gilguard::ffi;
use gilguard::{GilError, Interpreter, PythonException, try_with_gil, without_gil};

/// `sum_of_squares(n: int) -> int`.
extern "C" fn sum_of_squares(
    _module: *mut ffi::PyObject,
    n: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls a METH_O function attached, with a borrowed argument.
    let n = unsafe { ffi::PyLong_AsUnsignedLongLong(n) };
    // SAFETY: attached; the error indicator is only read.
    if n == u64::MAX && unsafe { !ffi::PyErr_Occurred().is_null() } {
        return ptr::null_mut(); // not an int, or negative: the exception is set
    }
    // Only Rust data crosses into the closure (it must be `Send`): no Python object can be
    // touched while detached.
    // (`black_box` keeps the compiler from replacing the loop by its closed form.)
    let sum = without_gil(|| {
        (0..n).fold(0u64, |sum, i| {
            let i = core::hint::black_box(i);
            sum.wrapping_add(i.wrapping_mul(i))
        })
    });
    // SAFETY: attached again (`without_gil` re-attached on return).
    unsafe { ffi::PyLong_FromUnsignedLongLong(sum) }
}

/// What one worker thread brings back: its result, or why there is none.
enum Failure {
    /// `callback` raised.
    Raised(PythonException),
    /// The worker could not attach (the runtime is finalizing, ...).
    Refused(GilError),
    /// The worker panicked (a bug here); reported as a `RuntimeError`.
    Panicked,
}

/// The callback, for the workers: a borrowed reference the caller's arguments keep alive
/// for the whole call.
#[derive(Clone, Copy)]
struct Callback(*mut ffi::PyObject);

// SAFETY: the object is used only by workers attached to the main interpreter (whose GIL
// serializes them, as it does any thread's use of an object), and only while
// `call_from_threads` waits for them, during which its caller's reference keeps it alive.
unsafe impl Send for Callback {}

/// `call_from_threads(callback, threads: int) -> list`.
extern "C" fn call_from_threads(
    _module: *mut ffi::PyObject,
    args: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let mut callback: *mut ffi::PyObject = ptr::null_mut();
    let mut threads: ffi::Py_ssize_t = 0;
    // SAFETY: attached (METH_VARARGS); "On" writes a borrowed object and a Py_ssize_t.
    if unsafe { ffi::PyArg_ParseTuple(args, c"On".as_ptr(), &mut callback, &mut threads) } == 0 {
        return ptr::null_mut();
    }
    // Workers attach to the main interpreter: refuse to hand them another one's objects.
    if !Interpreter::current().is_ok_and(|here| here.is_main()) {
        let refusal = GilError::Unsupported("call_from_threads in a sub-interpreter");
        return raise(refusal);
    }
    let callback = Callback(callback);
    // Detached while waiting, so that the workers can attach; all results are `Send`.
    let results: Vec<Result<i64, Failure>> = without_gil(move || {
        let workers: Vec<_> = (0..threads.max(0))
            .map(|i| std::thread::spawn(move || call_on_this_thread(callback, i as i64)))
            .collect();
        let join =
            |worker: std::thread::JoinHandle<_>| worker.join().unwrap_or(Err(Failure::Panicked));
        workers.into_iter().map(join).collect()
    });
    // SAFETY: attached again; the list is new and filled at every index below.
    let list = unsafe { ffi::PyList_New(results.len() as ffi::Py_ssize_t) };
    if list.is_null() {
        return ptr::null_mut();
    }
    let mut first_failure = None;
    for (i, result) in results.into_iter().enumerate() {
        let value = match result {
            Ok(value) => value,
            Err(failure) => {
                first_failure.get_or_insert(failure);
                -1
            }
        };
        // SAFETY: attached; `PyList_SetItem` steals the new int. Without one (no memory,
        // `MemoryError` set) the list is released, holes and all.
        unsafe {
            let item = ffi::PyLong_FromLongLong(value);
            if item.is_null() {
                ffi::Py_DECREF(list);
                return ptr::null_mut();
            }
            ffi::PyList_SetItem(list, i as ffi::Py_ssize_t, item);
        }
    }
    let Some(failure) = first_failure else {
        return list;
    };
    // SAFETY: attached; releases the list before raising (a later failure is dropped with
    // its exception, released under the GIL).
    unsafe { ffi::Py_DECREF(list) };
    match failure {
        Failure::Raised(exception) => match exception.restore() {
            Ok(()) => ptr::null_mut(),
            Err(error) => raise(error),
        },
        Failure::Refused(error) => raise(error),
        Failure::Panicked => raise(GilError::Unsupported("a worker thread panicked")),
    }
}

/// One worker: attaches, calls `callback(i)`, and brings back an `int` or the exception.
fn call_on_this_thread(callback: Callback, i: i64) -> Result<i64, Failure> {
    try_with_gil(|| {
        // SAFETY: attached to the main interpreter (`try_with_gil`), which `callback` belongs
        // to and is kept alive in (see `Callback`); new references are released.
        unsafe {
            let argument = ffi::PyLong_FromLongLong(i);
            let result = if argument.is_null() {
                ptr::null_mut()
            } else {
                let result = ffi::PyObject_CallOneArg(callback.0, argument);
                ffi::Py_DECREF(argument);
                result
            };
            if result.is_null() {
                return Err(Failure::Raised(take_raised()));
            }
            let value = ffi::PyLong_AsLongLong(result);
            ffi::Py_DECREF(result);
            if value == -1 && !ffi::PyErr_Occurred().is_null() {
                return Err(Failure::Raised(take_raised()));
            }
            Ok(value)
        }
    })
    .unwrap_or_else(|refused| Err(Failure::Refused(refused)))
}

/// The exception a failed call left set on this (attached) thread.
fn take_raised() -> PythonException {
    PythonException::take()
        .expect("called attached")
        .expect("a failed call sets an exception")
}

/// Sets `error` as the Python exception and returns the `NULL` that signals it.
fn raise(error: GilError) -> *mut ffi::PyObject {
    error
        .raise_in_python()
        .expect("extension functions run attached");
    ptr::null_mut()
}

/// The module's functions. CPython only reads them.
static mut METHODS: [ffi::PyMethodDef; 3] = [
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
pub extern "C" fn PyInit_gilguard_minimal() -> *mut ffi::PyObject {
    // SAFETY: called by the import machinery, attached; `&raw mut` makes no reference to
    // the `static mut`, which CPython keeps for the life of the module.
    unsafe { ffi::PyModule_Create(&raw mut MODULE) }
}
