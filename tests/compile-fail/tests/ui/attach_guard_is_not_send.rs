// An attached thread state must be detached on the thread that attached it.
fn main() {
    let interpreter = gilguard::SubInterpreter::new().unwrap();
    let handle = interpreter.thread_state().unwrap();
    let attached = handle.attach().unwrap();
    std::thread::scope(|scope| {
        scope.spawn(move || drop(attached));
    });
}
