// A `GilGuard`'s frames belong to the thread that pushed them.
fn main() {
    let mut guard = gilguard::GilGuard::new();
    guard.acquire();
    std::thread::spawn(move || drop(guard));
}
