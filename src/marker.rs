//! The marker that pins a guard to the thread that created it.

use core::marker::PhantomData;

/// A zero-sized field that makes the type containing it `!Send` and `!Sync`.
///
/// Every guard and handle of this crate stands for something CPython tracks per OS thread:
/// a `PyGILState_STATE` counter, the `PyThreadState` that `PyEval_SaveThread` returned, a
/// thread state bound to this thread. CPython requires the matching release, restore or
/// delete to happen on the thread that did the acquire; doing it elsewhere is a fatal error
/// at best and silent corruption at worst. A raw pointer is neither `Send` nor `Sync`, so
/// this marker turns "moved to another thread" into a compile error.
pub(crate) type ThreadBound = PhantomData<*mut ()>;
