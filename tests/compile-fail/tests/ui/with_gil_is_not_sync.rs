// A reference to a `WithGil` would tell another thread that it may use Python.
fn main() {
    let gil = gilguard::WithGil::acquire();
    std::thread::scope(|scope| {
        scope.spawn(|| std::hint::black_box(&gil));
    });
}
