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
//! | `PyGILState_Ensure` … `PyGILState_Release`, `gil_scoped_acquire`, `with_gil` | [`WithGil`], [`with_gil`] |
//! | `Py_BEGIN_ALLOW_THREADS` … `Py_END_ALLOW_THREADS`, `gil_scoped_release`, `without_gil` | [`without_gil`], [`WithoutGil`] |
//! | a `gil_guard` with `acquire()` / `release()` / `restore()` | [`GilGuard`] |
//! | `Py_Initialize` + `PyEval_SaveThread` when embedding | [`initialize`] |
//! | `Py_BEGIN_CRITICAL_SECTION`, PyO3's `PyOnceLock`, pybind11's `gil_safe_call_once_and_store`, a lock waited for with the GIL released | [`sync`] |
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
//! The guide in the repository (`docs/guide.md`) explains each rule and the reasons behind
//! it in more depth; its chapter "Other owners of a thread's state" lists what was checked
//! against each owner, and the few rules that remain the user's.
//!
//! # Supported Pythons
//!
//! CPython 3.9 to 3.15. The repository's CI runs the whole test suite (with the doctests
//! and examples) and an extension module's tests on each of 3.9, 3.10, 3.11, 3.12, 3.13,
//! 3.14 and 3.15, the last with the PEP 788 code (`PyInterpreterGuard`,
//! `PyInterpreterView`) this crate declares for it. The free-threaded builds (3.14t, 3.15t)
//! are only type-checked: no free-threaded interpreter was available to run the tests on,
//! and what the guards mean there is argued in the guide, not tested.
#![warn(rustdoc::broken_intra_doc_links)]

mod asymmetric_fence;
mod error;
mod ffi;
mod fork;
mod gil_guard;
mod handle_claims;
mod interpreter;
mod interpreter_config;
mod interpreter_end;
mod interpreter_ref;
mod marker;
mod native_thread;
mod python_hook;
mod runtime;
mod shutdown;
mod stack;
pub mod sync;
mod thread_state;
mod with_gil;
#[cfg(feature = "pyo3")]
mod with_pyo3;
mod without_gil;

pub use error::GilError;
pub use gil_guard::GilGuard;
pub use interpreter::SubInterpreter;
pub use interpreter_config::InterpreterConfig;
pub use interpreter_ref::Interpreter;
pub use runtime::{initialize, is_attached, is_finalizing, is_initialized};
pub use shutdown::set_shutdown_timeout;
pub use thread_state::{AttachGuard, ThreadStateHandle};
pub use with_gil::{WithGil, try_with_gil, with_gil};
#[cfg(feature = "pyo3")]
pub use with_pyo3::{try_with_python, with_python};
pub use without_gil::{WithoutGil, try_without_gil, without_gil};

/// The examples of `README.md`, compiled and run with the doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
