//! Ending a sub-interpreter: when its owner asks ([`SubInterpreter::end`]), and at
//! shutdown for every one still alive.
//!
//! CPython aborts when the runtime finalizes while a sub-interpreter exists
//! (`PyInterpreterState_Delete: remaining subinterpreters` up to 3.12; from 3.13 it ends
//! them itself, but aborts with `Py_EndInterpreter: not the last thread` if one has several
//! thread states). A `SubInterpreter` can outlive the runtime by safe means (leaked, in a
//! `static`, on a thread never joined), so every one is registered here, and the `atexit`
//! callback ends those still alive, with their handles' thread states ([`end_all_at_shutdown`]).
//!
//! [`SubInterpreter::end`]: crate::SubInterpreter::end

#![allow(
    unsafe_code,
    reason = "ends sub-interpreters and deletes their thread states"
)]

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::raw::ffi::{PyInterpreterState, PyThreadState};

use crate::context::claims::InterpreterLife;
use crate::context::frame::{Entry, Frame};
use crate::context::queries;
use crate::error::GilError;
use crate::guards::stack;
use crate::interpreters::deferred;
use crate::interpreters::interpreter::Interpreter;
use crate::raw::epoch::epoch;
use crate::raw::ffi;
use crate::runtime::{native_thread, shutdown};

const LIVE: u8 = 0;
const ENDING: u8 = 1;
const ENDED: u8 = 2;

/// What ending a sub-interpreter needs, shared by its [`SubInterpreter`] and the registry
/// of live interpreters that the shutdown ends.
///
/// [`SubInterpreter`]: crate::SubInterpreter
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) interp: NonNull<PyInterpreterState>,
    /// The interpreter's first thread state, kept detached until the end: CPython 3.11 and
    /// 3.12 reuse a statically allocated thread state when an interpreter has none left,
    /// and abort (`init_threadstate: thread state already initialized`) when that one was
    /// used before. Keeping it alive means the interpreter always has one. It is also the
    /// thread `threading` considers the interpreter's main thread (see `import_threading`).
    pub(crate) first: NonNull<PyThreadState>,
    /// `PyThread_get_thread_ident()` of the creating thread, which `threading` records as
    /// the interpreter's main thread.
    pub(crate) main_thread_ident: core::ffi::c_ulong,
    /// The runtime epoch it was created in: finalization destroys it with the runtime.
    pub(crate) epoch: u64,
    /// Live `ThreadStateHandle`s made from the `SubInterpreter`; a leaked one keeps this
    /// above zero for good.
    pub(crate) thread_states: AtomicUsize,
    /// `LIVE`, `ENDING` (by its owner or by the shutdown, whoever came first) or `ENDED`.
    state: AtomicU8,
}

// SAFETY: two addresses and atomics; the pointers are used only by the thread that won the
// `state` transition to `ENDING`, holding the interpreter's GIL.
unsafe impl Send for Record {}
// SAFETY: as above; shared access reads the plain fields and the atomics.
unsafe impl Sync for Record {}

impl InterpreterLife for Record {
    fn is_usable(&self) -> bool {
        Record::is_usable(self)
    }
}

/// The sub-interpreters this crate created and did not end yet.
static LIVE_INTERPRETERS: Mutex<Vec<Arc<Record>>> = Mutex::new(Vec::new());

/// The thread states of every live [`ThreadStateHandle`](crate::ThreadStateHandle), with
/// their interpreters' addresses: the shutdown deletes those of the interpreters it ends.
static HANDLE_STATES: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());

impl Record {
    /// Registers a new interpreter, created in the runtime of `epoch`, as live.
    pub(crate) fn register(
        interp: NonNull<PyInterpreterState>,
        first: NonNull<PyThreadState>,
        main_thread_ident: core::ffi::c_ulong,
        epoch: u64,
    ) -> Arc<Record> {
        // Before the shutdown can find the record.
        shutdown::end_interpreters_with(end_all_at_shutdown);
        let record = Arc::new(Record {
            interp,
            first,
            main_thread_ident,
            epoch,
            thread_states: AtomicUsize::new(0),
            state: AtomicU8::new(LIVE),
        });
        LIVE_INTERPRETERS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&record));
        record
    }

    /// Whether the interpreter is alive and may be used: not ended (or being ended), and its
    /// runtime not finalized.
    pub(crate) fn is_usable(&self) -> bool {
        self.state.load(Ordering::Acquire) == LIVE && self.epoch == epoch()
    }

    /// Ends the interpreter from this thread, attached to the main interpreter (and again on
    /// return), if nobody else is ending it, deleting first the handles' thread states in
    /// `handles` (only the shutdown passes any; frames of this thread forget them).
    ///
    /// # Errors
    /// [`GilError::InterpreterEnded`] if it is ended or being ended;
    /// [`GilError::InterpreterInUse`] if unknown thread states remain (Python daemon threads)
    /// or a frame of this thread uses the first one.
    pub(crate) fn end(&self, handles: &[*mut PyThreadState]) -> Result<(), GilError> {
        if self
            .state
            .compare_exchange(LIVE, ENDING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(GilError::InterpreterEnded);
        }
        let in_use = queries::names(self.first.as_ptr());
        if !in_use {
            // Deleted below: the frames of this thread that still name them (a guard leaked
            // or alive in code that finalizes the runtime) must never touch them again.
            for &handle in handles {
                for _ in 0..queries::forget_thread_state(handle) {
                    native_thread::dismiss_guard();
                }
            }
        }
        let ended = !in_use && self.end_from_main(handles);
        if ended {
            self.state.store(ENDED, Ordering::Release);
            LIVE_INTERPRETERS
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|other| !core::ptr::eq(&**other, self));
            let interp = self.interp.as_ptr() as usize;
            HANDLE_STATES
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|&(of, _)| of != interp);
            Ok(())
        } else {
            self.state.store(LIVE, Ordering::Release);
            Err(GilError::InterpreterInUse)
        }
    }

    /// Ends the interpreter, attached to the main interpreter before and after; returns
    /// whether it ended. `Py_EndInterpreter` needs a thread state of the interpreter current:
    /// on the thread `threading` takes for its main one, the first thread state (its shutdown
    /// expects that one's lock still held); elsewhere a new one, the first deleted just before.
    fn end_from_main(&self, handles: &[*mut PyThreadState]) -> bool {
        let main_tstate = ffi::current_thread_state();
        let first = self.first.as_ptr();
        let on_main_thread = ffi::thread_ident() == self.main_thread_ident;
        // SAFETY: the interpreter is alive and `first` detached; creating a thread state needs
        // no GIL. The main thread state is detached here and re-attached below on every path.
        let tstate = unsafe {
            let tstate = if on_main_thread {
                first
            } else {
                ffi::new_thread_state(self.interp.as_ptr())
            };
            ffi::save_thread();
            ffi::restore_thread(tstate);
            tstate
        };
        // Recorded so that Python code run by the shutdown (atexit handlers, finalizers)
        // that calls back into Rust sees where the thread is.
        let ending = stack::push(Frame::handle(Entry::Nested, tstate));
        let ended = stack::in_scope::<stack::NestedFrame, _>(ending, || {
            // References of this interpreter dropped where it could not be attached.
            if let Ok(here) = Interpreter::current() {
                // SAFETY: attached to `here`, the interpreter being ended, named just now.
                unsafe { deferred::release_here(here) };
            }
            wind_down();
            // SAFETY: attached to `tstate`, of this interpreter; the handles' thread states
            // are detached and no thread uses them (the caller's precondition).
            unsafe { delete_handle_states(tstate, handles) };
            if self.only_thread_states(tstate) {
                // SAFETY: the GIL is held; `first` (unless it is `tstate`) is detached and
                // unused, so it may be cleared and deleted from here, as CPython's `zapthreads`
                // does. Then `tstate` is current, frameless and alone: `Py_EndInterpreter`'s.
                unsafe {
                    if tstate != first {
                        ffi::clear(first);
                        ffi::delete(first);
                    }
                    ffi::end_interpreter(tstate);
                }
                true
            } else if tstate == first {
                // SAFETY: attached above; detaching releases the interpreter's GIL.
                unsafe { ffi::save_thread() };
                false
            } else {
                // SAFETY: `tstate` is attached and was created above; clearing and deleting
                // it detaches the thread and releases the interpreter's GIL.
                unsafe {
                    ffi::clear(tstate);
                    ffi::delete_current();
                }
                false
            }
        });
        // SAFETY: no thread state is current now, and `main_tstate` was detached above.
        unsafe { reattach(main_tstate, ended) };
        ended
    }

    /// Whether the interpreter's thread states are `tstate` and `first` only; its GIL is held.
    fn only_thread_states(&self, tstate: *mut PyThreadState) -> bool {
        let expected = if tstate == self.first.as_ptr() { 1 } else { 2 };
        // SAFETY: the interpreter is alive and its GIL is held; reading the list of its
        // thread states is what `Py_EndInterpreter` does for the same check.
        unsafe {
            let mut count = 0;
            let mut next = ffi::thread_head(self.interp.as_ptr());
            while !next.is_null() {
                if next != tstate && next != self.first.as_ptr() {
                    return false;
                }
                count += 1;
                next = ffi::next_thread_state(next);
            }
            count == expected
        }
    }
}

/// The record of `interp`, if it is a live sub-interpreter this crate created.
pub(crate) fn record_of(interp: *mut PyInterpreterState) -> Option<Arc<Record>> {
    LIVE_INTERPRETERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .find(|record| record.interp.as_ptr() == interp)
        .cloned()
}

/// Records the thread state of a new handle of `interp`.
pub(crate) fn handle_state_created(interp: *mut PyInterpreterState, tstate: *mut PyThreadState) {
    HANDLE_STATES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((interp as usize, tstate as usize));
}

/// Forgets the thread state of a handle that deleted it.
pub(crate) fn handle_state_deleted(tstate: *mut PyThreadState) {
    HANDLE_STATES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .retain(|&(_, own)| own != tstate as usize);
}

/// Ends the sub-interpreters of this runtime still alive, with their handles' thread states.
/// Called by the `atexit` callback, attached to the main interpreter, once the gate refuses
/// new attaches; `drained`: every native thread dropped its guards (handles' included), so
/// none is attached to, or attaching, a handle's thread state.
///
/// An interpreter is left to CPython's finalization when another thread's handle may still
/// be in use (the wait timed out), a frame of this thread uses one of its thread states, or
/// it runs Python threads the crate does not know of.
pub(crate) fn end_all_at_shutdown(drained: bool) {
    let epoch = epoch();
    let alive: Vec<Arc<Record>> = LIVE_INTERPRETERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|record| record.epoch == epoch)
        .cloned()
        .collect();
    for record in alive {
        let interp = record.interp.as_ptr() as usize;
        let handles: Vec<*mut PyThreadState> = HANDLE_STATES
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|&&(of, _)| of == interp)
            .map(|&(_, tstate)| tstate as *mut PyThreadState)
            .collect();
        if drained || handles.is_empty() {
            let _ = record.end(&handles);
        }
    }
}

/// Deletes `handles`, detached thread states of `tstate`'s interpreter made by handles of any
/// thread: each is attached here, cleared and deleted as current, as CPython (3.13+) deletes
/// other threads' thread states when it finalizes sub-interpreters. Attaching moves this
/// thread's `PyGILState` binding (3.12+), so deleting unbinds it, and re-attaching `tstate`
/// binds that again. (A thread whose binding named one keeps it, stale, until finalization.)
///
/// # Safety
/// `tstate` is attached to this thread; `handles` are detached thread states of its
/// interpreter that no thread uses or will use.
unsafe fn delete_handle_states(tstate: *mut PyThreadState, handles: &[*mut PyThreadState]) {
    for &handle in handles {
        // SAFETY: `tstate` is attached (caller), and re-attached at the end; `handle`, detached
        // and unused (caller), is attached, cleared while attached, and deleted as current.
        unsafe {
            ffi::save_thread();
            ffi::restore_thread(handle);
            ffi::clear(handle);
            ffi::delete_current();
            ffi::restore_thread(tstate);
        }
        handle_state_deleted(handle);
    }
}

/// Joins the interpreter's non-daemon `threading` threads and runs its `atexit` callbacks,
/// as `Py_EndInterpreter` does before it checks that no other thread state is left:
/// extension modules stop their native threads from `atexit` callbacks.
///
/// Not `threading._shutdown`: `Py_EndInterpreter` calls it again, and on 3.12 a second call
/// in a sub-interpreter fails (`assert tlock is not None`). `atexit._run_exitfuncs` clears
/// the callbacks it runs, so they run once.
fn wind_down() {
    const JOIN: &core::ffi::CStr = c"
import sys
threading = sys.modules.get('threading')
while threading is not None:
    pending = [
        thread for thread in threading.enumerate()
        if not thread.daemon
        and thread is not threading.main_thread()
        and thread.ident != threading.get_ident()
    ]
    if not pending:
        break
    for thread in pending:
        thread.join()
import atexit
atexit._run_exitfuncs()
";
    // SAFETY: attached to the interpreter being ended, with no exception set.
    unsafe { ffi::run_statements(JOIN) };
}

/// Re-attaches the main thread state after the one attached in its place was deleted
/// (releasing the interpreter's GIL) or, if `ended`, consumed by `Py_EndInterpreter`.
///
/// # Safety
/// No thread state is current; `main_tstate` is a detached thread state of this thread.
unsafe fn reattach(main_tstate: *mut PyThreadState, ended: bool) {
    #[cfg(not(Py_3_12))]
    if ended {
        // SAFETY: before 3.12 `Py_EndInterpreter` returns holding the one GIL with nothing
        // current; swapping `main_tstate` in hands it the GIL, as a restore would.
        unsafe { ffi::swap(main_tstate) };
        return;
    }
    #[cfg(Py_3_12)]
    let _ = ended;
    // SAFETY: detached with the GIL released (caller); `main_tstate` is this thread's.
    unsafe { ffi::restore_thread(main_tstate) };
}
