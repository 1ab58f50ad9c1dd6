//! Guards allocate nothing on the common path: the frame stack is inline up to 16 frames.
//! Counted with a global allocator that tallies allocations made by the test's thread.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use gilguard::{GilGuard, WithGil, WithoutGil, with_gil, without_gil};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; the thread-local counter
// is const-initialized and has no destructor, so counting never allocates or fails.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations_during(mut f: impl FnMut()) -> usize {
    f(); // warm-up: first use of thread-locals, the thread state this thread keeps
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

fn guard_sequence() {
    let mut guard = GilGuard::new();
    guard.acquire();
    guard.acquire();
    // SAFETY: nothing touches Python while released.
    unsafe { guard.release() }.unwrap();
    guard.acquire();
    guard.restore().unwrap();
    guard.restore().unwrap();
    {
        let _nested = WithGil::acquire();
        // SAFETY: as above.
        let _released = unsafe { WithoutGil::new() }.unwrap();
    }
    with_gil(|| without_gil(|| ()));
    drop(guard);
}

#[test]
fn guards_do_not_allocate() {
    common::python();
    std::thread::spawn(|| {
        assert_eq!(allocations_during(guard_sequence), 0);
        // The 16th frame is still inline.
        let outer: Vec<WithGil> = (0..15).map(|_| WithGil::acquire()).collect();
        assert_eq!(allocations_during(|| GilGuard::new().acquire()), 0);
        drop(outer);
    })
    .join()
    .unwrap();
}
