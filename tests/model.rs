//! Model-based test: random sequences of guard operations (acquire, release, restore,
//! drops in any order, attaching either of two sub-interpreters, nested closures, panics),
//! on one or two threads at once, run against the crate and against a small model of what
//! each thread should be attached to. After every step the thread's real attachment must be
//! the model's, and every refusal the one the model predicts. Failures shrink to a minimal
//! sequence, which proptest records in `tests/model.proptest-regressions` and replays first.

mod common;

use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Once, OnceLock};

use common::Attachment;
use gilguard::{
    AttachGuard, GilError, GilGuard, SubInterpreter, ThreadStateHandle, WithGil, WithoutGil,
    with_gil, without_gil,
};
use proptest::prelude::*;

const INTERPRETERS: usize = 2;
const GUARDS: usize = 2;
/// Random sequences run per `cargo test`.
const CASES: u32 = 2000;

#[derive(Clone, Debug)]
enum Op {
    WithGil,
    WithoutGil,
    Attach(usize),
    AttachSuspending(usize),
    GuardAcquire(usize),
    GuardRelease(usize),
    GuardRestore(usize),
    GuardDrop(usize),
    /// Drops the held single guard at this index (modulo the number held).
    Drop(usize),
    WithGilClosure(Body),
    WithoutGilClosure(Body),
    Run(usize, Body),
}

/// The operations run inside a closure form, and whether the closure panics at the end.
#[derive(Clone, Debug)]
struct Body {
    ops: Vec<Op>,
    panics: bool,
}

fn op() -> impl Strategy<Value = Op> {
    let leaf = prop_oneof![
        Just(Op::WithGil),
        Just(Op::WithoutGil),
        (0..INTERPRETERS).prop_map(Op::Attach),
        (0..INTERPRETERS).prop_map(Op::AttachSuspending),
        (0..GUARDS).prop_map(Op::GuardAcquire),
        (0..GUARDS).prop_map(Op::GuardRelease),
        (0..GUARDS).prop_map(Op::GuardRestore),
        (0..GUARDS).prop_map(Op::GuardDrop),
        (0..8usize).prop_map(Op::Drop),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        let body = (
            prop::collection::vec(inner, 0..6),
            prop::bool::weighted(0.2),
        )
            .prop_map(|(ops, panics)| Body { ops, panics });
        prop_oneof![
            body.clone().prop_map(Op::WithGilClosure),
            body.clone().prop_map(Op::WithoutGilClosure),
            (0..INTERPRETERS, body).prop_map(|(k, body)| Op::Run(k, body)),
        ]
    })
}

/// The interpreters every case shares; ended when the test process exits.
fn interpreters() -> &'static [SubInterpreter; INTERPRETERS] {
    static SHARED: OnceLock<[SubInterpreter; INTERPRETERS]> = OnceLock::new();
    SHARED.get_or_init(|| {
        common::python();
        [
            SubInterpreter::new().unwrap(),
            SubInterpreter::new().unwrap(),
        ]
    })
}

/// A guard the test holds.
#[expect(dead_code, reason = "held for their `Drop`, never read")]
enum Held<'h> {
    WithGil(WithGil),
    WithoutGil(WithoutGil),
    Attach(AttachGuard<'h>),
}

/// The model: what each live guard, guard frame or closure asked for, oldest first. The
/// thread must be in the state the newest live one asked for (detached if none).
#[derive(Default)]
struct Model {
    /// (owner, state asked for, live); owner `None` for single guards and closures,
    /// `Some(g)` for frames of `GilGuard` number `g`.
    entries: Vec<(Option<usize>, Attachment, bool)>,
}

impl Model {
    fn current(&self) -> Attachment {
        self.entries
            .iter()
            .rev()
            .find(|(_, _, live)| *live)
            .map_or(Attachment::Detached, |(_, state, _)| *state)
    }

    fn push(&mut self, owner: Option<usize>, state: Attachment) -> usize {
        self.entries.push((owner, state, true));
        self.entries.len() - 1
    }

    fn end(&mut self, entry: usize) {
        self.entries[entry].2 = false;
    }

    /// What acquiring the main interpreter by guard gives: refused in a sub-interpreter.
    fn acquire(&self) -> Result<Attachment, GilError> {
        match self.current() {
            Attachment::Sub(_) => Err(GilError::AttachedElsewhere),
            _ => Ok(Attachment::Main),
        }
    }

    fn release(&self) -> Result<Attachment, GilError> {
        match self.current() {
            Attachment::Detached => Err(GilError::NotAttached),
            _ => Ok(Attachment::Detached),
        }
    }

    fn attach(&self, sub: Attachment) -> Result<Attachment, GilError> {
        let current = self.current();
        if current == Attachment::Detached || current == sub {
            Ok(sub)
        } else {
            Err(GilError::AttachedElsewhere)
        }
    }
}

/// A panic payload that does not print a message.
struct Boom;

/// One thread's run of a sequence.
struct Runner<'h> {
    handles: &'h [ThreadStateHandle<'static>],
    model: Model,
}

impl<'h> Runner<'h> {
    fn sub(&self, k: usize) -> Attachment {
        Attachment::Sub(interpreters()[k].id())
    }

    fn check(&self, op: &Op) {
        assert_eq!(common::attachment(), self.model.current(), "after {op:?}");
    }

    /// Runs `ops` with guards local to this scope, dropped (oldest first) at its end.
    fn run_scope(&mut self, ops: &[Op]) {
        let mut held: Vec<(Option<Held<'h>>, usize)> = Vec::new();
        let mut guards: Vec<(GilGuard, Vec<usize>)> =
            (0..GUARDS).map(|_| (GilGuard::new(), Vec::new())).collect();
        for op in ops {
            self.step(op, &mut held, &mut guards);
            self.check(op);
        }
        for (guard, entries) in held.drain(..) {
            drop(guard);
            self.model.end(entries);
        }
        for (guard, entries) in guards {
            drop(guard);
            for entry in entries {
                self.model.end(entry);
            }
        }
        assert_eq!(
            common::attachment(),
            self.model.current(),
            "after the scope"
        );
    }

    fn step(
        &mut self,
        op: &Op,
        held: &mut Vec<(Option<Held<'h>>, usize)>,
        guards: &mut [(GilGuard, Vec<usize>)],
    ) {
        let mut keep = |model: &mut Model, guard: Held<'h>, state| {
            let entry = model.push(None, state);
            held.push((Some(guard), entry));
        };
        match op {
            Op::WithGil => match (WithGil::try_acquire(), self.model.acquire()) {
                (Ok(guard), Ok(state)) => keep(&mut self.model, Held::WithGil(guard), state),
                (got, expected) => assert_eq!(got.err(), expected.err(), "{op:?}"),
            },
            // SAFETY: no Python object is used while released.
            Op::WithoutGil => match (unsafe { WithoutGil::new() }, self.model.release()) {
                (Ok(guard), Ok(state)) => keep(&mut self.model, Held::WithoutGil(guard), state),
                (got, expected) => assert_eq!(got.err(), expected.err(), "{op:?}"),
            },
            Op::Attach(k) => {
                let sub = self.sub(*k);
                match (self.handles[*k].attach(), self.model.attach(sub)) {
                    (Ok(guard), Ok(state)) => keep(&mut self.model, Held::Attach(guard), state),
                    (got, expected) => assert_eq!(got.err(), expected.err(), "{op:?}"),
                }
            }
            Op::AttachSuspending(k) => {
                let sub = self.sub(*k);
                // SAFETY: no object of the suspended interpreter is used meanwhile.
                let guard = unsafe { self.handles[*k].attach_suspending() }.unwrap();
                keep(&mut self.model, Held::Attach(guard), sub);
            }
            Op::GuardAcquire(g) => {
                let (guard, entries) = &mut guards[*g];
                match (guard.try_acquire(), self.model.acquire()) {
                    (Ok(()), Ok(state)) => entries.push(self.model.push(Some(*g), state)),
                    (got, expected) => assert_eq!(got.err(), expected.err(), "{op:?}"),
                }
            }
            Op::GuardRelease(g) => {
                let (guard, entries) = &mut guards[*g];
                // SAFETY: no Python object is used while released.
                match (unsafe { guard.release() }, self.model.release()) {
                    (Ok(()), Ok(state)) => entries.push(self.model.push(Some(*g), state)),
                    (got, expected) => assert_eq!(got.err(), expected.err(), "{op:?}"),
                }
            }
            Op::GuardRestore(g) => {
                let (guard, entries) = &mut guards[*g];
                match entries.pop() {
                    Some(entry) => {
                        guard.restore().unwrap();
                        self.model.end(entry);
                    }
                    None => assert_eq!(guard.restore(), Err(GilError::NothingToRestore)),
                }
                assert_eq!(guard.depth(), entries.len());
            }
            Op::GuardDrop(g) => {
                let (guard, entries) = &mut guards[*g];
                drop(std::mem::take(guard));
                for entry in entries.drain(..) {
                    self.model.end(entry);
                }
            }
            Op::Drop(i) => {
                if !held.is_empty() {
                    let index = i % held.len();
                    let (guard, entry) = &mut held[index];
                    drop(guard.take());
                    self.model.end(*entry);
                }
            }
            Op::WithGilClosure(body) => {
                let entry = self.model.push(None, Attachment::Main);
                self.closure(body, entry, |run| with_gil(run));
            }
            Op::WithoutGilClosure(body) => {
                // Detached already: nothing to release, the closure just runs.
                let state = match self.model.current() {
                    Attachment::Detached => self.model.current(),
                    _ => Attachment::Detached,
                };
                let entry = self.model.push(None, state);
                self.closure(body, entry, |run| {
                    // The body is not `Send` (it drives this thread's model), so it runs
                    // through a pointer; it never leaves this thread.
                    let run = SendOnce(run);
                    without_gil(move || (run.into_inner())())
                });
            }
            Op::Run(k, body) => {
                let entry = self.model.push(None, self.sub(*k));
                let handle = &self.handles[*k];
                self.closure(body, entry, |run| {
                    // Not `Send` either, as for `without_gil` above.
                    let run = SendOnce(run);
                    handle.run(move || (run.into_inner())()).unwrap()
                });
            }
        }
    }

    /// Runs `body` through `form` (a closure form), panicking at its end if asked to, and
    /// checks that the thread is back where it was afterwards.
    fn closure(&mut self, body: &Body, entry: usize, form: impl FnOnce(&mut dyn FnMut()) + 'h) {
        let mut run = || {
            assert_eq!(
                common::attachment(),
                self.model.current(),
                "entering a closure"
            );
            self.run_scope(&body.ops);
            if body.panics {
                resume_unwind(Box::new(Boom));
            }
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| form(&mut run)));
        if let Err(payload) = outcome {
            assert!(payload.is::<Boom>(), "an assertion failed inside a closure");
        }
        self.model.end(entry);
    }
}

/// Lets a `FnMut` cross into `without_gil`'s `Send` bound although it stays on this
/// thread: `without_gil` runs its closure on the calling thread.
struct SendOnce<'a>(&'a mut dyn FnMut());

// SAFETY: `without_gil` calls its closure on the thread that called it, so the pointer is
// only used on the thread it came from.
unsafe impl Send for SendOnce<'_> {}

impl<'a> SendOnce<'a> {
    fn into_inner(self) -> &'a mut dyn FnMut() {
        self.0
    }
}

fn run_thread(ops: &[Op]) {
    let handles: Vec<ThreadStateHandle<'static>> = interpreters()
        .iter()
        .map(|interpreter| interpreter.thread_state().unwrap())
        .collect();
    let mut runner = Runner {
        handles: &handles,
        model: Model::default(),
    };
    assert_eq!(common::attachment(), Attachment::Detached);
    runner.run_scope(ops);
    assert_eq!(common::attachment(), Attachment::Detached);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: CASES,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn guards_follow_the_model(
        threads in prop::collection::vec(prop::collection::vec(op(), 0..24), 1..=2)
    ) {
        // The run is silent for about 10 s: say what it is, once, before the first case
        // (to stderr itself, as the harness captures `eprintln!`).
        static ANNOUNCED: Once = Once::new();
        ANNOUNCED.call_once(|| {
            let _ = writeln!(
                std::io::stderr(),
                "tests/model.rs: {CASES} random guard sequences against the model, about 10 s"
            );
        });
        interpreters();
        std::thread::scope(|scope| {
            for ops in &threads {
                scope.spawn(move || run_thread(ops));
            }
        });
    }
}
