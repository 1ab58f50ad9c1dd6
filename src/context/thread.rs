//! The one thread-local that holds this thread's [`Context`], and the questions about it
//! that the rest of the crate asks most.

#![allow(unsafe_code, reason = "reaches the thread-local by its address")]

use crate::context::claims::Claims;
use crate::context::frames::FrameStack;
use crate::context::guard_count::ThreadGuards;
use crate::context::kept::Kept;
use crate::raw::ffi::PyThreadState;

/// Everything the crate remembers about one thread. The inline frames first
/// (`repr(C)`): the fast paths then address a frame from the thread-local's own address.
#[repr(C)]
pub(crate) struct Context {
    pub(crate) frames: FrameStack,
    pub(crate) kept: Kept,
    pub(crate) claims: Claims,
}

thread_local! {
    /// `const`-initialized and without a destructor: reaching it costs an address
    /// computation, never allocates, and works at any point of the thread's teardown,
    /// including in the `Drop` of a guard that outlives every other thread-local.
    static CONTEXT: Context = const {
        Context {
            frames: FrameStack::new(),
            kept: Kept::new(),
            claims: Claims::new(),
        }
    };
}

/// Runs `f` with this thread's context.
#[inline(always)]
pub(crate) fn with<T>(f: impl FnOnce(&Context) -> T) -> T {
    f(context())
}

/// This thread's context. `'static` because it has no destructor: it stays where it is for
/// as long as this thread runs; and `!Send`, like every reference to it (it is `!Sync`), so
/// only this thread ever uses it.
#[inline(always)]
pub(crate) fn context() -> &'static Context {
    // Only the address is taken inside `LocalKey::with`, the same tiny closure everywhere:
    // the compiler inlines it (where a `with` per call site, holding its caller's code, may
    // not be, leaving an indirect call on every path).
    let context = CONTEXT.with(core::ptr::from_ref);
    // SAFETY: see above; it is only ever borrowed shared (its fields are cells).
    unsafe { &*context }
}

/// This thread's kept thread state (see [`Kept::current`]).
#[inline(always)]
pub(crate) fn kept_thread_state() -> *mut PyThreadState {
    with(|context| context.kept.current())
}

/// This thread's count of guards for the shutdown gate, if it has one.
#[inline(always)]
pub(crate) fn thread_guards() -> Option<&'static ThreadGuards> {
    with(|context| context.kept.guards.get())
}

/// Whether `tstate` is the thread state of one of this thread's handles, still alive.
pub(crate) fn is_handle_state(tstate: *mut PyThreadState) -> bool {
    with(|context| context.claims.is_handle_state(tstate))
}
