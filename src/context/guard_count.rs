//! A thread's count of the guards it holds, for the shutdown gate (`runtime::shutdown`): one
//! leaked record per thread, reused after it exits, so that the gate can read it at any time.

#[cfg(Py_3_15)]
use core::sync::atomic::AtomicPtr;
use core::sync::atomic::AtomicUsize;

/// The count and, from 3.15, the PEP 788 interpreter guard held while it is above zero. Only
/// its thread changes the count (or the child of a fork, which has no other thread).
#[derive(Debug, Default)]
pub(crate) struct ThreadGuards {
    pub(crate) count: AtomicUsize,
    #[cfg(Py_3_15)]
    pub(crate) interpreter_guard: AtomicPtr<crate::raw::ffi::pep788::PyInterpreterGuard>,
}
