//! The runtime's life: whether it runs or shuts down and watching its finalization
//! ([`finalization`]), and the pieces that follow it: the shutdown gate, fork, the
//! Python-level hooks ([`hooks`]), the kept thread states of native threads. Calls only
//! down, into [`context`](crate::context) and [`raw`](crate::raw); the one thing it must
//! ask a higher layer (ending the sub-interpreters at shutdown) is handed to it by that
//! layer ([`shutdown::end_interpreters_with`]).

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
