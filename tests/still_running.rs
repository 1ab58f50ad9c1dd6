//! The *Still running!* scenario: the main Python thread keeps running while a Rust
//! function called from another Python thread computes without the GIL.

#[path = "../examples/still_running.rs"]
mod example;

#[test]
fn main_thread_runs_while_rust_computes_without_the_gil() {
    let events = example::run(std::time::Duration::from_millis(300));
    let position = |needle: &str| {
        events
            .iter()
            .position(|line| line.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in {events:#?}"))
    };
    let still_running_between = |from: usize, to: usize| {
        events[from..to]
            .iter()
            .any(|line| line.contains("Still running!"))
    };
    let first_phase = position("rust:   computing without the GIL");
    let callback_call = position("calling back into Python");
    let callback = position("python: callback runs");
    let second_phase = position("computing without the GIL again");
    let done = position("rust:   done");
    let finished = position("main:   worker finished");
    assert!(first_phase < callback_call && callback_call < callback && callback < second_phase);
    assert!(second_phase < done && done < finished);
    assert!(
        still_running_between(first_phase, callback_call),
        "the main thread did not run during the first computation: {events:#?}"
    );
    assert!(
        still_running_between(second_phase, done),
        "the main thread did not run during the second computation: {events:#?}"
    );
}
