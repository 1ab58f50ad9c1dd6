//! This thread's context: what the crate remembers per thread, in one thread-local
//! ([`thread::with`]): the frame stack (what guards did to the thread's attachment), the
//! main-interpreter thread state kept for the thread, the thread's count of guards for the
//! shutdown gate, and its handles' claims on interpreters.
//!
//! It sits below the runtime layer, so that the runtime's hooks (a fork, the shutdown, a
//! thread's exit) read it directly, and calls only into [`raw`](crate::raw). Which thread
//! state is attached ([`attached`]) is answered here too: it needs CPython and this context.

pub(crate) mod attached;
pub(crate) mod claims;
pub(crate) mod frame;
pub(crate) mod frames;
pub(crate) mod guard_count;
pub(crate) mod kept;
pub(crate) mod queries;
pub(crate) mod thread;
