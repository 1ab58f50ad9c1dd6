//! Python objects across threads and interpreters, and the boundary of an extension
//! function: [`OwnedRef`](crate::OwnedRef), [`PythonException`](crate::PythonException),
//! [`boundary`](crate::boundary). Built on the layers below; `sync` is the only layer above.

pub(crate) mod boundary;
pub(crate) mod owned_ref;
#[cfg(feature = "pyo3")]
mod pyo3_errors;
pub(crate) mod python_exception;
