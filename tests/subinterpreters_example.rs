//! The multi-thread, multi-interpreter scenario of `examples/subinterpreters.rs`.

#[path = "../examples/subinterpreters.rs"]
mod example;

#[test]
fn threads_share_interpreters_with_isolated_globals_and_clean_teardown() {
    let runs = 200;
    let report = example::run(runs);
    assert_eq!(report.own_gil, cfg!(Py_3_12));
    // Each thread reused a single thread state for all its runs.
    for thread in &report.threads {
        assert_eq!((thread.runs, thread.thread_states), (runs, 1), "{thread:?}");
    }
    // Interpreter 1 counted the runs of threads 1 and 2, interpreter 2 those of thread 3.
    assert_eq!(report.counters, [(2 * runs).to_string(), runs.to_string()]);
    // Neither sees the other's globals.
    assert_eq!(
        report.sees_other_marker,
        ["False".to_string(), "False".to_string()]
    );
    assert_eq!(report.ended, [true, true]);
    assert!(!gilguard::is_attached());
}
