//! The frame stack ([`stack`]) and what stands on it: [`WithGil`](crate::WithGil),
//! [`WithoutGil`](crate::WithoutGil), [`GilGuard`](crate::GilGuard) and their closure forms.

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

/// Runs `f`, which attaches another interpreter (or runs its code), with `pyo3` counting this
/// thread detached: `pyo3` knows one interpreter, and while it counts a thread attached it
/// releases a dropped `Py<T>` at once and hands out tokens without asking CPython. With the
/// `pyo3` feature, on a thread attached to the main interpreter, `f` runs inside
/// `Python::detach` and is told `true` (the main interpreter is attached again when it
/// returns, where `pyo3` releases what it deferred); otherwise it runs as it is, told `false`.
pub(crate) fn outside_pyo3<T>(f: impl FnOnce(bool) -> T) -> T {
    #[cfg(feature = "pyo3")]
    return pyo3_detach::outside_pyo3(f);
    #[cfg(not(feature = "pyo3"))]
    f(false)
}
