//! The C layer: version shims and the C preconditions of the calls this crate makes
//! ([`ffi`]), the asymmetric fence of the shutdown gate, and the runtime epoch. Nothing here
//! knows about guards, frames or interpreters.

pub(crate) mod asymmetric_fence;
pub(crate) mod epoch;
pub(crate) mod ffi;
