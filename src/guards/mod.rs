//! The frame stack and what stands on it: [`WithGil`](crate::WithGil),
//! [`WithoutGil`](crate::WithoutGil), [`GilGuard`](crate::GilGuard) and their closure forms,
//! start-up, and the query "is this thread attached". Calls down into the runtime and raw
//! layers; registers with the runtime layer what its hooks must tell the frame stack
//! ([`start::register_upcalls`]).

pub(crate) mod attach_main;
pub(crate) mod attached;
pub(crate) mod gil_guard;
pub(crate) mod python_exception;
pub(crate) mod stack;
pub(crate) mod start;
pub(crate) mod with_gil;
#[cfg(feature = "pyo3")]
pub(crate) mod with_pyo3;
pub(crate) mod without_gil;
