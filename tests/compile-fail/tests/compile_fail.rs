//! Thread affinity is checked at compile time: moving or sharing a guard with another
//! thread does not compile (docs/guide.md, §2.1 "Thread affinity"). Each case in
//! `tests/ui/` must fail with the error recorded next to it.

use std::io::Write;

#[test]
fn guards_cannot_cross_threads() {
    // trybuild first builds gilguard in a project of its own, silently: say so (to stderr
    // itself, as the harness captures `eprintln!`).
    let _ = writeln!(
        std::io::stderr(),
        "compile-fail: trybuild builds gilguard, then checks tests/ui/*.rs, about 10 s"
    );
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
