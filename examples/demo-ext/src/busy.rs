//! `busy(ms)` and `f(callback, ms)`: Rust work done with the GIL released, so that the
//! caller's other Python threads keep running meanwhile.

use gilguard::without_gil;
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
    // SAFETY: attached with a live argument (CPython's calling convention).
    let Some(ms) = (unsafe { py::milliseconds(ms) }) else {
        return core::ptr::null_mut();
    };
    // Nothing Python-related crosses into the closure: `ms` and the checksum are plain data.
    let checksum = without_gil(move || work(ms));
    // SAFETY: attached again once `without_gil` returned.
    unsafe { ffi::PyLong_FromUnsignedLongLong(checksum) }
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
    if nargs != 2 {
        // SAFETY: attached (CPython's calling convention).
        return unsafe {
            py::raise(
                ffi::PyExc_TypeError,
                &format!("f() takes exactly 2 arguments (callback, ms), {nargs} given"),
            )
        };
    }
    // SAFETY: `nargs` is 2, so both arguments are live, borrowed for the call.
    let (callback, ms) = unsafe { (*args, *args.add(1)) };
    // SAFETY: attached, live argument.
    let Some(ms) = (unsafe { py::milliseconds(ms) }) else {
        return core::ptr::null_mut();
    };
    // `black_box`: the checksum is unused here, and the work must not be optimized away.
    without_gil(move || core::hint::black_box(work(ms)));
    // SAFETY: attached again; `callback` is borrowed from the caller for the whole call. Its
    // result (or the exception it raised, with a null result) goes straight to our caller.
    let result = unsafe { ffi::PyObject_CallNoArgs(callback) };
    if result.is_null() {
        return result;
    }
    without_gil(move || core::hint::black_box(work(ms)));
    result
}
