//! A thread's count of the guards it holds, which the shutdown gate waits for
//! (`runtime::shutdown`): one record per thread that ever attached a thread state this crate
//! keeps, leaked and reused after the thread exits, so that the gate can read it at any time.

#[cfg(Py_3_15)]
use core::sync::atomic::AtomicPtr;
use core::sync::atomic::AtomicUsize;

/// The guards one thread holds: how many, and from 3.15 the PEP 788 interpreter guard it
/// keeps open while that count is above zero. Only its thread changes the count (and the
/// child of a fork, which has no other thread).
#[derive(Debug, Default)]
pub(crate) struct ThreadGuards {
    pub(crate) count: AtomicUsize,
    #[cfg(Py_3_15)]
    pub(crate) interpreter_guard: AtomicPtr<crate::raw::ffi::pep788::PyInterpreterGuard>,
}
