//! The stack's own logic, without an interpreter: frames of [`Entry::Nested`] undo nothing,
//! so any order of pushes, finishes and scope ends can be checked for what it leaves.

use core::ptr;

use super::scope::Scope;
use super::*;
use crate::context::frame::{Entry, Frame, FrameIndex};
use crate::context::frames::INLINE;
use crate::context::queries::holds_any_change;
use crate::context::thread;

/// A nested frame; its thread state is never dereferenced (a nested frame makes no C call).
fn nested() -> Frame {
    Frame::handle(Entry::Nested, ptr::dangling_mut())
}

fn len() -> u32 {
    thread::with(|context| context.frames.len())
}

fn finished() -> u32 {
    thread::with(|context| context.frames.finished())
}

fn spill_capacity() -> usize {
    thread::with(|context| context.frames.spill_capacity())
}

/// Every order of `0..n`.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut all = Vec::new();
    for shorter in permutations(n - 1) {
        for position in 0..=shorter.len() {
            let mut order = shorter.clone();
            order.insert(position, n - 1);
            all.push(order);
        }
    }
    all
}

fn assert_empty() {
    assert_eq!(len(), 0, "frames left on the stack");
    assert_eq!(
        finished(),
        0,
        "finished frames counted after all were popped"
    );
    assert_eq!(spill_capacity(), 0, "the spill's buffer was not freed");
}

#[test]
fn every_finish_order_empties_the_stack() {
    for n in 1..=5 {
        for order in permutations(n) {
            let indices: Vec<FrameIndex> = (0..n).map(|_| push(nested())).collect();
            for (step, &which) in order.iter().enumerate() {
                finish(indices[which]);
                // Frames are popped exactly when nothing newer is alive.
                let newest_live = order[step + 1..].iter().max().map_or(0, |&i| i + 1);
                assert_eq!(len() as usize, newest_live, "order {order:?}, step {step}");
            }
            assert_empty();
        }
    }
}

#[test]
fn deep_stacks_spill_and_free_the_spill() {
    let depth = INLINE as u32 * 3;
    let indices: Vec<FrameIndex> = (0..depth).map(|_| push(nested())).collect();
    assert_eq!(len(), depth);
    assert!(spill_capacity() > 0);
    // The oldest first: nothing is popped until the newest goes.
    for &index in &indices[..indices.len() - 1] {
        finish(index);
    }
    assert_eq!(len(), depth);
    assert_eq!(finished(), depth - 1);
    finish(*indices.last().unwrap());
    assert_empty();
    // Newest first, through the spill and back.
    let indices: Vec<FrameIndex> = (0..depth).map(|_| push(nested())).collect();
    for &index in indices.iter().rev() {
        finish(index);
    }
    assert_empty();
}

#[test]
fn a_scope_ends_the_frames_that_outlived_it() {
    let scope = Scope(push(nested()));
    let outlived: Vec<FrameIndex> = (0..3).map(|_| push(nested())).collect();
    drop(scope);
    // The three frames are forgotten, not popped: their guards still hold their indices.
    assert_eq!(len(), 4);
    for &index in &outlived {
        assert_eq!(frame(index).unwrap().entry, Entry::Forgotten);
    }
    assert!(!holds_any_change());
    // A new frame goes above them and is finished normally.
    let later = push(nested());
    assert_eq!(later, FrameIndex::new(4));
    finish(later);
    assert_eq!(len(), 4);
    // Their guards go, in any order; then the scope's frame too.
    finish(outlived[1]);
    finish(outlived[2]);
    assert_eq!(len(), 2);
    finish(outlived[0]);
    assert_empty();
}

#[test]
fn a_scope_leaves_older_frames_alone() {
    let older = push(nested());
    let scope = Scope(push(nested()));
    let outlived = push(nested());
    drop(scope);
    assert_eq!(frame(older).unwrap().entry, Entry::Nested);
    assert!(holds_any_change());
    finish(older);
    assert_eq!(
        len(),
        3,
        "the forgotten frame above keeps everything below in place"
    );
    finish(outlived);
    assert_empty();
}

#[test]
fn every_finish_order_around_a_scope_end() {
    // Frames pushed inside a scope (a closure form) that outlive it, finished in every order
    // together with one pushed after the scope ended.
    for order in permutations(4) {
        let scope = Scope(push(nested()));
        let mut indices: Vec<FrameIndex> = (0..3).map(|_| push(nested())).collect();
        drop(scope);
        indices.push(push(nested()));
        for &which in &order {
            finish(indices[which]);
        }
        assert_empty();
    }
}

#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "not on the stack")]
fn finishing_a_frame_that_is_not_there_is_caught() {
    finish(FrameIndex::new(7));
}

#[test]
fn every_finish_order_across_the_spill_boundary() {
    // Five frames straddling `INLINE` (two inline, three spilled) above live inline frames,
    // finished in every order: the spill is freed once they are gone, the frames below stay.
    let base = INLINE as u32 - 2;
    for order in permutations(5) {
        let below: Vec<FrameIndex> = (0..base).map(|_| push(nested())).collect();
        let above: Vec<FrameIndex> = (0..5).map(|_| push(nested())).collect();
        assert!(spill_capacity() > 0);
        for &which in &order {
            finish(above[which]);
        }
        assert_eq!(len(), base, "order {order:?}");
        assert_eq!(finished(), 0, "order {order:?}");
        assert_eq!(
            spill_capacity(),
            0,
            "the spill's buffer was not freed, order {order:?}"
        );
        for &index in below.iter().rev() {
            finish(index);
        }
        assert_empty();
    }
}

#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "a frame finished twice")]
fn finishing_a_frame_twice_is_caught() {
    let older = push(nested());
    let _newer = push(nested());
    finish(older);
    finish(older);
}
