// Sharing a handle would let another thread attach this thread's thread state.
fn main() {
    let interpreter = gilguard::SubInterpreter::new().unwrap();
    let handle = interpreter.thread_state().unwrap();
    std::thread::scope(|scope| {
        scope.spawn(|| handle.run(|| ()));
    });
}
