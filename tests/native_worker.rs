//! The subscriber/processor scenario: every message reaches the Python callback exactly
//! once and in order, called from a native thread, while Python waits in `join` with the
//! GIL released.

#[path = "../examples/native_worker.rs"]
mod example;

#[test]
fn every_message_is_delivered_once_in_order() {
    let count = 2000;
    let (received, processed) = example::run(count);
    assert_eq!(processed, count);
    let expected: Vec<String> = (0..count)
        .map(|number| format!("message {number} (processed by a native thread)"))
        .collect();
    assert_eq!(received, expected);
}
