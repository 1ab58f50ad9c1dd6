//! The frame stack and what stands on it: [`WithGil`](crate::WithGil),
//! [`WithoutGil`](crate::WithoutGil), [`GilGuard`](crate::GilGuard) and their closure forms,
//! the main interpreter's attach path ([`attach`]) and the release path ([`release`]), and
//! start-up. Calls down into the runtime, context and raw layers.

pub(crate) mod attach;
pub(crate) mod gil_guard;
#[cfg(feature = "pyo3")]
pub(crate) mod pyo3_detach;
pub(crate) mod release;
pub(crate) mod stack;
pub(crate) mod start;
pub(crate) mod with_gil;
#[cfg(feature = "pyo3")]
pub(crate) mod with_pyo3;
pub(crate) mod without_gil;

/// Runs `f`, which attaches an interpreter other than the main one (or runs its Python code),
/// with `pyo3` counting this thread as detached meanwhile: with the `pyo3` feature, on a
/// thread attached to a main-interpreter thread state, `f` runs inside `pyo3`'s
/// `Python::detach`, and is told that the main interpreter is attached again as soon as it
/// returns (`pyo3` then releases the references it deferred, in the main interpreter).
/// Otherwise `f` runs as it is, told `false`.
///
/// `pyo3` knows one interpreter: while it counts a thread attached, a `Py<T>` dropped there
/// is released at once, and `Python::attach` hands out a token without asking CPython.
/// Neither may happen while another interpreter is attached.
pub(crate) fn outside_pyo3<T>(f: impl FnOnce(bool) -> T) -> T {
    #[cfg(feature = "pyo3")]
    return pyo3_detach::outside_pyo3(f);
    #[cfg(not(feature = "pyo3"))]
    f(false)
}
