//! The lowest layer: the C calls ([`ffi`]), the shutdown gate's fence, the runtime epoch,
//! and (with the `stats` feature) the time stamp counter.

pub(crate) mod asymmetric_fence;
pub(crate) mod epoch;
pub(crate) mod ffi;
#[cfg(feature = "stats")]
pub(crate) mod tsc;
