//! Interpreters and their thread states: [`SubInterpreter`](crate::SubInterpreter) and its
//! [`InterpreterConfig`](crate::InterpreterConfig), [`Interpreter`](crate::Interpreter),
//! [`ThreadStateHandle`](crate::ThreadStateHandle) and [`AttachGuard`](crate::AttachGuard),
//! and the records that let the shutdown end what is still alive. The top of the core
//! layers: uses the guards, runtime and raw layers, and registers with the runtime layer
//! what its hooks must tell the handles ([`register_upcalls`]).

pub(crate) mod attach_guard;
pub(crate) mod deferred;
pub(crate) mod handle_claims;
pub(crate) mod interpreter;
pub(crate) mod interpreter_config;
pub(crate) mod interpreter_end;
pub(crate) mod sub_interpreter;
pub(crate) mod thread_state;

use crate::runtime::upcalls;

/// What the runtime layer calls when a shutdown or a thread's exit must reach the handles
/// and the sub-interpreters.
static UPCALLS: upcalls::Interpreters = upcalls::Interpreters {
    is_handle_state: handle_claims::is_handle_state,
    forget_claims: handle_claims::forget_claims,
    end_all_at_shutdown: interpreter_end::end_all_at_shutdown,
};

/// Registers the interpreters' [`upcalls`] with the runtime layer; cheap after the first
/// call. Called before the first claim of a handle and the first record of a
/// sub-interpreter exist: until then, the defaults of the slots are the right answers.
pub(crate) fn register_upcalls() {
    upcalls::register_interpreters(&UPCALLS);
}
