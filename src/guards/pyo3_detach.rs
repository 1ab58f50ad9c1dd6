//! With the `pyo3` feature: detaching the main interpreter through `pyo3`'s own
//! `Python::detach`, recorded on the frame stack like a release. `pyo3` trusts its own count
//! of attachment (inside `Python::attach`, a nested one hands out a token without asking
//! CPython), so a release it does not count would give tokens to a detached thread. Every
//! switch to another interpreter detaches this way too ([`outside_pyo3`]).

#![allow(unsafe_code, reason = "hands detaching to `pyo3`")]

use pyo3::Python;

use crate::context::attached::{attached_thread_state, owns};
use crate::context::frame::{Entry, Frame, Owner};
use crate::guards::stack;
use crate::raw::ffi::{self, PyThreadState};

/// Runs `f` detached through `pyo3`'s `Python::detach`, if this thread is attached to a
/// main-interpreter thread state; gives `f` back otherwise. `pyo3` drains the references it
/// deferred when it re-attaches: only the main interpreter's may be released there.
pub(crate) fn detach<F, T>(f: F) -> Result<T, F>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    match attached_main() {
        Some(tstate) => Ok(detach_main(tstate, f)),
        None => Err(f),
    }
}

/// See [`outside_pyo3`](crate::guards::outside_pyo3), which calls this one.
pub(crate) fn outside_pyo3<T>(f: impl FnOnce(bool) -> T) -> T {
    let Some(tstate) = attached_main() else {
        return f(false);
    };
    let on_this_thread = SameThread(f);
    detach_main(tstate, move || {
        SameThread(on_this_thread.into_inner()(true))
    })
    .into_inner()
}

/// The main-interpreter thread state attached to this thread, if any.
fn attached_main() -> Option<*mut PyThreadState> {
    let tstate = attached_thread_state();
    // SAFETY: a thread state attached to this thread is live.
    (!tstate.is_null() && unsafe { ffi::is_main_interpreter_state(tstate) }).then_some(tstate)
}

/// Runs `f` inside `pyo3`'s `Python::detach`, which detaches `tstate`, attached to this
/// thread, and re-attaches it after `f`; recorded on the frame stack like a release.
fn detach_main<F, T>(tstate: *mut PyThreadState, f: F) -> T
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    let owner = if owns(tstate) {
        Owner::Crate
    } else {
        Owner::Foreign
    };
    // A pointer is not `Send`; the address crosses into the closure, which runs on this
    // thread.
    let address = tstate as usize;
    // SAFETY: this thread is attached (the caller's), which is all `assume_attached`
    // requires; the token is consumed by `detach` at once.
    let python = unsafe { Python::assume_attached() };
    let value = python.detach(move || {
        // `pyo3` detached the thread state just now, and re-attaches it after the closure.
        #[cfg(feature = "stats")]
        crate::stats::record::released(
            crate::stats::record::detaching(),
            crate::stats::interp::InterpKey::main,
        );
        // On unwind `pyo3` re-attaches unseen: the release is forgotten, not left pending.
        #[cfg(feature = "stats")]
        let forget_on_unwind = scopeguard::guard_on_unwind((), |()| {
            crate::stats::record::not_attached(crate::stats::record::before_restore());
        });
        let released = Frame::released(Entry::ReleasedByPyo3, address as *mut _, owner, None);
        let value = stack::in_scope::<stack::ReleasedByPyo3Frame, T>(stack::push(released), f);
        #[cfg(feature = "stats")]
        scopeguard::ScopeGuard::into_inner(forget_on_unwind);
        // The restore's wait is from here to `detach`'s return.
        #[cfg(feature = "stats")]
        let value = (value, crate::stats::record::before_restore());
        value
    });
    #[cfg(feature = "stats")]
    let value = {
        crate::stats::record::restored(value.1);
        value.0
    };
    value
}

/// A value moved into `pyo3`'s `Python::detach`, whose closure runs on the calling thread
/// before it returns.
struct SameThread<T>(T);

// SAFETY: the value never leaves the thread that made it: it is only moved into and out of
// `Python::detach`'s closure, which runs on the calling thread before `detach` returns.
unsafe impl<T> Send for SameThread<T> {}

impl<T> SameThread<T> {
    /// The value (a method, so that closures capture the whole wrapper, not its field).
    fn into_inner(self) -> T {
        self.0
    }
}
