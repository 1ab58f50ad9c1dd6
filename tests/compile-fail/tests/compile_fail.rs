//! Thread affinity is checked at compile time: moving or sharing a guard with another
//! thread does not compile (docs/guide.md, §2.1 "Thread affinity"). Each case in
//! `tests/ui/` must fail with the error recorded next to it.

#[test]
fn guards_cannot_cross_threads() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
