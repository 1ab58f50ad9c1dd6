//! The runtime's life ([`finalization`]) and what follows it: the shutdown gate, fork, the
//! Python-level hooks, the native threads' kept thread states. What it must ask of a higher
//! layer (ending the sub-interpreters at shutdown), that layer hands it
//! ([`shutdown::end_interpreters_with`]).

pub(crate) mod finalization;
pub(crate) mod fork;
pub(crate) mod hooks;
pub(crate) mod native_thread;
pub(crate) mod python_hook;
pub(crate) mod shutdown;

pub(crate) use finalization::is_finalizing;
pub(crate) use finalization::{
    check_can_attach, check_not_finalizing, hooks_installed, is_watched, no_exit_slot,
    watch_finalization, watched_epoch,
};
