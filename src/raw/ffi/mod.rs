//! Every call this crate makes into CPython, as a typed wrapper whose `# Safety` states what
//! CPython requires of it; no file outside `raw/` names `pyo3_ffi` (`tests/layers.rs`). The
//! wrappers are grouped by what they act on, and re-exported here as one namespace
//! (`raw::ffi::restore_thread`), with the C types the layers above need. Where the CPython
//! version changes which function is called or what an answer means, the version shim is
//! here too.
//!
//! A wrapper that takes no pointer and has no precondition is a safe function.

pub(crate) mod critical_section;
mod errors;
mod objects;
#[cfg(Py_3_15)]
pub(crate) mod pep788;
mod runtime;
mod thread_state;

pub use errors::ExceptionKind;
pub(crate) use errors::*;
pub(crate) use objects::*;
pub(crate) use runtime::*;
pub(crate) use thread_state::*;
