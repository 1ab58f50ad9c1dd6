//! Helpers shared by the integration tests. Each test file includes this module and uses
//! part of it.
#![allow(dead_code, unused_imports)]

use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[path = "../../examples/support/mod.rs"]
mod support;
pub use support::{eval_str, none, run};

/// Makes `function` callable from Python as `__main__.<name>`, with no arguments.
pub fn define(name: &'static std::ffi::CStr, function: pyo3_ffi::PyCFunction) {
    support::define(name, function, pyo3_ffi::METH_NOARGS);
}

/// Starts Python once for the whole test process.
pub fn python() {
    gilguard::initialize().expect("Python initializes");
}

/// The thread state CPython considers current (see `gilguard`'s notes on 3.9–3.11).
pub fn current_thread_state() -> *mut pyo3_ffi::PyThreadState {
    // SAFETY: only reads a pointer.
    unsafe { pyo3_ffi::compat::PyThreadState_GetUnchecked() }
}

/// Runs the `#[ignore]`d test `name` of this test binary alone, in a child process, and
/// returns its output. Used for what cannot be undone in the test process: finalization,
/// a runtime that was never initialized, fork.
///
/// # Panics
/// If the child fails, prints `Fatal Python error`, or runs longer than 60 s.
pub fn run_child(name: &str) -> Output {
    run_child_within(name, Duration::from_secs(60))
}

/// [`run_child`], failing if the child takes longer than `limit` (a hang).
pub fn run_child_within(name: &str, limit: Duration) -> Output {
    let output = child_output_within(name, limit);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child test {name} did not pass (status {:?})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    assert!(
        !stderr.contains("Fatal Python error"),
        "child test {name} hit a fatal error\n{stderr}"
    );
    output
}

/// Runs the `#[ignore]`d test `name` of this test binary alone, in a child process, and
/// returns its output whatever its outcome (for a child that is expected to fail or
/// abort), as [`output_within`] does.
///
/// # Panics
/// If the child runs longer than `limit`.
pub fn child_output_within(name: &str, limit: Duration) -> Output {
    let mut command = Command::new(std::env::current_exe().expect("test binary path"));
    command.args([
        "--ignored",
        "--exact",
        "--nocapture",
        "--test-threads=1",
        name,
    ]);
    output_within(&mut command, limit)
}

/// Runs `command` in a process group of its own and returns its output.
///
/// A process the command leaves behind (a forked grandchild that hung) would keep the
/// output pipes open, and reading them to their end would then block the test forever,
/// past any limit on the command itself. So when the command exits, or is killed for
/// running longer than `limit`, its whole process group is killed, and the output is read
/// for at most a few more seconds.
///
/// # Panics
/// If the command cannot be started, or runs longer than `limit` (a hang).
pub fn output_within(command: &mut Command, limit: Duration) -> Output {
    use std::os::unix::process::CommandExt;

    let mut child = command
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("child process starts");
    let group = i32::try_from(child.id()).expect("a pid fits in pid_t");
    // Read while the child runs: a full pipe would block it, and look like a hang.
    let stdout = read_all(child.stdout.take().expect("piped"));
    let stderr = read_all(child.stderr.take().expect("piped"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("the child can be waited for") {
            break Some(status);
        }
        if started.elapsed() > limit {
            kill_group(group);
            child.wait().expect("the killed child can be waited for");
            break None;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    // Whatever the child left running in its group goes too, so that the pipes close.
    kill_group(group);
    let grace = Duration::from_secs(5);
    let stdout = stdout.recv_timeout(grace).unwrap_or_default();
    let stderr = stderr.recv_timeout(grace).unwrap_or_default();
    let Some(status) = status else {
        panic!(
            "child process {command:?} hung (killed after {limit:?})\n--- stdout\n{}\n--- stderr\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        );
    };
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Sends `SIGKILL` to every process of the process group `group`; a group that is already
/// empty is fine.
fn kill_group(group: i32) {
    // SAFETY: a plain system call; `-group` names the process group this helper created
    // for its child, and nothing else.
    unsafe { libc::kill(-group, libc::SIGKILL) };
}

/// Every order of `0..n`.
pub fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut all = Vec::new();
    for shorter in permutations(n - 1) {
        for position in 0..=shorter.len() {
            let mut order = shorter.clone();
            order.insert(position, n - 1);
            all.push(order);
        }
    }
    all
}

/// Reads `pipe` to its end on a thread of its own; the bytes arrive on the receiver.
fn read_all(mut pipe: impl std::io::Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        // A read error ends the output early; what was read is still reported.
        let _ = pipe.read_to_end(&mut bytes);
        let _ = sender.send(bytes);
    });
    receiver
}

/// What this thread is attached to, as CPython sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attachment {
    Detached,
    Main,
    /// A sub-interpreter, by id.
    Sub(i64),
}

/// This thread's attachment. Relies on `gilguard::is_attached`, which is exact here.
pub fn attachment() -> Attachment {
    if !gilguard::is_attached() {
        return Attachment::Detached;
    }
    // SAFETY: attached, so the current thread state and its interpreter are live.
    unsafe {
        let interp = pyo3_ffi::PyThreadState_GetInterpreter(current_thread_state());
        if interp == pyo3_ffi::PyInterpreterState_Main() {
            Attachment::Main
        } else {
            Attachment::Sub(pyo3_ffi::PyInterpreterState_GetID(interp))
        }
    }
}

/// The number of thread states of the interpreter the caller is attached to.
pub fn thread_states_here() -> usize {
    // SAFETY: attached, so the interpreter is live and its GIL held.
    unsafe {
        let interp = pyo3_ffi::PyThreadState_GetInterpreter(current_thread_state());
        let mut count = 0;
        let mut tstate = pyo3_ffi::PyInterpreterState_ThreadHead(interp);
        while !tstate.is_null() {
            count += 1;
            tstate = pyo3_ffi::PyThreadState_Next(tstate);
        }
        count
    }
}

/// Carries a value of this thread into, or out of, a closure that must be `Send` but runs on
/// this thread (`ThreadStateHandle::run`, `without_gil`). Those bounds keep values of the
/// interpreter the thread leaves out of the closure; this crate's guards and handles check
/// their interpreter themselves, and safe code reaches the same states by keeping them in a
/// thread-local. Tests use this to put them where the bounds would not.
pub struct SameThread<T>(pub T);

// SAFETY: only moved into a closure that runs on the thread that made the value, before the
// call that takes the closure returns, and back out of it.
unsafe impl<T> Send for SameThread<T> {}

impl<T> SameThread<T> {
    /// The value (a method, so that a closure captures the whole wrapper, not its field).
    pub fn get(self) -> T {
        self.0
    }
}
