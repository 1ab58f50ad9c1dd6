//! With the `pyo3` feature: [`PythonException`] and [`GilError`] as `pyo3::PyErr`, so that
//! `?` carries them out of a `#[pyfunction]`.

use pyo3::PyErr;
use pyo3::exceptions::PyRuntimeError;

use crate::error::GilError;
use crate::guards::with_pyo3::try_with_python;
use crate::objects::python_exception::PythonException;

impl From<PythonException> for PyErr {
    /// The same exception as a `PyErr`: raised and fetched in the main interpreter (one
    /// taken out of Python keeps its object and traceback). One that cannot be raised there
    /// (taken in a sub-interpreter, or the runtime is finalizing) becomes a `RuntimeError`
    /// with its text.
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::{ExceptionKind, PythonException};
    /// use pyo3::PyErr;
    /// use pyo3::exceptions::PyValueError;
    ///
    /// gilguard::initialize()?;
    /// let error = PyErr::from(PythonException::new(ExceptionKind::ValueError, "bad"));
    /// gilguard::with_python(|py| assert!(error.is_instance_of::<PyValueError>(py)));
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    fn from(exception: PythonException) -> PyErr {
        let text = exception.to_string();
        try_with_python(|py| exception.restore().map(|()| PyErr::fetch(py)))
            .ok()
            .and_then(Result::ok)
            .unwrap_or_else(|| PyRuntimeError::new_err(text))
    }
}

impl From<GilError> for PyErr {
    /// The exception [`GilError::raise_in_python`] raises, as a `PyErr`.
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::GilError;
    /// use pyo3::PyErr;
    /// use pyo3::exceptions::PyRuntimeError;
    ///
    /// gilguard::initialize()?;
    /// let error = PyErr::from(GilError::NotAttached);
    /// gilguard::with_python(|py| assert!(error.is_instance_of::<PyRuntimeError>(py)));
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    fn from(error: GilError) -> PyErr {
        PythonException::from(error).into()
    }
}
