//! The per-thread frame stack: the reason guards may be dropped in any order, and the
//! crate's record of what it did to this thread's attachment.
//!
//! Every guard pushes one *frame* that records how it changed this thread's attachment and
//! therefore how to undo it. CPython requires those changes to be undone in reverse order
//! (a `PyEval_RestoreThread` must pair with the latest `PyEval_SaveThread`, a
//! `PyGILState_Release` with the latest `PyGILState_Ensure`). Rust drops values in whatever
//! order the program chooses, so a guard only ever *finishes* its frame; a frame is undone
//! when no newer frame holds a change. This is **the stack invariant**:
//!
//! > the newest frame that still holds a change is live (or being undone), and the thread
//! > is in the state it asked for, unless code outside the crate changed it since.
//!
//! The stack is a cache of what this crate did, never the truth about what CPython has:
//! other code on the thread (CPython's `threading`, a C library's `PyGILState_Ensure`,
//! `pyo3`) attaches, detaches and deletes thread states too. So a frame's pointer is only
//! passed back to CPython after CPython confirms it (`Frame::is_current`), or while the
//! frame's scope vouches for it (`Frame::vouches_for`). This is **the scope rule**:
//!
//! > a live frame that released or suspended a thread state is inside the code that had it
//! > attached (a closure form still running, or an `unsafe` guard whose contract keeps it
//! > there), so that thread state is alive, and this thread's, for as long as the frame is.
//!
//! `SAFETY` comments that rely on either cite it by name ("the stack invariant", "the scope
//! rule"); the C calls' own contracts are stated in `raw::ffi`.
//!
//! Closure forms are scopes: when one returns or unwinds, every frame pushed inside it
//! that still holds a change belongs to a guard that outlived it (leaked, stored in a
//! thread-local, returned). Those frames are ended there, newest first, and stay on the
//! stack as forgotten frames until their guards are gone; the caller gets back exactly the
//! state it had ([`Scope`]).
//!
//! The frames themselves live in this thread's context (`context::frames`); this module is
//! what pushes, finishes and undoes them.

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
pub(crate) use scope::{calling_python, in_pushed_scope, in_scope};
