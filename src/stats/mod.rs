//! Seeing the GIL (the `stats` feature): how often and how long this process's threads
//! attached, waited to attach and held, per interpreter and per call site, counted by the
//! guards themselves.
//!
//! Every attach that takes a GIL (a detached thread attaching, or re-attaching after
//! [`without_gil`](crate::without_gil)) stamps the time before and after the C call that
//! blocks for it (the *wait*) and again at the detach that ends it (the *hold*). Nested
//! attaches take no GIL and are only counted. [`snapshot`] reads the figures, [`reset`]
//! starts them again, [`on_long_hold`] calls back when one hold lasts at least a
//! threshold. The guide's chapter [`guide::seeing_the_gil`](crate::guide::seeing_the_gil)
//! says when to use this and when a sampling profiler.
//!
//! Interpreters are told apart by id and runtime: in a runtime the host started itself, the
//! first counted attach registers the crate's `Py_AtExit` callback (as
//! [`Interpreter::current`](crate::Interpreter::current) does), so that a runtime finalized
//! and started again is counted apart from the first.
//!
//! With the feature off, none of this is compiled and the guards are unchanged.
//!
//! # Examples
//!
//! ```
//! use gilguard::{stats, with_gil};
//!
//! gilguard::initialize()?;
//! with_gil(|| with_gil(|| ())); // one attach that takes the GIL, one nested
//! let snapshot = stats::snapshot();
//! assert!(snapshot.total.attaches(stats::AttachKind::Nested) >= 1);
//! println!("{snapshot}");
//! # Ok::<(), gilguard::GilError>(())
//! ```

mod block;
mod chain;
mod clock;
pub(crate) mod interp;
mod kind;
mod long_hold;
mod read;
pub(crate) mod record;
mod sites;
mod snapshot;
mod table;
#[cfg(test)]
mod tests;
mod thread;

pub use kind::AttachKind;
pub use long_hold::{LongHold, clear_long_hold, on_long_hold};
pub use read::{reset, snapshot};
pub use snapshot::{Counts, InterpreterStats, SiteStats, Snapshot};
