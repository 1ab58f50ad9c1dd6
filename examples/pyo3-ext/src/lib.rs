//! `gilguard_pyo3`: a `pyo3` extension module that uses gilguard where `pyo3` alone falls
//! short. Each function says what `pyo3` alone would need.
//!
//! * `sum_of_squares(n)`: computed with the GIL released.
//! * `call_from_threads(callback, threads)`: `callback(i)` from native threads, each with a
//!   `pyo3` token from a gilguard guard; the first exception reaches the caller.
//! * `dumps(value)`: `json.dumps`, the function looked up once and cached.
//! * `eval_in_subinterpreters(expressions)`: each expression evaluated in a sub-interpreter
//!   of its own (own GIL on CPython 3.12+: in parallel), with a per-interpreter cache.

use core::ptr::NonNull;

use gilguard::SubInterpreter;
use gilguard::sync::{GilOnceLock, InterpreterOnceLock};
use gilguard::{ExceptionKind, GilError, InterpreterConfig, OwnedRef, PythonException};
use gilguard::{WithGil, ffi, without_gil};
use pyo3::prelude::*;

/// `sum_of_squares(n)`: `0² + … + (n-1)²`, wrapping at 2⁶⁴, with the GIL released.
/// `pyo3` alone: `py.detach(...)`, the same call (with gilguard's `pyo3` feature,
/// `without_gil` goes through it), but only from a `#[pyfunction]`'s token.
#[pyfunction]
fn sum_of_squares(n: u64) -> u64 {
    without_gil(|| (0..n).fold(0u64, |sum, i| sum.wrapping_add(i.wrapping_mul(i))))
}

/// `call_from_threads(callback, threads)`: `[callback(i) for i in range(threads)]`, each call
/// on a native thread of its own. `pyo3` alone: `Python::attach` on each worker, which on a
/// thread Python did not create makes and deletes a thread state for every call (see
/// `benches/rayon_callbacks.rs`); a gilguard guard keeps one per thread, and a panic on a
/// worker reaches the caller as an exception instead of a lost thread.
#[pyfunction]
fn call_from_threads(callback: Py<PyAny>, threads: usize) -> PyResult<Vec<i64>> {
    let callback = &callback;
    without_gil(|| {
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|i| {
                    scope.spawn(move || {
                        let gil = WithGil::try_acquire()?;
                        let py = gil.python();
                        callback.call1(py, (i,))?.extract::<i64>(py)
                    })
                })
                .collect();
            let join = |worker: std::thread::ScopedJoinHandle<'_, PyResult<i64>>| {
                worker
                    .join()
                    .unwrap_or_else(|panic| Err(PythonException::from_panic(panic).into()))
            };
            workers.into_iter().map(join).collect()
        })
    })
}

/// `json.dumps`, looked up once. `pyo3` alone: `PyOnceLock`, the same guarantee (other
/// threads wait for the first lookup with the GIL released).
static DUMPS: GilOnceLock<Py<PyAny>> = GilOnceLock::new();

/// `dumps(value)`: `json.dumps(value)`.
#[pyfunction]
fn dumps(py: Python<'_>, value: Bound<'_, PyAny>) -> PyResult<String> {
    let dumps =
        DUMPS.get_or_try_init(|| Ok::<_, PyErr>(py.import("json")?.getattr("dumps")?.unbind()))?;
    dumps.call1(py, (value,))?.extract(py)
}

/// Each sub-interpreter's globals for `eval_in_subinterpreters`, made once per interpreter.
/// `pyo3` alone has no per-interpreter cell (its objects know no interpreter).
static GLOBALS: InterpreterOnceLock<OwnedRef> = InterpreterOnceLock::new();

/// Sub-interpreters with a GIL of their own (CPython 3.12+).
const OWN_GIL: InterpreterConfig = InterpreterConfig::isolated();

/// `eval_in_subinterpreters(expressions)`: `[str(eval(e)) for e in expressions]`, each in a
/// new sub-interpreter on a thread of its own; with its own GIL on CPython 3.12+, so they run
/// in parallel. `pyo3` alone cannot create a sub-interpreter, and its modules refuse to be
/// imported into one: the expressions use only Python there.
#[pyfunction]
fn eval_in_subinterpreters(expressions: Vec<String>) -> PyResult<Vec<String>> {
    let results = without_gil(|| {
        std::thread::scope(|scope| {
            let workers: Vec<_> = expressions
                .iter()
                .map(|expression| {
                    scope.spawn(move || {
                        let interpreter = match SubInterpreter::with_config(OWN_GIL) {
                            Err(GilError::Unsupported(_)) => SubInterpreter::new(), // 3.9-3.11
                            made => made,
                        }?;
                        let expression = expression.clone();
                        interpreter
                            .thread_state()?
                            .run(move || evaluate(&expression))?
                    })
                })
                .collect();
            let join =
                |worker: std::thread::ScopedJoinHandle<'_, Result<String, PythonException>>| {
                    worker
                        .join()
                        .unwrap_or_else(|panic| Err(PythonException::from_panic(panic)))
                };
            workers.into_iter().map(join).collect::<Result<Vec<_>, _>>()
        })
    });
    Ok(results?)
}

/// `str(eval(expression))` in the interpreter this thread is attached to, in its globals.
fn evaluate(expression: &str) -> Result<String, PythonException> {
    let globals = GLOBALS.get_or_try_init(|| {
        // SAFETY: attached (`run`); a new dict (checked), given to the `OwnedRef`.
        let globals =
            NonNull::new(unsafe { ffi::PyDict_New() }).ok_or_else(PythonException::fetch)?;
        // SAFETY: a new reference of this interpreter.
        Ok::<_, PythonException>(unsafe { OwnedRef::from_owned(globals) }?)
    })?;
    let source = std::ffi::CString::new(expression)
        .map_err(|_| PythonException::new(ExceptionKind::ValueError, "a NUL in the expression"))?;
    // SAFETY: attached to the interpreter the globals belong to (same `run`); each new
    // reference is checked and released; the UTF-8 buffer is copied before its string goes.
    unsafe {
        let builtins = ffi::PyEval_GetBuiltins();
        ffi::PyDict_SetItemString(globals.as_ptr(), c"__builtins__".as_ptr(), builtins);
        let value = ffi::PyRun_String(
            source.as_ptr(),
            ffi::Py_eval_input,
            globals.as_ptr(),
            globals.as_ptr(),
        );
        let value = NonNull::new(value).ok_or_else(PythonException::fetch)?;
        let text = ffi::PyObject_Str(value.as_ptr());
        ffi::Py_DECREF(value.as_ptr());
        let text = NonNull::new(text).ok_or_else(PythonException::fetch)?;
        let mut len = 0;
        let utf8 = ffi::PyUnicode_AsUTF8AndSize(text.as_ptr(), &mut len);
        let result = if utf8.is_null() {
            Err(PythonException::fetch())
        } else {
            let bytes = core::slice::from_raw_parts(utf8.cast::<u8>(), len as usize);
            Ok(String::from_utf8_lossy(bytes).into_owned())
        };
        ffi::Py_DECREF(text.as_ptr());
        result
    }
}

/// The module.
#[pymodule]
fn gilguard_pyo3(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(sum_of_squares, module)?)?;
    module.add_function(wrap_pyfunction!(call_from_threads, module)?)?;
    module.add_function(wrap_pyfunction!(dumps, module)?)?;
    module.add_function(wrap_pyfunction!(eval_in_subinterpreters, module)?)?;
    Ok(())
}
