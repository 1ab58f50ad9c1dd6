//! Interpreters and their thread states ([`SubInterpreter`](crate::SubInterpreter),
//! [`Interpreter`](crate::Interpreter), [`ThreadStateHandle`](crate::ThreadStateHandle)), and
//! what the shutdown uses to end the sub-interpreters still alive
//! (`interpreter_end::end_all_at_shutdown`).

pub(crate) mod attach_guard;
pub(crate) mod deferred;
pub(crate) mod handle_attach;
pub(crate) mod interpreter;
pub(crate) mod interpreter_config;
pub(crate) mod interpreter_end;
pub(crate) mod sub_interpreter;
pub(crate) mod thread_state;
