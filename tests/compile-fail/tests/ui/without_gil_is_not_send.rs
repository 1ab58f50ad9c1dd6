// A `WithoutGil` must re-attach on the thread that detached.
fn main() {
    let released = unsafe { gilguard::WithoutGil::new() }.unwrap();
    std::thread::spawn(move || drop(released));
}
