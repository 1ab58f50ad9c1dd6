// An interpreter cannot be ended while a thread state handle borrows it.
fn main() {
    let mut interpreter = gilguard::SubInterpreter::new().unwrap();
    let handle = interpreter.thread_state().unwrap();
    interpreter.end().unwrap();
    drop(handle);
}
