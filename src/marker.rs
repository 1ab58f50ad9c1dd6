//! Marker types.
//!
//! [`CPythonThreadState`] is what makes every guard and handle of this crate `!Send` and
//! `!Sync`; it is public only so that the compiler's error names it when such a value is
//! moved to, or shared with, another thread.

use core::marker::PhantomData;

/// Marks a value as bound to this thread's CPython thread state: a zero-sized field that
/// makes the type containing it `!Send` and `!Sync`.
///
/// Every guard and handle of this crate stands for something CPython tracks per OS thread:
/// a `PyGILState_STATE` counter, the `PyThreadState` that `PyEval_SaveThread` returned, a
/// thread state bound to this thread. CPython requires the matching release, restore or
/// delete to happen on the thread that did the acquire; doing it elsewhere is a fatal error
/// at best and silent corruption at worst. So moving such a value to another thread does
/// not compile, and the error says why:
///
/// ```text
/// error[E0277]: `*mut PyThreadState` cannot be sent between threads safely
///   = note: required because it appears within the type `CPythonThreadState`
/// note: required because it appears within the type `WithGil`
/// ```
///
/// It cannot be constructed outside this crate.
///
/// # Examples
///
/// ```compile_fail,E0277
/// fn is_send<T: Send>() {}
/// is_send::<gilguard::marker::CPythonThreadState>();
/// ```
///
/// ```compile_fail,E0277
/// fn is_sync<T: Sync>() {}
/// is_sync::<gilguard::marker::CPythonThreadState>();
/// ```
#[derive(Clone, Copy, Debug)]
pub struct CPythonThreadState(PhantomData<*mut crate::ffi::PyThreadState>);

static_assertions::assert_not_impl_any!(CPythonThreadState: Send, Sync);

impl CPythonThreadState {
    /// The marker.
    pub(crate) const NEW: CPythonThreadState = CPythonThreadState(PhantomData);
}
