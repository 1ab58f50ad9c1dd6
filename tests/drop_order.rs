//! The frame stack keeps CPython's last-in, first-out order whatever order guards are
//! dropped in (docs/guide.md, §2.3 "Any drop order"): every drop permutation of 2, 3 and 4
//! mixed guards, from a detached thread, from a thread this crate attached, and from a
//! thread attached by foreign code. After every step the thread must be in the state the
//! newest live guard asked for; a `Fatal Python error` would abort the test process.

mod common;

use gilguard::{GilError, GilGuard, WithGil, WithoutGil, is_attached};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    WithGil,
    WithoutGil,
    GuardAcquire,
    GuardRelease,
}

const KINDS: [Kind; 4] = [
    Kind::WithGil,
    Kind::WithoutGil,
    Kind::GuardAcquire,
    Kind::GuardRelease,
];

impl Kind {
    fn attaches(self) -> bool {
        matches!(self, Kind::WithGil | Kind::GuardAcquire)
    }
}

/// A guard kept alive only to be dropped at a chosen moment.
#[derive(Debug)]
#[expect(dead_code, reason = "the guards are held for their `Drop`, never read")]
enum Held {
    WithGil(WithGil),
    WithoutGil(WithoutGil),
    Guard(GilGuard),
}

/// Creates a guard of `kind`; `None` when it is a release and the thread is detached, in
/// which case the refusal itself is checked.
fn create(kind: Kind, attached: bool) -> Option<Held> {
    let created = match kind {
        Kind::WithGil => Ok(Held::WithGil(WithGil::acquire())),
        // SAFETY: nothing in this test touches Python objects while detached.
        Kind::WithoutGil => unsafe { WithoutGil::new() }.map(Held::WithoutGil),
        Kind::GuardAcquire => {
            let mut guard = GilGuard::new();
            guard.acquire();
            Ok(Held::Guard(guard))
        }
        Kind::GuardRelease => {
            let mut guard = GilGuard::new();
            // SAFETY: as above.
            unsafe { guard.release() }.map(|()| Held::Guard(guard))
        }
    };
    match created {
        Ok(held) => Some(held),
        Err(error) => {
            assert!(!attached && !kind.attaches(), "{kind:?} refused: {error}");
            assert_eq!(error, GilError::NotAttached);
            None
        }
    }
}

/// The state the newest live guard asked for, or the state before the first guard.
fn expected(kinds: &[Kind], live: &[bool], initial: bool) -> bool {
    kinds
        .iter()
        .zip(live)
        .rev()
        .find(|(_, live)| **live)
        .map_or(initial, |(kind, _)| kind.attaches())
}

fn sequences(len: usize) -> Vec<Vec<Kind>> {
    (0..len).fold(vec![vec![]], |sequences, _| {
        sequences
            .into_iter()
            .flat_map(|prefix| {
                KINDS.iter().map(move |kind| {
                    let mut sequence = prefix.clone();
                    sequence.push(*kind);
                    sequence
                })
            })
            .collect()
    })
}

/// Every sequence of `len` guards, dropped in every order, starting from `initial`.
fn every_drop_order(len: usize, initial: bool) -> usize {
    let mut runs = 0;
    for kinds in sequences(len) {
        for order in common::permutations(len) {
            let mut held = Vec::new();
            let mut live = Vec::new();
            for (created, kind) in kinds.iter().enumerate() {
                let state = expected(&kinds[..created], &live, initial);
                let guard = create(*kind, state);
                live.push(guard.is_some());
                held.push(guard);
                assert_eq!(
                    is_attached(),
                    expected(&kinds[..=created], &live, initial),
                    "after creating {kinds:?}[..={created}]"
                );
            }
            for &index in &order {
                drop(held[index].take());
                live[index] = false;
                assert_eq!(
                    is_attached(),
                    expected(&kinds, &live, initial),
                    "{kinds:?} dropped in order {order:?}, after dropping #{index}"
                );
            }
            assert_eq!(is_attached(), initial);
            runs += 1;
        }
    }
    runs
}

fn from_every_initial_state(len: usize) {
    common::python();
    std::thread::spawn(move || {
        // A native thread: detached, no thread state yet.
        assert_eq!(
            every_drop_order(len, false),
            4usize.pow(len as u32) * factorial(len)
        );
        // Attached by this crate.
        gilguard::with_gil(|| every_drop_order(len, true));
        // Attached by code outside this crate, with no frame of ours below.
        // SAFETY: initialized; paired with the release below on this thread.
        let state = unsafe { pyo3_ffi::PyGILState_Ensure() };
        every_drop_order(len, true);
        // SAFETY: pairs with the ensure above; all guards in between are gone.
        unsafe { pyo3_ffi::PyGILState_Release(state) };
        assert!(!is_attached());
    })
    .join()
    .unwrap();
}

fn factorial(n: usize) -> usize {
    (1..=n).product()
}

#[test]
fn two_guards_every_drop_order() {
    from_every_initial_state(2);
}

#[test]
fn three_guards_every_drop_order() {
    from_every_initial_state(3);
}

#[test]
fn four_guards_every_drop_order() {
    from_every_initial_state(4);
}

/// One `GilGuard` holding several frames, interleaved with single guards. A "drop" of one
/// of the guard's frames is a `restore()`, which undoes the guard's newest frame; or, in
/// the second pass, dropping the whole guard at the first such event.
#[test]
fn one_gil_guard_interleaved_with_single_guards() {
    common::python();
    std::thread::spawn(|| {
        for len in 2..=4 {
            for kinds in sequences(len) {
                for order in common::permutations(len) {
                    interleaved(&kinds, &order, false);
                    interleaved(&kinds, &order, true);
                }
            }
        }
    })
    .join()
    .unwrap();
}

/// `GuardAcquire` / `GuardRelease` push onto one shared `GilGuard`; the others are single.
fn interleaved(kinds: &[Kind], order: &[usize], drop_whole_guard: bool) {
    let on_guard = |kind: Kind| matches!(kind, Kind::GuardAcquire | Kind::GuardRelease);
    let mut guard = Some(GilGuard::new());
    let mut singles: Vec<Option<Held>> = Vec::new();
    let mut live = Vec::new();
    for (created, &kind) in kinds.iter().enumerate() {
        let state = expected(&kinds[..created], &live, false);
        let pushed = if on_guard(kind) {
            let guard = guard.as_mut().unwrap();
            let result = if kind.attaches() {
                guard.try_acquire()
            } else {
                // SAFETY: nothing touches Python objects in this test.
                unsafe { guard.release() }
            };
            singles.push(None);
            result.is_ok()
        } else {
            let held = create(kind, state);
            let ok = held.is_some();
            singles.push(held);
            ok
        };
        assert!(pushed || (!state && !kind.attaches()));
        live.push(pushed);
    }
    let check = |live: &[bool], guard: &Option<GilGuard>, context: &str| {
        let attached = expected(kinds, live, false);
        assert_eq!(is_attached(), attached, "{context}");
        if let Some(guard) = guard {
            let mine: Vec<usize> = (0..kinds.len())
                .filter(|&index| on_guard(kinds[index]) && live[index])
                .collect();
            assert_eq!(guard.depth(), mine.len(), "{context}");
            let newest_attaches = mine.last().is_some_and(|&index| kinds[index].attaches());
            assert_eq!(guard.owns_gil(), newest_attaches && attached, "{context}");
        }
    };
    for &index in order {
        let context = format!("{kinds:?} order {order:?} whole={drop_whole_guard} at #{index}");
        if on_guard(kinds[index]) {
            if drop_whole_guard {
                drop(guard.take());
                for (slot, kind) in kinds.iter().enumerate() {
                    if on_guard(*kind) {
                        live[slot] = false;
                    }
                }
            } else if let Some(guard) = guard.as_mut() {
                let newest = (0..kinds.len())
                    .rev()
                    .find(|&slot| on_guard(kinds[slot]) && live[slot]);
                match newest {
                    Some(slot) => {
                        guard.restore().unwrap();
                        live[slot] = false;
                    }
                    None => assert_eq!(guard.restore(), Err(GilError::NothingToRestore)),
                }
            }
        } else {
            drop(singles[index].take());
            live[index] = false;
        }
        check(&live, &guard, &context);
    }
    drop(guard);
    assert!(!is_attached());
}

/// Guards deeper than the inline capacity spill to the heap and unwind the same way.
#[test]
fn deep_nesting_spills_and_unwinds() {
    common::python();
    std::thread::spawn(|| {
        let mut guards = Vec::new();
        for depth in 0..100 {
            if depth % 2 == 0 {
                guards.push(Held::WithGil(WithGil::acquire()));
                assert!(is_attached());
            } else {
                // SAFETY: nothing touches Python objects here.
                guards.push(Held::WithoutGil(unsafe { WithoutGil::new() }.unwrap()));
                assert!(!is_attached());
            }
        }
        // Drop the oldest half first: nothing may change until the newer ones are gone.
        let newer = guards.split_off(50);
        drop(guards);
        assert!(!is_attached());
        drop(newer);
        assert!(!is_attached());
    })
    .join()
    .unwrap();
}
