//! The `stats` feature: attaches are counted by kind and interpreter exactly (also under
//! threads racing), each detach ends the hold its attach began, call sites are the callers of
//! the public entry points, an own-GIL sub-interpreter's attaches are its own and not the main
//! interpreter's, and the long-hold callback names the site. Each test runs in a child
//! process, so that no other test's attaches are counted. No timing is asserted here (the
//! ground truth is `tests/stats_ground_truth.rs`).
#![cfg(feature = "stats")]

mod common;

use std::panic::Location;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gilguard::stats::{self, AttachKind, Counts, Snapshot};
use gilguard::{InterpreterConfig, SubInterpreter, WithGil, with_gil, without_gil};

/// Own GIL where CPython has it.
fn parallel_config() -> InterpreterConfig {
    if cfg!(Py_3_12) {
        InterpreterConfig::isolated()
    } else {
        InterpreterConfig::legacy()
    }
}

fn main_counts(snapshot: &Snapshot) -> Counts {
    interpreter_counts(snapshot, 0)
}

fn interpreter_counts(snapshot: &Snapshot, id: i64) -> Counts {
    snapshot
        .interpreters
        .iter()
        .find(|interpreter| interpreter.id == id && interpreter.runtime == 0)
        .map_or_else(Counts::default, |interpreter| interpreter.counts)
}

fn site_of<'a>(snapshot: &'a Snapshot, site: &Location<'_>) -> &'a stats::SiteStats {
    snapshot
        .sites
        .iter()
        .find(|stats| stats.site.file() == site.file() && stats.site.line() == site.line())
        .unwrap_or_else(|| panic!("no figures for {site}:\n{snapshot}"))
}

/// A `Location` of the line after the one that calls this (where the entry point is).
#[track_caller]
fn next_line() -> (&'static str, u32) {
    let here = Location::caller();
    (here.file(), here.line() + 1)
}

fn site_at<'a>(snapshot: &'a Snapshot, (file, line): (&str, u32)) -> &'a stats::SiteStats {
    snapshot
        .sites
        .iter()
        .find(|stats| stats.site.file() == file && stats.site.line() == line)
        .unwrap_or_else(|| panic!("no figures for {file}:{line}:\n{snapshot}"))
}

#[test]
fn kinds_holds_and_sites_add_up() {
    common::run_child("child_kinds_holds_and_sites_add_up");
}

#[test]
#[ignore = "runs in a child process, started by kinds_holds_and_sites_add_up"]
fn child_kinds_holds_and_sites_add_up() {
    common::python();
    stats::reset();
    let outer = next_line();
    with_gil(|| {
        let _nested = WithGil::acquire();
        with_gil(|| ());
        without_gil(|| ());
    });
    std::thread::spawn(|| {
        for _ in 0..3 {
            with_gil(|| ());
        }
    })
    .join()
    .unwrap();
    let snapshot = stats::snapshot();
    let main = main_counts(&snapshot);
    assert_eq!(main.attaches(AttachKind::Detached), 1, "{snapshot}");
    assert_eq!(main.attaches(AttachKind::Nested), 2, "{snapshot}");
    assert_eq!(main.attaches(AttachKind::Restore), 1, "{snapshot}");
    assert_eq!(main.attaches(AttachKind::Native), 3, "{snapshot}");
    assert_eq!(main.attaches(AttachKind::Handle), 0, "{snapshot}");
    // The release ends one hold, the end of `with_gil` the one its restore began, and each
    // native attach ends its own.
    assert_eq!(main.detaches, 5, "{snapshot}");
    assert_eq!(main.waiting_now, 0);
    assert_eq!(snapshot.total, main);
    // The restore's wait and the hold it began are the outer site's (the hold the release
    // interrupted).
    let site = site_at(&snapshot, outer);
    assert_eq!((site.attaches, site.holds), (2, 2), "{snapshot}");
    assert!(site.hold >= site.longest_hold);
    let sum: u64 = snapshot.sites.iter().map(|site| site.attaches).sum();
    assert_eq!(sum, main.taking_the_gil(), "{snapshot}");
    let holds: Duration = snapshot.sites.iter().map(|site| site.hold).sum();
    assert_eq!(holds, main.hold);
    // The table names the site.
    let table = snapshot.to_string();
    assert!(
        table.contains(&format!("{}:{}", outer.0, outer.1)),
        "{table}"
    );
    assert!(table.contains("total"), "{table}");

    stats::reset();
    let snapshot = stats::snapshot();
    assert_eq!(snapshot.total.taking_the_gil(), 0, "{snapshot}");
    assert!(snapshot.sites.is_empty(), "{snapshot}");
}

#[test]
fn sub_interpreter_attaches_are_its_own() {
    common::run_child("child_sub_interpreter_attaches_are_its_own");
}

#[test]
#[ignore = "runs in a child process, started by sub_interpreter_attaches_are_its_own"]
fn child_sub_interpreter_attaches_are_its_own() {
    common::python();
    let interpreter = SubInterpreter::with_config(parallel_config()).unwrap();
    let id = interpreter.id();
    stats::reset();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let handle = interpreter.thread_state().unwrap();
            for _ in 0..4 {
                let _attached = handle.attach().unwrap();
                let _nested = handle.attach().unwrap();
            }
            // From the main interpreter into the sub-interpreter and back: the main
            // interpreter's hold is interrupted, and restored.
            with_gil(|| handle.run(|| ()).unwrap());
        });
    });
    let snapshot = stats::snapshot();
    let sub = interpreter_counts(&snapshot, id);
    let main = main_counts(&snapshot);
    assert_eq!(sub.attaches(AttachKind::Handle), 5, "{snapshot}");
    assert_eq!(sub.attaches(AttachKind::Nested), 4, "{snapshot}");
    assert_eq!(sub.detaches, 5, "{snapshot}");
    assert_eq!(sub.attaches(AttachKind::Native), 0, "{snapshot}");
    assert_eq!(main.attaches(AttachKind::Handle), 0, "{snapshot}");
    assert_eq!(main.attaches(AttachKind::Native), 1, "{snapshot}");
    assert_eq!(main.attaches(AttachKind::Restore), 1, "{snapshot}");
    assert_eq!(main.detaches, 2, "{snapshot}");
    assert_eq!(snapshot.total.taking_the_gil(), 7, "{snapshot}");
    drop(interpreter);
}

#[test]
fn threads_racing_count_exactly() {
    common::run_child("child_threads_racing_count_exactly");
}

#[test]
#[ignore = "runs in a child process, started by threads_racing_count_exactly"]
fn child_threads_racing_count_exactly() {
    const THREADS: u64 = 4;
    const ROUNDS: u64 = 5_000;
    common::python();
    let interpreter = SubInterpreter::with_config(parallel_config()).unwrap();
    stats::reset();
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                let handle = interpreter.thread_state().unwrap();
                for round in 0..ROUNDS {
                    with_gil(|| {
                        with_gil(|| ());
                        without_gil(|| ());
                    });
                    if round % 2 == 0 {
                        handle.run(|| ()).unwrap();
                    }
                }
            });
        }
    });
    let snapshot = stats::snapshot();
    let main = main_counts(&snapshot);
    let sub = interpreter_counts(&snapshot, interpreter.id());
    assert_eq!(
        main.attaches(AttachKind::Native),
        THREADS * ROUNDS,
        "{snapshot}"
    );
    assert_eq!(main.attaches(AttachKind::Nested), THREADS * ROUNDS);
    assert_eq!(main.attaches(AttachKind::Restore), THREADS * ROUNDS);
    assert_eq!(main.detaches, 2 * THREADS * ROUNDS);
    assert_eq!(sub.attaches(AttachKind::Handle), THREADS * ROUNDS / 2);
    assert_eq!(sub.detaches, THREADS * ROUNDS / 2);
    assert_eq!(snapshot.total.waiting_now, 0);
    let site_attaches: u64 = snapshot.sites.iter().map(|site| site.attaches).sum();
    let site_holds: u64 = snapshot.sites.iter().map(|site| site.holds).sum();
    assert_eq!(site_attaches, snapshot.total.taking_the_gil(), "{snapshot}");
    assert_eq!(site_holds, snapshot.total.detaches, "{snapshot}");
    let site_hold: Duration = snapshot.sites.iter().map(|site| site.hold).sum();
    assert_eq!(site_hold, snapshot.total.hold);
    drop(interpreter);
}

#[test]
fn a_long_hold_names_its_site() {
    common::run_child("child_a_long_hold_names_its_site");
}

#[test]
#[ignore = "runs in a child process, started by a_long_hold_names_its_site"]
fn child_a_long_hold_names_its_site() {
    common::python();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    // A threshold of zero reports every hold: no timing is relied on.
    stats::on_long_hold(Duration::ZERO, move |hold| {
        record
            .lock()
            .unwrap()
            .push((hold.site.line(), hold.interpreter));
    });
    let long = next_line();
    with_gil(|| with_gil(|| ())); // one hold (the nested attach has none)
    stats::clear_long_hold();
    with_gil(|| ()); // no callback any more
    let seen = seen.lock().unwrap();
    assert_eq!(*seen, [(long.1, 0)]);
    let _ = site_of; // used by other tests' diagnostics
}

#[test]
fn a_long_hold_callback_may_use_the_guards() {
    common::run_child("child_a_long_hold_callback_may_use_the_guards");
}

/// The callback is reported after the guard operation that ended the hold, not inside it: a
/// release ends a hold after its frame is written and before it is counted, so a callback
/// attaching there would have overwritten the release frame. A threshold of zero reports
/// every hold, and holds that end inside the callback are not reported to it (or this would
/// never end).
#[test]
#[ignore = "runs in a child process, started by a_long_hold_callback_may_use_the_guards"]
fn child_a_long_hold_callback_may_use_the_guards() {
    common::python();
    let reported = Arc::new(Mutex::new(0));
    let count = Arc::clone(&reported);
    stats::on_long_hold(Duration::ZERO, move |_| {
        *count.lock().unwrap() += 1;
        with_gil(|| without_gil(|| ()));
        drop(WithGil::acquire());
    });
    with_gil(|| {
        without_gil(|| assert!(!gilguard::is_attached())); // ends the first hold
        assert!(gilguard::is_attached());
        common::run("after_release = 1");
    }); // the restore's hold
    drop(WithGil::acquire()); // a third
    let mut guard = gilguard::GilGuard::new();
    guard.acquire(); // a fourth, ended by the release
    // SAFETY: nothing relies on the attachment until the restore.
    unsafe { guard.release() }.unwrap();
    assert!(!gilguard::is_attached());
    guard.restore().unwrap();
    assert!(gilguard::is_attached());
    drop(guard); // the fifth
    assert!(!gilguard::is_attached());
    stats::clear_long_hold();
    with_gil(|| common::run("assert after_release == 1"));
    assert_eq!(*reported.lock().unwrap(), 5);
}

#[test]
fn a_panicking_long_hold_callback_does_not_abort() {
    common::run_child("child_a_panicking_long_hold_callback_does_not_abort");
}

/// A guard dropped by unwinding reports its hold while a panic is under way: the callback's
/// own panic must not become a second one (an abort).
#[test]
#[ignore = "runs in a child process, started by a_panicking_long_hold_callback_does_not_abort"]
fn child_a_panicking_long_hold_callback_does_not_abort() {
    common::python();
    stats::on_long_hold(Duration::ZERO, |_| panic!("from the callback"));
    let payload = std::panic::catch_unwind(|| {
        let _gil = WithGil::acquire();
        panic!("from the body");
    })
    .unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"from the body"));
    assert!(!gilguard::is_attached());
    // With no panic under way, the callback's goes on, after the guard was dropped.
    let payload = std::panic::catch_unwind(|| drop(WithGil::acquire())).unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"from the callback"));
    assert!(!gilguard::is_attached());
    stats::clear_long_hold();
    with_gil(|| ());
}

#[test]
fn a_panic_in_a_release_leaves_nothing_pending() {
    common::run_child("child_a_panic_in_a_release_leaves_nothing_pending");
}

#[test]
#[ignore = "runs in a child process, started by a_panic_in_a_release_leaves_nothing_pending"]
fn child_a_panic_in_a_release_leaves_nothing_pending() {
    common::python();
    with_gil(|| {
        let panicked = std::panic::catch_unwind(|| without_gil(|| panic!("inside")));
        assert!(panicked.is_err());
    });
    stats::reset();
    let site = next_line();
    with_gil(|| without_gil(|| ()));
    let snapshot = stats::snapshot();
    assert_eq!(snapshot.total.waiting_now, 0, "{snapshot}");
    // The restore is this site's, not the one whose release panicked.
    let figures = site_at(&snapshot, site);
    assert_eq!((figures.attaches, figures.holds), (2, 2), "{snapshot}");
    assert_eq!(snapshot.sites.len(), 1, "{snapshot}");
}

#[test]
fn a_thread_blocked_in_an_attach_is_waiting_now() {
    common::run_child("child_a_thread_blocked_in_an_attach_is_waiting_now");
}

#[test]
#[ignore = "runs in a child process, started by a_thread_blocked_in_an_attach_is_waiting_now"]
fn child_a_thread_blocked_in_an_attach_is_waiting_now() {
    use std::sync::mpsc;
    common::python();
    let (held, is_held) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            with_gil(|| {
                held.send(()).unwrap();
                // Holds the GIL until told (a channel wait needs no Python).
                released.recv().unwrap();
            });
        });
        is_held.recv().unwrap();
        let waiter = scope.spawn(|| with_gil(|| ()));
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut seen = 0;
        while seen == 0 && std::time::Instant::now() < deadline {
            seen = stats::snapshot().total.waiting_now;
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(seen, 1, "the waiter never showed as waiting");
        assert_eq!(main_counts(&stats::snapshot()).waiting_now, 1);
        release.send(()).unwrap();
        waiter.join().unwrap();
    });
    assert_eq!(stats::snapshot().total.waiting_now, 0);
}

#[test]
fn a_reset_reaches_threads_alive_and_exited() {
    common::run_child("child_a_reset_reaches_threads_alive_and_exited");
}

#[test]
#[ignore = "runs in a child process, started by a_reset_reaches_threads_alive_and_exited"]
fn child_a_reset_reaches_threads_alive_and_exited() {
    use std::sync::mpsc;
    common::python();
    // A thread that exits before the reset, and one that stays alive across it: each counts
    // in a table of its own, which the reset must reach without writing to it.
    std::thread::spawn(|| with_gil(|| ())).join().unwrap();
    let (go, wait) = mpsc::channel::<()>();
    let (done, is_done) = mpsc::channel();
    let alive = std::thread::spawn(move || {
        for _ in 0..2 {
            let site = next_line();
            with_gil(|| ());
            done.send(site).unwrap();
            wait.recv().unwrap();
        }
    });
    is_done.recv().unwrap();
    assert!(stats::snapshot().total.taking_the_gil() >= 2);
    stats::reset();
    let snapshot = stats::snapshot();
    assert_eq!(snapshot.total.taking_the_gil(), 0, "{snapshot}");
    assert_eq!(snapshot.total.detaches, 0, "{snapshot}");
    assert!(snapshot.sites.is_empty(), "{snapshot}");
    // The living thread's next attach counts from zero: one attach, not its earlier ones too.
    go.send(()).unwrap();
    let site = is_done.recv().unwrap();
    go.send(()).unwrap();
    alive.join().unwrap();
    let snapshot = stats::snapshot();
    let figures = site_at(&snapshot, site);
    assert_eq!((figures.attaches, figures.holds), (1, 1), "{snapshot}");
    assert_eq!(snapshot.total.taking_the_gil(), 1, "{snapshot}");
}

/// A runtime the host finalizes and starts again is another runtime: its main interpreter
/// (id 0 again) is counted apart from the first one's, nested attaches too (a thread's block
/// counts them for one runtime at a time).
#[test]
fn a_runtime_started_again_is_counted_apart() {
    common::run_child("child_a_runtime_started_again_is_counted_apart");
}

#[test]
#[ignore = "runs in a child process, started by a_runtime_started_again_is_counted_apart"]
fn child_a_runtime_started_again_is_counted_apart() {
    // SAFETY: a host that starts Python on this thread and stays attached.
    unsafe { pyo3_ffi::Py_InitializeEx(0) };
    for _ in 0..3 {
        with_gil(|| without_gil(|| ()));
    }
    // SAFETY: the host finalizes and starts again, attached throughout; nothing of this
    // crate is alive on this thread.
    unsafe {
        assert_eq!(pyo3_ffi::Py_FinalizeEx(), 0);
        pyo3_ffi::Py_InitializeEx(0);
    }
    for _ in 0..2 {
        with_gil(|| without_gil(|| ()));
    }
    let snapshot = stats::snapshot();
    let mains: Vec<_> = snapshot
        .interpreters
        .iter()
        .filter(|interpreter| interpreter.id == 0)
        .collect();
    assert_eq!(mains.len(), 2, "{snapshot}");
    let (old, new) = if mains[0].runtime < mains[1].runtime {
        (mains[0], mains[1])
    } else {
        (mains[1], mains[0])
    };
    for (main, n) in [(old, 3), (new, 2)] {
        let counts = main.counts;
        assert_eq!(counts.attaches(AttachKind::Nested), n, "{snapshot}");
        assert_eq!(counts.attaches(AttachKind::Restore), n, "{snapshot}");
        assert_eq!(counts.detaches, n, "{snapshot}");
    }
}

/// Beside a foreign owner: a thread a C library attached with `PyGILState_Ensure` releases
/// through the crate. The release ends no hold of the crate's, but counts as a detach at its
/// site, and the restore's wait counts there; its hold does not (it ends in the library's
/// `PyGILState_Release`, which the crate does not see).
#[test]
fn a_release_on_a_thread_a_c_library_attached() {
    common::run_child("child_a_release_on_a_thread_a_c_library_attached");
}

#[test]
#[ignore = "runs in a child process, started by a_release_on_a_thread_a_c_library_attached"]
fn child_a_release_on_a_thread_a_c_library_attached() {
    common::python();
    stats::reset();
    let site = std::thread::spawn(|| {
        // SAFETY: initialized; balanced below, on this thread.
        let state = unsafe { pyo3_ffi::PyGILState_Ensure() };
        with_gil(|| ());
        let site = next_line();
        without_gil(|| ());
        // SAFETY: pairs with the ensure above; no guard is left.
        unsafe { pyo3_ffi::PyGILState_Release(state) };
        site
    })
    .join()
    .unwrap();
    let snapshot = stats::snapshot();
    let main = main_counts(&snapshot);
    assert_eq!(main.attaches(AttachKind::Nested), 1, "{snapshot}");
    assert_eq!(main.attaches(AttachKind::Restore), 1, "{snapshot}");
    assert_eq!(main.detaches, 1, "{snapshot}");
    assert_eq!(main.taking_the_gil(), 1, "{snapshot}");
    let figures = site_at(&snapshot, site);
    assert_eq!((figures.attaches, figures.holds), (1, 0), "{snapshot}");
    assert_eq!(snapshot.total.waiting_now, 0, "{snapshot}");
}
