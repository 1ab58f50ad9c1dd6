//! What the runtime layer must tell the layers above it, without importing them.
//!
//! Fork and finalization change what the frame stack and the handles' claims may trust, and
//! a thread's exit must know whether its frames still use its kept thread state. The
//! runtime layer cannot call up; instead the upper layers register these slots once:
//! the guards layer before it installs the `atexit` and after-fork hooks
//! (`guards::start::register_upcalls`), the interpreters layer before the first handle's
//! claim or sub-interpreter exists (`interpreters::register_upcalls`). Until a slot is
//! registered, what it stands for does not exist yet (no frame was ever pushed by a path
//! that can meet a hook, no claim was ever made), and the defaults below answer for that
//! case, erring on the side that touches nothing.

use std::sync::OnceLock;

use crate::raw::ffi::PyThreadState;

/// The frame stack's side (the guards layer).
#[derive(Debug)]
pub(crate) struct Guards {
    /// In the child of a fork: forget every frame that names a thread state other than the
    /// survivor; returns how many live kept frames remain.
    pub(crate) forget_thread_states_except: fn(*mut PyThreadState) -> usize,
    /// Whether any frame on this thread's stack still holds a change.
    pub(crate) holds_any_change: fn() -> bool,
    /// The thread state attached to this thread, or null.
    pub(crate) attached_thread_state: fn() -> *mut PyThreadState,
    /// Runs the closure with this thread detached, recorded on the frame stack.
    pub(crate) run_detached: fn(&mut (dyn FnMut() + Send)),
}

/// The interpreters' side (handles and sub-interpreters).
#[derive(Debug)]
pub(crate) struct Interpreters {
    /// Whether `tstate` is the thread state of one of this thread's live handles.
    pub(crate) is_handle_state: fn(*mut PyThreadState) -> bool,
    /// Forgets this thread's claims on interpreters, when it exits.
    pub(crate) forget_claims: fn(),
    /// Ends the sub-interpreters still alive at shutdown (`drained`: no native thread holds
    /// a guard any more).
    pub(crate) end_all_at_shutdown: fn(bool),
}

static GUARDS: OnceLock<&'static Guards> = OnceLock::new();
static INTERPRETERS: OnceLock<&'static Interpreters> = OnceLock::new();

/// Registers the guards layer's slots; later calls change nothing.
pub(crate) fn register_guards(slots: &'static Guards) {
    let _ = GUARDS.set(slots);
}

/// Registers the interpreters layer's slots; later calls change nothing.
pub(crate) fn register_interpreters(slots: &'static Interpreters) {
    let _ = INTERPRETERS.set(slots);
}

/// Whether the guards layer has registered (what installing the hooks requires).
pub(crate) fn guards_registered() -> bool {
    GUARDS.get().is_some()
}

/// See [`Guards::forget_thread_states_except`]; with no frame stack, nothing to forget.
pub(crate) fn forget_thread_states_except(survivor: *mut PyThreadState) -> usize {
    GUARDS
        .get()
        .map_or(0, |slots| (slots.forget_thread_states_except)(survivor))
}

/// See [`Guards::holds_any_change`]; unregistered, `true`, so that nothing is deleted.
pub(crate) fn holds_any_change() -> bool {
    GUARDS.get().is_none_or(|slots| (slots.holds_any_change)())
}

/// See [`Guards::attached_thread_state`]; unregistered, CPython's current thread state
/// (before 3.12 possibly another thread's: a non-null answer then keeps callers from
/// touching anything).
pub(crate) fn attached_thread_state() -> *mut PyThreadState {
    match GUARDS.get() {
        Some(slots) => (slots.attached_thread_state)(),
        None => crate::raw::ffi::current_thread_state(),
    }
}

/// See [`Guards::run_detached`]; unregistered (no hook can run then), runs `f` as it is.
pub(crate) fn run_detached(f: &mut (dyn FnMut() + Send)) {
    match GUARDS.get() {
        Some(slots) => (slots.run_detached)(f),
        None => f(),
    }
}

/// See [`Interpreters::is_handle_state`]; with no claim ever made, `false`.
pub(crate) fn is_handle_state(tstate: *mut PyThreadState) -> bool {
    INTERPRETERS
        .get()
        .is_some_and(|slots| (slots.is_handle_state)(tstate))
}

/// See [`Interpreters::forget_claims`].
pub(crate) fn forget_claims() {
    if let Some(slots) = INTERPRETERS.get() {
        (slots.forget_claims)();
    }
}

/// See [`Interpreters::end_all_at_shutdown`]; with no sub-interpreter ever made, nothing.
pub(crate) fn end_all_at_shutdown(drained: bool) {
    if let Some(slots) = INTERPRETERS.get() {
        (slots.end_all_at_shutdown)(drained);
    }
}
