//! The lowest layer: the C calls ([`ffi`]), the shutdown gate's fence, the runtime epoch.

pub(crate) mod asymmetric_fence;
pub(crate) mod epoch;
pub(crate) mod ffi;
