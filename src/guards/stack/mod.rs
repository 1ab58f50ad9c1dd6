//! Pushing, finishing and undoing frames (stored in `context::frames`): what lets guards be
//! dropped in any order.
//!
//! Every guard pushes a *frame* recording how it changed this thread's attachment. CPython
//! needs the changes undone newest first (`PyEval_RestoreThread` pairs with the latest
//! `PyEval_SaveThread`, `PyGILState_Release` with the latest `PyGILState_Ensure`), so a
//! guard's drop only *finishes* its frame, which is undone once no newer frame holds a
//! change. This is **the stack invariant**:
//!
//! > the newest frame that still holds a change is live (or being undone), and the thread
//! > is in the state it asked for, unless code outside the crate changed it since.
//!
//! The stack records what this crate did, not what CPython has: `threading`, C libraries
//! and `pyo3` attach, detach and delete thread states too. So a frame's pointer goes back to
//! CPython only once CPython confirms it (`Frame::is_current`), or while the frame's scope
//! vouches for it (`Frame::vouches_for`). This is **the scope rule**:
//!
//! > a live frame that released or suspended a thread state is inside the code that had it
//! > attached (a closure form still running, or an `unsafe` guard whose contract keeps it
//! > there), so that thread state is alive, and this thread's, for as long as the frame is.
//!
//! `SAFETY` comments cite both by name; the C calls' contracts are in `raw::ffi`.

mod finish;
mod push;
mod scope;
#[cfg(test)]
mod tests;
mod undo;
mod unwind;

#[cfg(feature = "pyo3")]
pub(crate) use undo::ReleasedByPyo3Frame;
pub(crate) use undo::{KeptFrame, NestedFrame, ReleasedFrame};

pub(crate) use finish::{finish, finish_likely, finish_main};
#[cfg(Py_3_12)]
pub(crate) use push::bind_main_again_when_undone;
pub(crate) use push::{frame, push, push_nested, push_nested_foreign, push_released};
pub(crate) use scope::{calling_python, in_main_scope, in_pushed_scope, in_scope};
