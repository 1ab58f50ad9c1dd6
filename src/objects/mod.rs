//! Python objects across threads and interpreters ([`OwnedRef`](crate::OwnedRef),
//! [`PythonException`](crate::PythonException)), and [`boundary`](crate::boundary).

pub(crate) mod boundary;
pub(crate) mod owned_ref;
#[cfg(feature = "pyo3")]
mod pyo3_errors;
pub(crate) mod python_exception;
