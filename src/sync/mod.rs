//! Synchronization that cannot deadlock against the GIL: once-initialised values (one per
//! process or one per interpreter), `std` locks that wait detached, and critical sections.
//!
//! # The deadlocks this prevents
//!
//! The GIL is a lock, and every other lock a thread takes while it holds the GIL is ordered
//! after it. Three classic deadlocks of extension code come from breaking that order by
//! accident:
//!
//! * **A Rust lock waited for while attached.** Thread A holds a `Mutex` and then needs the
//!   GIL (to call Python, or to re-attach after a blocking call); thread B holds the GIL and
//!   waits for the `Mutex`. Neither can go on. [`MutexExt::lock_detached`],
//!   [`RwLockExt::read_detached`] and [`RwLockExt::write_detached`] wait for the lock with the
//!   thread detached, so B lets A have the GIL, and re-attach before returning the guard.
//! * **A lazy value whose initialiser releases the GIL.** Any call into Python may release
//!   the GIL (it switches threads every few milliseconds, and every blocking call releases
//!   it). Thread A runs the initialiser of a `std::sync::OnceLock` and releases the GIL;
//!   thread B, attached, asks for the same value and blocks, holding the GIL that A needs to
//!   finish. [`GilOnceLock`] waits detached, so the initialiser can release the GIL, call
//!   Python, or start Python threads that ask for the same value.
//! * **A Python object mutated from two threads without the GIL.** On free-threaded builds
//!   nothing serialises two threads that mutate one object: [`with_critical_section`] and
//!   [`with_critical_section2`] lock the object(s) the way CPython's own C code does.
//!   Their guard forms, [`CriticalSection`] and [`CriticalSection2`], have `unsafe`
//!   constructors (a guard dropped out of order corrupts CPython's list of the thread's
//!   sections) and are for code a closure does not fit; the closures, nested by
//!   construction, are the recommended form.
//!
//! One value per interpreter matters for extension modules imported into several
//! sub-interpreters: a Python object belongs to the interpreter it was made in, and must not
//! be handed to another. [`InterpreterOnceLock`] keeps a value per interpreter.
//!
//! # What is tested, and what is argued
//!
//! `tests/sync.rs` runs each deadlock scenario in a child process with a time limit, on
//! CPython 3.9 to 3.15 with the GIL: both lock orders of two threads with the GIL and a
//! lock, an initialiser that releases the GIL, one that runs Python starting a thread that
//! asks for the same value, a panicking initialiser, a poisoned lock, and a sub-interpreter
//! beside the main interpreter. Each of these tests hangs, and fails on its time limit, if
//! the wait is made while attached.
//!
//! No free-threaded interpreter (3.14t, 3.15t) runs on the machines this crate is tested on,
//! so the free-threaded code is only type-checked there. What it does is argued from
//! CPython's documentation: detaching still matters there (a stop-the-world pause of the
//! garbage collector waits for every attached thread, so a thread that blocks while attached
//! stalls the others), and the critical sections call `PyCriticalSection_Begin` /
//! `PyCriticalSection2_Begin` / `PyCriticalSection_BeginMutex` and their `End`, which is
//! what `Py_BEGIN_CRITICAL_SECTION` expands to (the guards with the section struct in a heap
//! allocation, so that a moved guard stays valid and a leaked one leaves no dangling
//! pointer; see [`CriticalSection::begin`]). With the GIL, CPython's critical-section
//! macros do nothing at all, and so the functions and guards here only check that the
//! thread is attached; that check, and guards nested and dropped in order, are what the
//! tests run.
//!
//! # Examples
//!
//! ```
//! use gilguard::sync::{GilOnceLock, MutexExt};
//! use std::sync::Mutex;
//!
//! static NAME: GilOnceLock<String> = GilOnceLock::new();
//! static COUNT: Mutex<u32> = Mutex::new(0);
//!
//! gilguard::initialize()?;
//! gilguard::with_gil(|| {
//!     // Attached: both wait detached if another thread is in the way.
//!     assert_eq!(NAME.get_or_init(|| "gilguard".to_owned()), "gilguard");
//!     *COUNT.lock_detached().unwrap() += 1;
//! });
//! # Ok::<(), gilguard::GilError>(())
//! ```

mod critical_section;
mod interpreter_once_lock;
mod lock_ext;
mod once_lock;

#[cfg(Py_3_14)]
pub use critical_section::with_critical_section_mutex;
pub use critical_section::{
    CriticalSection, CriticalSection2, with_critical_section, with_critical_section2,
};
pub use interpreter_once_lock::InterpreterOnceLock;
pub use lock_ext::{MutexExt, RwLockExt};
pub use once_lock::GilOnceLock;
