//! This thread's context: one thread-local ([`thread::with`]) holding the frame stack, the
//! kept main-interpreter thread state, the guard count for the shutdown gate and the handles'
//! claims; and [`attached`], which needs it. Below the runtime layer, so that the runtime's
//! hooks (fork, shutdown, thread exit) read it directly.

pub(crate) mod attached;
pub(crate) mod claims;
pub(crate) mod frame;
pub(crate) mod frames;
pub(crate) mod guard_count;
pub(crate) mod kept;
pub(crate) mod queries;
pub(crate) mod thread;
