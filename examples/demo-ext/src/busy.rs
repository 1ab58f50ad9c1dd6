//! `busy(ms)` and `f(callback, ms)`: Rust work done with the GIL released, so that the
//! caller's other Python threads keep running meanwhile.

use gilguard::{ExceptionKind, PythonException, boundary, without_gil};
use pyo3_ffi as ffi;

use crate::py;

/// Mixing steps per requested millisecond: about a millisecond of one core on the machine
/// the demo was written on. Fixed, rather than measured at run time, so that the checksum is
/// a function of `ms` alone.
const STEPS_PER_MS: u64 = 1_000_000;

/// Computes for about `ms` milliseconds and returns a checksum of the work: `ms` times
/// [`STEPS_PER_MS`] rounds of the SplitMix64 generator, folded together. Each round depends
/// on the previous one, so the compiler cannot skip any.
pub fn work(ms: u64) -> u64 {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut checksum: u64 = 0;
    for _ in 0..ms.saturating_mul(STEPS_PER_MS) {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^= mixed >> 31;
        checksum = checksum.rotate_left(7) ^ mixed;
    }
    checksum
}

/// `busy(ms: int) -> int` (`METH_O`): [`work`] with the GIL released.
///
/// # Safety
/// Called by CPython, attached, with a live argument.
pub unsafe extern "C" fn busy(
    _module: *mut ffi::PyObject,
    ms: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    boundary(|| {
        // SAFETY: attached with a live argument (CPython's calling convention).
        let ms = unsafe { py::milliseconds(ms) }?;
        // Nothing Python-related crosses into the closure: `ms` and the checksum are plain
        // data.
        let checksum = without_gil(move || work(ms));
        // SAFETY: attached again once `without_gil` returned.
        py::checked(unsafe { ffi::PyLong_FromUnsignedLongLong(checksum) })
    })
}

/// `f(callback, ms)` (`METH_FASTCALL`): the classic scenario. `ms` of work without the GIL,
/// `callback()` with it, `ms` more without it; returns what `callback` returned. An exception
/// raised by `callback` propagates unchanged, and the second half of the work is skipped.
///
/// # Safety
/// Called by CPython, attached, with `nargs` live arguments at `args`.
pub unsafe extern "C" fn f(
    _module: *mut ffi::PyObject,
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    boundary(|| {
        if nargs != 2 {
            let message = format!("f() takes exactly 2 arguments (callback, ms), {nargs} given");
            return Err(PythonException::new(ExceptionKind::TypeError, message));
        }
        // SAFETY: `nargs` is 2, so both arguments are live, borrowed for the call.
        let (callback, ms) = unsafe { (*args, *args.add(1)) };
        // SAFETY: attached, live argument.
        let ms = unsafe { py::milliseconds(ms) }?;
        // `black_box`: the checksum is unused here, and the work must not be optimized away.
        without_gil(move || core::hint::black_box(work(ms)));
        // SAFETY: attached again; `callback` is borrowed from the caller for the whole call.
        // Its exception is taken and raised again unchanged (the same object, traceback and
        // all) by `boundary`. The result is held as an `OwnedRef` across the second half, so
        // that a panic there would release it.
        let result = unsafe { py::owned(ffi::PyObject_CallNoArgs(callback)) }?;
        without_gil(move || core::hint::black_box(work(ms)));
        Ok(result.to_owned_ptr()?.as_ptr())
    })
}
