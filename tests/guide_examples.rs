//! The guide reproduces `examples/minimal-ext/src/lib.rs` whole (§9), for readers of the
//! crates.io package, which cannot carry the example's directory. The copy must be the file:
//! compiled by the doctests, and equal to it here (in the repository; the package has only
//! the copy, and the test says so).

use std::path::Path;

#[test]
fn the_guide_carries_the_minimal_extension_as_it_is() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = root.join("examples/minimal-ext/src/lib.rs");
    let Ok(example) = std::fs::read_to_string(&example) else {
        println!("no examples/minimal-ext here (the crates.io package): nothing to compare");
        return;
    };
    let guide = std::fs::read_to_string(root.join("docs/guide.md")).expect("docs/guide.md");
    let section = guide
        .split("## 9. An extension module, whole")
        .nth(1)
        .expect("the guide's §9");
    let copy = section
        .split("```rust,no_run\n")
        .nth(1)
        .and_then(|block| block.split("\n```\n").next())
        .expect("a rust,no_run block in §9");
    assert_eq!(
        copy,
        example.trim_end(),
        "docs/guide.md §9 differs from examples/minimal-ext/src/lib.rs: copy the file in"
    );
}
