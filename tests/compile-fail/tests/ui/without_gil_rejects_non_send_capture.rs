// Nothing bound to the attached thread can be used inside `without_gil`.
fn main() {
    let gil = gilguard::WithGil::acquire();
    gilguard::without_gil(|| {
        let _still_here = &gil;
    });
}
