// A reference to an `AttachGuard` would tell another thread that it may use Python.
fn main() {
    let interpreter = gilguard::SubInterpreter::new().unwrap();
    let handle = interpreter.thread_state().unwrap();
    let attached = handle.attach().unwrap();
    std::thread::scope(|scope| {
        scope.spawn(|| std::hint::black_box(&attached));
    });
}
