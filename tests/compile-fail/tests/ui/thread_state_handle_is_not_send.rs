// A thread state belongs to the thread that created it.
fn main() {
    let interpreter = gilguard::SubInterpreter::new().unwrap();
    let handle = interpreter.thread_state().unwrap();
    std::thread::scope(|scope| {
        scope.spawn(move || drop(handle));
    });
}
