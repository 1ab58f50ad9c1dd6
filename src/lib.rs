//! RAII guards for CPython's thread-state rules (the GIL rules), on top of
//! [`pyo3-ffi`](https://docs.rs/pyo3-ffi), that are hard to get wrong from Rust.
//!
//! # The rules, in Rust terms
//!
//! A thread may call the Python C API only while it is **attached** to an interpreter: it
//! has a `PyThreadState` that is current, which (outside free-threaded builds) means it
//! holds that interpreter's GIL. From this follow the three problems this crate solves:
//!
//! 1. A thread Python did not create (a Rust worker, a callback from a C library) must
//!    *attach* before touching Python: [`WithGil`] / [`with_gil`].
//! 2. Rust code called from Python holds the GIL; a long computation or a blocking call made
//!    while holding it stops every other Python thread. It must *detach* and re-attach
//!    afterwards: [`without_gil`] (safe) or [`WithoutGil`] (`unsafe`, see its docs).
//! 3. Pairs of C calls done by hand go wrong on early returns, `?` and panics. Every guard
//!    here undoes its change in `Drop`, also during unwinding.
//!
//! | C / C++ idiom | here |
//! |---|---|
//! | `PyGILState_Ensure` … `PyGILState_Release`; pybind11's `py::gil_scoped_acquire` | [`WithGil`], [`with_gil`] |
//! | `Py_BEGIN_ALLOW_THREADS` … `Py_END_ALLOW_THREADS` (`PyEval_SaveThread` … `PyEval_RestoreThread`); `py::gil_scoped_release` | [`without_gil`], [`WithoutGil`] |
//! | `PyGILState_Ensure`, `PyEval_SaveThread`, `PyEval_RestoreThread` and `PyGILState_Release` paired by hand in one function; nested `py::gil_scoped_acquire` / `py::gil_scoped_release` scopes | [`GilGuard`] |
//! | `Py_Initialize` + `PyEval_SaveThread` when embedding | [`initialize`] |
//! | `Py_BEGIN_CRITICAL_SECTION` … `Py_END_CRITICAL_SECTION`; pybind11's `py::gil_safe_call_once_and_store`; a `std::mutex` locked inside `py::gil_scoped_release` | [`sync`] |
//!
//! # Quick start
//!
//! ```
//! use gilguard::{with_gil, without_gil, is_attached};
//!
//! gilguard::initialize()?; // only when embedding; a no-op inside an extension module
//!
//! let worker = std::thread::spawn(|| {
//!     with_gil(|| {
//!         assert!(is_attached());
//!         // ... call Python ...
//!         without_gil(|| {
//!             // ... compute or block: other Python threads run meanwhile ...
//!         });
//!         // ... call Python again ...
//!     })
//! });
//! worker.join().unwrap();
//! # Ok::<(), gilguard::GilError>(())
//! ```
//!
//! # In an extension function
//!
//! A function that Python calls must not let a panic unwind into CPython's C frames (Rust
//! aborts the process there), and must return `NULL` (or `-1`) with an exception set when it
//! fails. [`boundary`] does both around its body: `?` works on [`GilError`] and
//! [`PythonException`], and a panic, after unwinding has undone every guard of the body,
//! becomes a `RuntimeError`. Objects that cross threads travel as [`OwnedRef`]s, which are
//! `Send` and released only in their own interpreter.
//!
//! ```
//! use gilguard::{OwnedRef, PythonException, boundary, ffi, with_gil, without_gil};
//!
//! /// `call_later(callback)`: calls `callback()` on a native thread and returns its result.
//! extern "C" fn call_later(_module: *mut ffi::PyObject, callback: *mut ffi::PyObject) -> *mut ffi::PyObject {
//!     boundary(|| {
//!         let callback = core::ptr::NonNull::new(callback).ok_or_else(PythonException::fetch)?;
//!         // SAFETY: a live argument of the interpreter this thread is attached to.
//!         let callback = unsafe { OwnedRef::from_borrowed(callback) }?;
//!         let result = without_gil(|| {
//!             std::thread::spawn(move || {
//!                 with_gil(|| {
//!                     // SAFETY: attached to the main interpreter, the callback's.
//!                     let result = unsafe { ffi::PyObject_CallNoArgs(callback.as_ptr()) };
//!                     let result = core::ptr::NonNull::new(result).ok_or_else(PythonException::fetch)?;
//!                     // SAFETY: a new reference of this interpreter.
//!                     Ok::<_, PythonException>(unsafe { OwnedRef::from_owned(result) }?)
//!                 })
//!             })
//!             .join()
//!         });
//!         let result = result.map_err(PythonException::from_panic)??;
//!         Ok(result.to_owned_ptr()?.as_ptr())
//!     })
//! }
//! # gilguard::initialize()?;
//! # gilguard::with_gil(|| {
//! #     // SAFETY: attached; each new reference is checked and released.
//! #     unsafe {
//! #         let os = ffi::PyImport_ImportModule(c"os".as_ptr());
//! #         let getpid = ffi::PyObject_GetAttrString(os, c"getpid".as_ptr());
//! #         let pid = call_later(core::ptr::null_mut(), getpid);
//! #         assert!(!pid.is_null());
//! #         assert_eq!(ffi::PyLong_AsLong(pid) as u32, std::process::id());
//! #         for object in [pid, getpid, os] {
//! #             ffi::Py_DECREF(object);
//! #         }
//! #     }
//! # });
//! # Ok::<(), gilguard::GilError>(())
//! ```
//!
//! # What is here
//!
//! **Attaching and detaching this thread** (main interpreter)
//! * [`WithGil`]: attaches this thread to the main interpreter until dropped
//!   ([`WithGil::acquire`], [`WithGil::try_acquire`]); safe to create anywhere.
//! * [`with_gil`], [`try_with_gil`]: the same for the duration of a closure.
//! * [`WithoutGil`]: detaches this thread until dropped; creating it is `unsafe`
//!   ([`WithoutGil::new`]).
//! * [`without_gil`], [`try_without_gil`]: detach for the duration of a `Send` closure; the
//!   safe way to release.
//! * [`GilGuard`]: one value holding a stack of attaches and detaches
//!   ([`acquire`](GilGuard::acquire), [`release`](GilGuard::release),
//!   [`restore`](GilGuard::restore)), all undone when it is dropped.
//! * With the `pyo3` feature: `with_python` and `try_with_python`, closures given a
//!   `pyo3::Python` token, and `WithGil::python` / `WithGil::try_python` (see
//!   [below](#with-pyo3)).
//!
//! **Sub-interpreters and their thread states**
//! * [`SubInterpreter`]: creates ([`SubInterpreter::new`], [`SubInterpreter::with_config`]),
//!   shares between threads and ends ([`SubInterpreter::end`], or on drop) a
//!   sub-interpreter, with its own GIL where CPython allows it (3.12+).
//! * [`InterpreterConfig`]: the settings of a new sub-interpreter (`PyInterpreterConfig`).
//! * [`Interpreter`]: names an interpreter the crate may not own: the main one
//!   ([`Interpreter::main`]), the current one ([`Interpreter::current`]), or a
//!   sub-interpreter's.
//! * [`ThreadStateHandle`]: this thread's thread state in one interpreter, made once
//!   ([`SubInterpreter::thread_state`], [`ThreadStateHandle::new`]) and attached many times
//!   ([`ThreadStateHandle::run`]).
//! * [`AttachGuard`]: keeps a [`ThreadStateHandle`] attached until dropped
//!   ([`ThreadStateHandle::attach`]).
//!
//! **The runtime**
//! * [`initialize`]: starts the runtime when embedding, and leaves this thread detached.
//! * [`is_initialized`], [`is_finalizing`]: where the runtime is in its life.
//! * [`is_attached`]: whether this thread is attached, exact also where `PyGILState_Check`
//!   is not.
//! * [`set_shutdown_timeout`]: how long shutdown waits for native threads to drop their
//!   guards.
//!
//! **Synchronization next to the GIL** ([`sync`])
//! * [`sync::GilOnceLock`]: a value initialised once, whose waiters wait detached, so an
//!   initialiser may release the GIL or run Python.
//! * [`sync::InterpreterOnceLock`]: one such value per interpreter, for extension modules
//!   imported into several sub-interpreters.
//! * [`sync::MutexExt`], [`sync::RwLockExt`]: `std` locks waited for detached
//!   (`lock_detached`, `read_detached`, `write_detached`).
//! * [`sync::with_critical_section`], [`sync::with_critical_section2`],
//!   [`sync::CriticalSection`], [`sync::CriticalSection2`]: critical sections on one or two
//!   objects (`Py_BEGIN_CRITICAL_SECTION` on free-threaded builds).
//!
//! **Errors, markers, the C API and the guide**
//! * [`GilError`]: every refused operation, each in place of a CPython abort, hang or
//!   `pthread_exit`; [`GilError::raise_in_python`] sets it as the attached thread's Python
//!   exception (for an extension function to return `NULL`).
//! * [`boundary`]: the body of a function Python calls, its errors and panics turned into
//!   the exception and error value ([`ErrorValue`]) its caller expects.
//! * [`PythonException`]: a Python exception, taken out of Python on one thread (a native
//!   worker inside [`with_gil`]) or made in Rust ([`PythonException::new`] with an
//!   [`ExceptionKind`], or from a [`GilError`] by `?`), `Send`, readable without the GIL,
//!   and raised again where it is needed ([`PythonException::take`],
//!   [`PythonException::fetch`], [`PythonException::restore`]).
//! * [`OwnedRef`]: a strong reference to a Python object that knows its interpreter and
//!   runtime: `Send` and `Sync`, cloned and dropped on any thread, released only there.
//! * [`marker::CPythonThreadState`]: what makes every guard and handle `!Send` and `!Sync`;
//!   compiler errors name it.
//! * [`ffi`]: `pyo3-ffi` re-exported whole, the one copy of the build, for the C calls made
//!   between the guards.
//! * `stats` (the `stats` feature): attaches, waits and holds per interpreter and per call
//!   site, counted by the guards: `stats::snapshot`, `stats::reset`, `stats::on_long_hold`
//!   (the guide's chapter `seeing_the_gil`).
//! * [`guide`]: the guide's chapters ([`guide::rules`], [`guide::subinterpreters`],
//!   [`guide::reliability`], [`guide::performance`]), whose examples run as doctests.
//!   [`guide::rules`], §9, holds a whole extension module on the raw C API and this crate
//!   (`examples/minimal-ext` in the repository, which the package cannot carry).
//!
//! # The soundness model
//!
//! * **Thread affinity.** Every guard is `!Send` and `!Sync`: CPython requires the undo on
//!   the thread that did the change, so moving a guard to another thread does not compile.
//! * **Acquiring is safe, releasing by RAII is not.** [`mem::forget`](core::mem::forget) is
//!   safe, and a leaked [`WithGil`] only keeps the GIL held (as a leaked `MutexGuard` keeps
//!   a lock). A leaked [`WithoutGil`] would leave the caller of your code, which believes it
//!   holds the GIL, running without it. So [`WithoutGil::new`] and [`GilGuard::release`]
//!   are `unsafe`, and the safe way to release is [`without_gil`], a closure whose captures
//!   and result must be `Send`.
//! * **Any drop order.** Each guard pushes a frame on a per-thread stack; CPython is only
//!   ever asked to undo the newest change. A guard dropped while newer ones are alive is
//!   undone when they are gone. The thread is always in the state the newest live guard
//!   asked for, and no drop order reachable from safe code makes CPython abort.
//! * **Closure forms are scopes.** A guard created inside [`with_gil`], [`without_gil`] or
//!   [`ThreadStateHandle::run`] that outlives the closure (leaked, stored, returned) is
//!   ended when the closure returns: the caller always gets back the state it had.
//! * **Other owners.** CPython's `threading`, C libraries' `PyGILState_Ensure` /
//!   `PyGILState_Release` pairs and `pyo3` attach, detach and delete thread states on the
//!   same threads. The frame stack is only a record of what this crate did: a thread state
//!   it does not own is passed back to CPython only once CPython confirms it is current and
//!   the same object, or while the closure form that detached it is still running. With
//!   `pyo3` on the same threads, enable the `pyo3` feature (tokens from guards, and a
//!   `without_gil` that `pyo3` sees).
//! * **Errors, not aborts.** What CPython would answer with `Fatal Python error`, a hang or
//!   `pthread_exit` (not initialized, finalizing, releasing while detached, a
//!   sub-interpreter still alive at exit, ...) is checked first and returned as a
//!   [`GilError`], or handled.
//!
//! * **A re-initialized runtime is another one.** What the crate records in a runtime (an
//!   interpreter's name, an exception, a per-interpreter value, a thread state) is never
//!   returned, released or attached in a later one, whoever started either.
//! * **Python code the crate runs itself** (a new interpreter's `site` import, a thread
//!   state's finalizers, an import hook) may call back into it: it finds the thread attached
//!   and may nest guards.
//!
//! The [guide] ([`guide::rules`]) explains each rule and the reasons behind
//! it in more depth; its chapter "Other owners of a thread's state" lists what was checked
//! against each owner, and the few rules that remain the user's. `ARCHITECTURE.md` shows how
//! the source is laid out in layers, and why.
//!
//! # With `pyo3`
//!
//! The `pyo3` feature is for code that also uses `pyo3` on the same threads. `pyo3` counts
//! a thread's attachment itself and knows one interpreter, so with the feature a `pyo3`
//! token means **attached to the main interpreter**:
//!
//! * tokens come only from the main interpreter (`with_python`, `WithGil::python`);
//! * [`without_gil`] detaches the main interpreter through `pyo3`'s `Python::detach`, so a
//!   `Python::attach` inside it really attaches;
//! * while another interpreter is attached through this crate
//!   ([`ThreadStateHandle::run`], a handle's deletion, creating or ending a
//!   [`SubInterpreter`]), `pyo3` counts the thread detached: a `Py<T>` dropped there is
//!   released later, in the main interpreter, and `pyo3`'s queue of such releases is never
//!   drained in a sub-interpreter; [`ThreadStateHandle::run`]'s closure and result are
//!   `Send`, so no token or `Bound` of the interpreter it leaves crosses into it;
//! * when such a region ends, `PyGILState` (which `Python::attach` uses) names a
//!   main-interpreter thread state again;
//! * `?` converts a [`PythonException`] or a [`GilError`] into a `pyo3::PyErr`, for a
//!   `#[pyfunction]`.
//!
//! `pyo3` exposes no count this crate could read, so two rules stay yours: do not call
//! `Python::attach` while a sub-interpreter is attached (inside `run`; use `with_python`,
//! which switches to the main interpreter), and do not drop a guard (or restore a
//! [`GilGuard`]) inside a `Python::attach` that began after the guard was made: the thread
//! would be detached under `pyo3`'s token, and `pyo3`'s release then aborts the process.
//! The guide ([`guide::rules`], §6.7) has the details.
//!
//! # Supported Pythons
//!
//! CPython 3.9 to 3.15. The repository's CI runs the whole test suite (with the doctests
//! and examples) and the two example extension modules' tests on each of 3.9, 3.10, 3.11,
//! 3.12, 3.13, 3.14 and 3.15, the last with the PEP 788 code (`PyInterpreterGuard`,
//! `PyInterpreterView`) this crate declares for it. The free-threaded builds (3.14t, 3.15t)
//! are only type-checked: no free-threaded interpreter was available to run the tests on,
//! and what the guards mean there is argued in the guide ([`guide::rules`], §7), not tested.
//!
//! Not supported: the stable ABI (`abi3`, the limited API) and implementations other than
//! CPython (PyPy, GraalPy). This crate needs CPython's full C API (thread-state and
//! interpreter-state functions the limited API lacks), so when an `abi3*` feature of `pyo3`
//! or `pyo3-ffi` is enabled anywhere in the build, or `pyo3-ffi` is configured for PyPy, its
//! build script stops the build with one error that says so.
#![warn(rustdoc::broken_intra_doc_links)]
// docs.rs (`--cfg docsrs`, nightly): mark what the `pyo3` feature adds. rustdoc would mark
// `cfg(Py_3_14)` "Available on Py_3_14 only", a name it cannot be told to replace, so that
// badge is hidden: an item gated on it says "(CPython 3.14+)" in its first sentence instead.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(docsrs, doc(auto_cfg(hide(Py_3_14))))]
#![deny(unsafe_code)]

// The layers, lowest first (blank lines keep rustfmt from sorting them); a module only
// imports from its own layer and the ones below (ARCHITECTURE.md; tests/layers.rs).
mod raw;

mod context;

#[cfg(feature = "stats")]
pub mod stats;

mod runtime;

mod guards;

mod interpreters;

mod objects;

pub mod sync;

mod error;
pub mod marker;

pub use context::attached::is_attached;
pub use error::GilError;
pub use guards::gil_guard::GilGuard;
pub use guards::start::initialize;
pub use guards::with_gil::{WithGil, try_with_gil, with_gil};
#[cfg(feature = "pyo3")]
pub use guards::with_pyo3::{try_with_python, with_python};
pub use guards::without_gil::{WithoutGil, try_without_gil, without_gil};
pub use interpreters::attach_guard::AttachGuard;
pub use interpreters::interpreter::Interpreter;
pub use interpreters::interpreter_config::InterpreterConfig;
pub use interpreters::sub_interpreter::SubInterpreter;
pub use interpreters::thread_state::ThreadStateHandle;
pub use objects::boundary::{ErrorValue, boundary};
pub use objects::owned_ref::OwnedRef;
pub use objects::python_exception::PythonException;
pub use raw::ffi::ExceptionKind;
pub use runtime::finalization::{is_finalizing, is_initialized};
pub use runtime::shutdown::set_shutdown_timeout;

pub mod ffi {
    //! The raw C API: [`pyo3-ffi`](https://docs.rs/pyo3-ffi), re-exported whole.
    //!
    //! gilguard depends on `pyo3-ffi` 0.30, and `pyo3-ffi` declares `links = "python"`, so
    //! a build holds exactly one copy of it. Code that calls the C API between gilguard's
    //! guards can use this module instead of a dependency line of its own, and so always
    //! gets the very version gilguard was built with (the one `pyo3` 0.30 also uses, when it
    //! is in the build).
    //!
    //! ```
    //! use gilguard::{ffi, with_gil};
    //!
    //! gilguard::initialize()?; // only when embedding
    //! let n = with_gil(|| {
    //!     // SAFETY: this thread is attached (`with_gil`), and `obj` is checked and released.
    //!     unsafe {
    //!         let obj = ffi::PyLong_FromLong(42);
    //!         assert!(!obj.is_null());
    //!         let n = ffi::PyLong_AsLong(obj);
    //!         ffi::Py_DecRef(obj);
    //!         n
    //!     }
    //! });
    //! assert_eq!(n, 42);
    //! # Ok::<(), gilguard::GilError>(())
    //! ```
    //!
    //! The guards decide when calling into it is allowed: a thread must be attached
    //! ([`WithGil`](crate::WithGil), [`with_gil`](crate::with_gil),
    //! [`ThreadStateHandle::attach`](crate::ThreadStateHandle::attach)) for almost every
    //! function here.

    #[doc(no_inline)]
    pub use pyo3_ffi::*;
}

pub mod guide {
    //! The guide: the rules this crate enforces, the model behind its guards, and the
    //! decisions that are not obvious from the API.
    //!
    //! Its chapters are the files of `docs/` in the package, included here whole, so that
    //! every Rust example in them is compiled and run with the doctests:
    //!
    //! * [`rules`]: the GIL rules in Rust terms; the soundness model (thread affinity, why
    //!   releasing by RAII is `unsafe`, the per-thread frame stack); threads Python did not
    //!   create; sub-interpreters and `PyGILState`; embedding; other owners of a thread's
    //!   state (`threading`, C libraries, `pyo3`); free-threaded builds; synchronization
    //!   ([`sync`](crate::sync)); and a whole extension module, the repository's
    //!   `examples/minimal-ext`.
    //! * [`subinterpreters`]: sub-interpreters from many OS threads, their thread states,
    //!   and their own GIL on CPython 3.12+.
    //! * [`reliability`]: what each misuse returns, shutdown, fork, and how it is tested.
    //! * [`performance`]: what the benches measure, the ratios against the raw C calls and
    //!   `pyo3`, and how to reproduce them (the dated record of every run stays in
    //!   `docs/performance-log.md`).
    //! * `seeing_the_gil` (with the `stats` feature): which code holds the GIL and who waits
    //!   for it, counted by the guards; checked against ground truth and beside `gilknocker`;
    //!   when to use it and when a sampling profiler (py-spy).

    // The chapters link to one another by reference-style links whose definitions, at the
    // end of each file, name the Markdown file beside it, for a reader of `docs/` on a
    // forge. The first definition of a label is the one used, so the `///` lines before each
    // file give the same labels their rustdoc targets here.

    /// [reliability]: crate::guide::reliability
    #[doc = include_str!("../docs/guide.md")]
    pub mod rules {}

    /// [guide]: crate::guide::rules
    /// [reliability]: crate::guide::reliability
    #[doc = include_str!("../docs/subinterpreters.md")]
    pub mod subinterpreters {}

    /// [guide]: crate::guide::rules
    #[doc = include_str!("../docs/reliability.md")]
    pub mod reliability {}

    #[doc = include_str!("../docs/performance.md")]
    pub mod performance {}

    #[cfg(feature = "stats")]
    #[doc = include_str!("../docs/seeing-the-gil.md")]
    pub mod seeing_the_gil {}
}

/// The examples of `README.md`, compiled and run with the doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
