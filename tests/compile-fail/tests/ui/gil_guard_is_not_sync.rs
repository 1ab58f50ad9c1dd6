// Sharing a `GilGuard` would let another thread call `restore` on it.
fn main() {
    let guard = gilguard::GilGuard::new();
    std::thread::scope(|scope| {
        scope.spawn(|| guard.owns_gil());
    });
}
