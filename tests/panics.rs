//! A panic inside any guarded region unwinds through the guards and leaves the thread in
//! the state it had before the region.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};

use gilguard::{GilGuard, SubInterpreter, WithGil, WithoutGil, is_attached, with_gil, without_gil};

/// Runs `region` (which panics) from a detached and from an attached thread and checks that
/// the panic comes out and the thread is back where it started.
fn panics_and_restores(region: impl Fn() + Sync) {
    common::python();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for initially_attached in [false, true] {
                let outer = initially_attached.then(WithGil::acquire);
                let outcome = catch_unwind(AssertUnwindSafe(&region));
                let message = outcome.expect_err("the region panics");
                assert_eq!(message.downcast_ref::<&str>(), Some(&"boom"));
                assert_eq!(is_attached(), initially_attached);
                drop(outer);
                assert!(!is_attached());
            }
        });
    });
}

#[test]
fn panic_inside_with_gil() {
    panics_and_restores(|| {
        with_gil(|| {
            assert!(is_attached());
            panic!("boom");
        })
    });
}

#[test]
fn panic_inside_with_gil_guard() {
    panics_and_restores(|| {
        let _gil = WithGil::acquire();
        panic!("boom");
    });
}

#[test]
fn panic_inside_without_gil() {
    panics_and_restores(|| {
        let _gil = WithGil::acquire();
        without_gil(|| {
            assert!(!is_attached());
            panic!("boom");
        });
    });
}

#[test]
fn panic_inside_without_gil_guard() {
    panics_and_restores(|| {
        let _gil = WithGil::acquire();
        // SAFETY: nothing touches Python while released; the guard is dropped on unwind.
        let _released = unsafe { WithoutGil::new() }.unwrap();
        panic!("boom");
    });
}

#[test]
fn panic_inside_gil_guard_with_several_frames() {
    panics_and_restores(|| {
        let mut guard = GilGuard::new();
        guard.acquire();
        // SAFETY: nothing touches Python while released; the guard is dropped on unwind.
        unsafe { guard.release() }.unwrap();
        guard.acquire();
        panic!("boom");
    });
}

#[test]
fn panic_inside_nested_regions_of_every_kind() {
    panics_and_restores(|| {
        let mut guard = GilGuard::new();
        guard.acquire();
        with_gil(|| {
            without_gil(|| {
                with_gil(|| {
                    // SAFETY: as above.
                    let _released = unsafe { WithoutGil::new() }.unwrap();
                    panic!("boom");
                })
            })
        })
    });
}

/// A guard dropped out of order during unwinding: the inner guard is moved out of the
/// panicking scope and outlives the outer one.
#[test]
fn panic_with_guard_outliving_the_region() {
    common::python();
    std::thread::spawn(|| {
        let mut survivor = None;
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let _outer = WithGil::acquire();
            // SAFETY: as above.
            survivor = Some(unsafe { WithoutGil::new() }.unwrap());
            panic!("boom");
        }));
        assert!(outcome.is_err());
        // `_outer` is gone, but the newer `WithoutGil` still asks for "detached".
        assert!(!is_attached());
        drop(survivor);
        assert!(!is_attached());
    })
    .join()
    .unwrap();
}

#[test]
fn panic_inside_a_sub_interpreter_closure() {
    let interpreter = {
        common::python();
        SubInterpreter::new().unwrap()
    };
    panics_and_restores(|| {
        let handle = interpreter.thread_state().unwrap();
        let _ = handle.run(|| {
            assert!(is_attached());
            panic!("boom");
        });
    });
}

#[test]
fn panic_inside_a_sub_interpreter_attach_guard() {
    let interpreter = {
        common::python();
        SubInterpreter::new().unwrap()
    };
    panics_and_restores(|| {
        let handle = interpreter.thread_state().unwrap();
        // Attaching by guard needs a detached thread; from an attached one, by closure.
        if is_attached() {
            let same = common::SameThread(&handle);
            let _ = handle.run(move || {
                let _again = same.get().attach().unwrap();
                panic!("boom");
            });
        } else {
            let _attached = handle.attach().unwrap();
            panic!("boom");
        }
    });
}
