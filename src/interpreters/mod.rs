//! Interpreters and their thread states: [`SubInterpreter`](crate::SubInterpreter) and its
//! [`InterpreterConfig`](crate::InterpreterConfig), [`Interpreter`](crate::Interpreter),
//! [`ThreadStateHandle`](crate::ThreadStateHandle) and [`AttachGuard`](crate::AttachGuard),
//! and the records that let the shutdown end what is still alive. The top of the core
//! layers: uses the guards, runtime, context and raw layers, and hands the shutdown what
//! ends the sub-interpreters still alive (`interpreter_end::end_all_at_shutdown`).

pub(crate) mod attach_guard;
pub(crate) mod deferred;
pub(crate) mod handle_attach;
pub(crate) mod interpreter;
pub(crate) mod interpreter_config;
pub(crate) mod interpreter_end;
pub(crate) mod sub_interpreter;
pub(crate) mod thread_state;
