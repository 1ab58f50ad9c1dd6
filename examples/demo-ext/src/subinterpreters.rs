//! `run_in_subinterpreters(scripts, threads=1, own_gil=False)`: one sub-interpreter per
//! script, each script run once on each of `threads` native threads attached to its
//! interpreter, and `str(result)` of every interpreter's global `result` returned in order.
//!
//! No Python object crosses an interpreter boundary: scripts go in as Rust strings, results
//! and errors come out as Rust strings (an error is the traceback text formatted inside the
//! interpreter that raised it).

use core::ffi::{CStr, c_char, c_int};
use core::ptr;
use std::ffi::CString;

use gilguard::{
    ExceptionKind, InterpreterConfig, PythonException, SubInterpreter, boundary, without_gil,
};
use pyo3_ffi as ffi;

use crate::{errors, py};

/// `run_in_subinterpreters(scripts, threads=1, own_gil=False)` (`METH_VARARGS |
/// METH_KEYWORDS`).
///
/// # Safety
/// Called by CPython, attached, with live argument containers.
pub unsafe extern "C" fn run_in_subinterpreters(
    _module: *mut ffi::PyObject,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    boundary(|| {
        let mut scripts: *mut ffi::PyObject = ptr::null_mut();
        let mut threads: ffi::Py_ssize_t = 1;
        let mut own_gil: c_int = 0;
        let mut names = [
            c"scripts".as_ptr().cast_mut(),
            c"threads".as_ptr().cast_mut(),
            c"own_gil".as_ptr().cast_mut(),
            ptr::null_mut::<c_char>(),
        ];
        // SAFETY: attached; the format matches the out-pointers ("O": borrowed object,
        // "n": `Py_ssize_t`, "p": `int`), and `names` ends with null. The keyword list's
        // pointer type differs between versions (`char **` before 3.13), which `cast` follows.
        let parsed = unsafe {
            ffi::PyArg_ParseTupleAndKeywords(
                args,
                kwargs,
                c"O|np:run_in_subinterpreters".as_ptr(),
                names.as_mut_ptr().cast(),
                &mut scripts as *mut *mut ffi::PyObject,
                &mut threads as *mut ffi::Py_ssize_t,
                &mut own_gil as *mut c_int,
            )
        };
        if parsed == 0 {
            return Err(PythonException::fetch());
        }
        let value_error = |message| PythonException::new(ExceptionKind::ValueError, message);
        let threads = match usize::try_from(threads) {
            Ok(threads) if threads >= 1 => threads,
            _ => return Err(value_error("threads must be at least 1")),
        };
        let own_gil = own_gil != 0;
        if own_gil && cfg!(not(Py_3_12)) {
            let message = "own_gil=True needs CPython 3.12 or newer (PEP 684)";
            return Err(value_error(message));
        }
        // SAFETY: attached; `scripts` is a live borrowed argument.
        let scripts = unsafe { script_texts(scripts) }?;

        // The caller's GIL is released while the sub-interpreters run: they may share it
        // (`own_gil=False`), and the caller's other threads should keep running anyway.
        let results = without_gil(move || run_all(&scripts, threads, own_gil))
            .map_err(|message| PythonException::new(ExceptionKind::RuntimeError, message))?;
        // SAFETY: attached again.
        unsafe { string_list(&results) }
    })
}

/// The scripts as C strings; an error if `scripts` is not a sequence of `str` without NUL
/// characters.
///
/// # Safety
/// Attached; `scripts` is live.
unsafe fn script_texts(scripts: *mut ffi::PyObject) -> Result<Vec<CString>, PythonException> {
    let error = PythonException::new;
    let not_str = "scripts must be a list of str";
    // SAFETY: attached. `PySequence_Fast` returns a list or tuple (new reference) whose items
    // are borrowed while it is alive; nothing here runs Python code that could change it.
    unsafe {
        let sequence = py::owned(ffi::PySequence_Fast(
            scripts,
            c"scripts must be a list of str".as_ptr(),
        ))?;
        let count = ffi::PySequence_Fast_GET_SIZE(sequence.as_ptr());
        let items = ffi::PySequence_Fast_ITEMS(sequence.as_ptr());
        let mut texts = Vec::new();
        for index in 0..usize::try_from(count).unwrap_or(0) {
            let item = *items.add(index);
            if ffi::PyUnicode_Check(item) == 0 {
                return Err(error(ExceptionKind::TypeError, not_str));
            }
            let nul = "a script contains a NUL character";
            let text = CString::new(py::to_string(item)?)
                .map_err(|_| error(ExceptionKind::ValueError, nul))?;
            texts.push(text);
        }
        Ok(texts)
    }
}

/// A `list` of `str`, as a new reference.
///
/// # Safety
/// Attached.
unsafe fn string_list(texts: &[String]) -> Result<*mut ffi::PyObject, PythonException> {
    // SAFETY: attached; `PyList_SetItem` steals each new `str` (checked first), and the list
    // is released on an error, holes and all.
    unsafe {
        let list = py::owned(ffi::PyList_New(texts.len() as ffi::Py_ssize_t))?;
        for (index, text) in texts.iter().enumerate() {
            let item = py::checked(ffi::PyUnicode_FromStringAndSize(
                text.as_ptr().cast::<c_char>(),
                text.len() as ffi::Py_ssize_t,
            ))?;
            ffi::PyList_SetItem(list.as_ptr(), index as ffi::Py_ssize_t, item);
        }
        Ok(list.to_owned_ptr()?.as_ptr())
    }
}

/// Creates the interpreters, runs the scripts, collects the results and ends the
/// interpreters, also when something failed. Runs detached.
fn run_all(scripts: &[CString], threads: usize, own_gil: bool) -> Result<Vec<String>, String> {
    let config = if own_gil {
        InterpreterConfig::isolated()
    } else {
        InterpreterConfig::legacy()
    };
    let mut interpreters = Vec::with_capacity(scripts.len());
    for index in 0..scripts.len() {
        match SubInterpreter::with_config(config) {
            Ok(interpreter) => interpreters.push(interpreter),
            Err(error) => {
                // Whatever the outcome of ending them, creation is the error to report.
                for (index, interpreter) in interpreters.into_iter().enumerate() {
                    let _ = conclude(interpreter, index, None);
                }
                return Err(format!("cannot create sub-interpreter {index}: {error}"));
            }
        }
    }
    let script_errors = run_scripts(&interpreters, scripts, threads);
    let outcomes: Vec<Result<String, String>> = interpreters
        .into_iter()
        .zip(script_errors)
        .enumerate()
        .map(|(index, (interpreter, error))| conclude(interpreter, index, error))
        .collect();
    // Every interpreter was concluded (and ended) before the first error is reported.
    outcomes.into_iter().collect()
}

/// Runs each script on `threads` scoped threads of its own, all at once; returns the first
/// error of each interpreter.
fn run_scripts(
    interpreters: &[SubInterpreter],
    scripts: &[CString],
    threads: usize,
) -> Vec<Option<String>> {
    std::thread::scope(|scope| {
        let running: Vec<Vec<_>> = interpreters
            .iter()
            .zip(scripts)
            .enumerate()
            .map(|(index, (interpreter, script))| {
                (0..threads)
                    .map(|_| scope.spawn(move || run_on_this_thread(interpreter, script, index)))
                    .collect()
            })
            .collect();
        running
            .into_iter()
            .map(|threads| {
                let results: Vec<Result<(), String>> = threads
                    .into_iter()
                    .map(|thread| {
                        thread
                            .join()
                            .unwrap_or_else(|_| Err("a script thread panicked".to_owned()))
                    })
                    .collect();
                results.into_iter().find_map(Result::err)
            })
            .collect()
    })
}

/// Runs `script` in `interpreter` through this thread's own thread state for it.
fn run_on_this_thread(
    interpreter: &SubInterpreter,
    script: &CStr,
    index: usize,
) -> Result<(), String> {
    let handle = interpreter
        .thread_state()
        .map_err(|error| format!("script {index}: {error}"))?;
    // SAFETY: `run` attaches this thread to `interpreter` for the closure.
    let ran = handle.run(|| unsafe { run_in_main(script, index) });
    ran.map_err(|error| format!("script {index}: {error}"))?
}

/// Executes `source` in the interpreter's `__main__` namespace; the error is the formatted
/// traceback.
///
/// # Safety
/// Attached to the interpreter.
unsafe fn run_in_main(source: &CStr, index: usize) -> Result<(), String> {
    // `<script N>`, which has no NUL; `CString::new` checks it anyway.
    let filename = CString::new(format!("<script {index}>")).unwrap_or_default();
    // SAFETY: attached (caller); `globals` is borrowed from `__main__`, which `sys.modules`
    // keeps alive.
    let ran = unsafe { main_globals().and_then(|globals| run_code(source, &filename, globals)) };
    ran.map_err(|error| {
        let text = errors::text(&error);
        format!("script {index} raised in its sub-interpreter:\n{text}")
    })
}

/// The interpreter's `__main__.__dict__`, borrowed.
///
/// # Safety
/// Attached.
unsafe fn main_globals() -> Result<*mut ffi::PyObject, PythonException> {
    // SAFETY: attached (caller); the module and its dict are borrowed from `sys.modules`.
    unsafe {
        let main = py::checked(ffi::PyImport_AddModule(c"__main__".as_ptr()))?;
        Ok(ffi::PyModule_GetDict(main))
    }
}

/// Compiles and executes `source` with `globals`.
///
/// # Safety
/// Attached; `globals` is a live dict of this interpreter.
unsafe fn run_code(
    source: &CStr,
    filename: &CStr,
    globals: *mut ffi::PyObject,
) -> Result<(), PythonException> {
    // SAFETY: attached (caller); every new reference is an `OwnedRef`, released here.
    unsafe {
        let code = py::owned(ffi::Py_CompileString(
            source.as_ptr(),
            filename.as_ptr(),
            ffi::Py_file_input,
        ))?;
        py::owned(ffi::PyEval_EvalCode(code.as_ptr(), globals, globals))?;
    }
    Ok(())
}

/// Finishes one interpreter: reads `str(result)` unless its script failed, then ends it.
/// Ending joins the interpreter's threads and runs its `atexit` callbacks first, which stop
/// any `Worker` a script left running. The first error wins.
fn conclude(
    mut interpreter: SubInterpreter,
    index: usize,
    script_error: Option<String>,
) -> Result<String, String> {
    let result = match script_error {
        Some(_) => Ok(String::new()),
        None => result_of(&interpreter, index),
    };
    let ended = interpreter
        .end()
        .map_err(|error| format!("sub-interpreter {index} could not be ended: {error}"));
    if let Some(error) = script_error {
        return Err(error);
    }
    result.and_then(|result| ended.map(|()| result))
}

/// `str(result)` in `interpreter`, read through a thread state that is gone again before
/// the interpreter is ended.
fn result_of(interpreter: &SubInterpreter, index: usize) -> Result<String, String> {
    let handle = interpreter
        .thread_state()
        .map_err(|error| format!("sub-interpreter {index}: {error}"))?;
    // SAFETY: attached to `interpreter` inside `run`.
    let read = handle.run(|| unsafe { read_result(index) });
    read.map_err(|error| format!("sub-interpreter {index}: {error}"))?
}

/// `str(result)` of the interpreter's `__main__` global `result`.
///
/// # Safety
/// Attached to the interpreter.
unsafe fn read_result(index: usize) -> Result<String, String> {
    // SAFETY: attached (caller); the dict and the item are borrowed from live containers
    // that no code run here modifies.
    unsafe {
        let globals = main_globals().map_err(|error| errors::text(&error))?;
        let result = ffi::PyDict_GetItemString(globals, c"result".as_ptr());
        if result.is_null() {
            return Err(format!("script {index} left no global `result`"));
        }
        py::str_of(result).map_err(|error| {
            let text = errors::text(&error);
            format!("str(result) of script {index} failed:\n{text}")
        })
    }
}
