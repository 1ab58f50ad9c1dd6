//! Every call this crate makes into CPython, with the version shims, as a wrapper whose
//! `# Safety` states what CPython requires (no file outside `raw/` names `pyo3_ffi`:
//! `tests/layers.rs`); grouped by what they act on, re-exported here as one namespace. A
//! wrapper that takes no pointer and has no precondition is a safe function.

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
