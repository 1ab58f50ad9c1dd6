// A `WithGil` must be dropped on the thread that acquired it.
fn main() {
    let gil = gilguard::WithGil::acquire();
    std::thread::spawn(move || drop(gil));
}
