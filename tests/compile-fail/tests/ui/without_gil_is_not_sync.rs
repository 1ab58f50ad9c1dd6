// A reference to a `WithoutGil` belongs to the thread that detached.
fn main() {
    let released = unsafe { gilguard::WithoutGil::new() }.unwrap();
    std::thread::scope(|scope| {
        scope.spawn(|| std::hint::black_box(&released));
    });
}
