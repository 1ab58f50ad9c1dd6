//! Where this thread's frames live: [`INLINE`] frames inline in the context, a heap spill
//! beyond. The spill has no destructor, so that it outlives the thread's other thread-locals
//! like the rest of the context; [`FrameStack::pop`] frees its buffer when it empties.

use core::cell::{Cell, RefCell};
use core::mem::ManuallyDrop;

use crate::context::frame::{Entry, Frame, FrameIndex};

/// Frames kept inline before spilling to the heap. Real programs nest a handful of guards;
/// this covers them with room to spare.
pub(crate) const INLINE: usize = 16;

/// The free inline slot above the top frame, found before the fast paths call CPython so
/// that nothing is checked again after.
#[derive(Clone, Copy)]
pub(crate) struct NextSlot<'a> {
    cell: &'a Cell<Frame>,
    pub(crate) index: FrameIndex,
}

impl<'a> NextSlot<'a> {
    /// The frame in this slot, if it is still the top one with no finished frame below:
    /// [`simple_top`](FrameStack::simple_top) for a frame whose slot is known.
    #[inline(always)]
    pub(crate) fn simple_top(self, stack: &FrameStack) -> Option<&'a Cell<Frame>> {
        (stack.counts.get() == self.index.len_below_and_self()).then_some(self.cell)
    }
}

/// This thread's frames, oldest first; the inline ones at its start (see [`Context`]).
///
/// [`Context`]: crate::context::thread::Context
#[repr(C)]
pub(crate) struct FrameStack {
    inline: [Cell<Frame>; INLINE],
    /// The stack's length in the low half; in the high half, how many frames are
    /// [`Life::Finished`](crate::context::frame::Life::Finished), so that
    /// [`simple_top`](FrameStack::simple_top) is one compare.
    counts: Cell<u64>,
    spilled: RefCell<ManuallyDrop<Vec<Frame>>>,
}

impl FrameStack {
    /// No frame.
    pub(crate) const fn new() -> FrameStack {
        FrameStack {
            counts: Cell::new(0),
            inline: [const { Cell::new(Frame::UNUSED) }; INLINE],
            spilled: RefCell::new(ManuallyDrop::new(Vec::new())),
        }
    }

    #[inline(always)]
    pub(crate) fn len(&self) -> u32 {
        self.counts.get() as u32
    }

    #[inline(always)]
    fn set_len(&self, len: u32) {
        self.counts
            .set((self.counts.get() & !u64::from(u32::MAX)) | u64::from(len));
    }

    /// How many frames are finished and wait to be undone.
    #[inline(always)]
    pub(crate) fn finished(&self) -> u32 {
        (self.counts.get() >> 32) as u32
    }

    /// Counts one more finished frame.
    pub(crate) fn add_finished(&self) {
        debug_assert!(
            self.finished() < self.len(),
            "more frames finished than exist"
        );
        self.counts.set(self.counts.get() + (1 << 32));
    }

    /// Counts one finished frame less.
    pub(crate) fn remove_finished(&self) {
        debug_assert!(self.finished() > 0, "no finished frame to uncount");
        self.counts.set(self.counts.get() - (1 << 32));
    }

    pub(crate) fn get(&self, index: FrameIndex) -> Option<Frame> {
        let slot = index.slot();
        if slot >= self.len() {
            return None;
        }
        match self.inline.get(slot as usize) {
            Some(cell) => Some(cell.get()),
            None => self.spilled.borrow().get(slot as usize - INLINE).copied(),
        }
    }

    pub(crate) fn set(&self, index: FrameIndex, frame: Frame) {
        let slot = index.slot();
        debug_assert!(slot < self.len(), "set of a frame not on the stack");
        match self.inline.get(slot as usize) {
            Some(cell) => cell.set(frame),
            None => {
                if let Some(spilled) = self.spilled.borrow_mut().get_mut(slot as usize - INLINE) {
                    *spilled = frame;
                }
            }
        }
    }

    /// The indices of the frames from slot `from` up, newest first.
    pub(crate) fn newest_first(&self, from: u32) -> impl Iterator<Item = FrameIndex> {
        (from..self.len()).rev().map(FrameIndex::new)
    }

    /// Every frame, oldest first.
    pub(crate) fn frames(&self) -> impl Iterator<Item = (FrameIndex, Frame)> + '_ {
        (0..self.len())
            .map(FrameIndex::new)
            .filter_map(|index| Some((index, self.get(index)?)))
    }

    /// The index and frame at the top.
    pub(crate) fn top(&self) -> Option<(FrameIndex, Frame)> {
        let index = FrameIndex::new(self.len().checked_sub(1)?);
        Some((index, self.get(index)?))
    }

    /// The newest frame at slot `from` or above that still holds a change.
    pub(crate) fn newest_holding(&self, from: u32) -> Option<(FrameIndex, Frame)> {
        self.newest_first(from)
            .filter_map(|index| Some((index, self.get(index)?)))
            .find(|(_, frame)| frame.entry != Entry::Forgotten)
    }

    /// The cell of the frame at `index` if it is the top one, inline, with no finished frame
    /// below: what the fast finishes need before they pop it with
    /// [`pop_simple_top`](FrameStack::pop_simple_top).
    #[inline(always)]
    pub(crate) fn simple_top(&self, index: FrameIndex) -> Option<&Cell<Frame>> {
        // A frame index is its slot plus one: the length of a stack it tops.
        let slot = index.slot() as usize;
        if slot >= INLINE || self.counts.get() != slot as u64 + 1 {
            return None;
        }
        Some(&self.inline[slot])
    }

    /// Pops the frame at `index`, the [`simple_top`](FrameStack::simple_top).
    #[inline(always)]
    pub(crate) fn pop_simple_top(&self, index: FrameIndex) {
        self.counts.set(u64::from(index.slot()));
    }

    /// The stack's length and its top frame, if the top frame and the next slot are
    /// inline: the precondition of the fast pushes, which then push with
    /// [`push_inline`](FrameStack::push_inline).
    ///
    /// The top frame comes as its cell: an `Option` of a `Frame` read from memory would be
    /// tested through the frame's own bytes.
    #[inline(always)]
    pub(crate) fn inline_top(&self) -> Option<(&Cell<Frame>, NextSlot<'_>)> {
        // One compare on the whole word: `0 < len < INLINE`, and no finished frame (rare,
        // left to the slow paths).
        let len = self.counts.get();
        if len.wrapping_sub(1) >= INLINE as u64 - 1 {
            return None;
        }
        let next = NextSlot {
            cell: &self.inline[len as usize],
            index: FrameIndex::of_top(len + 1),
        };
        Some((&self.inline[len as usize - 1], next))
    }

    /// Writes `frame` into `next` without counting it: it is not on the stack until
    /// [`count_next`](FrameStack::count_next).
    #[inline(always)]
    pub(crate) fn write_next(&self, next: NextSlot<'_>, frame: Frame) -> FrameIndex {
        next.cell.set(frame);
        next.index
    }

    /// Counts the frame [`write_next`](FrameStack::write_next) wrote: it is the top one.
    #[inline(always)]
    pub(crate) fn count_next(&self, index: FrameIndex) -> FrameIndex {
        self.counts.set(self.counts.get() + 1);
        index
    }

    /// Pushes `frame` into `next`, which [`inline_top`](FrameStack::inline_top) returned.
    #[inline(always)]
    pub(crate) fn push_inline(&self, next: NextSlot<'_>, frame: Frame) -> FrameIndex {
        next.cell.set(frame);
        self.counts.set(self.counts.get() + 1);
        next.index
    }

    /// Pushes `frame` inline, if there is room, and no finished frame waits below (else the
    /// caller's slow path pushes).
    #[inline(always)]
    pub(crate) fn try_push_simple(&self, frame: Frame) -> Option<FrameIndex> {
        let len = self.counts.get();
        if len >= INLINE as u64 {
            return None;
        }
        self.inline[len as usize].set(frame);
        self.counts.set(len + 1);
        Some(FrameIndex::of_top(len + 1))
    }

    /// Pushes `frame` as the first one; the stack is empty.
    #[inline(always)]
    pub(crate) fn push_first(&self, frame: Frame) {
        debug_assert_eq!(
            self.len(),
            0,
            "the first frame pushed on a stack that has one"
        );
        self.inline[0].set(frame);
        self.counts.set(1);
    }

    /// Pushes `frame` inline, if there is room.
    #[inline(always)]
    pub(crate) fn try_push_inline(&self, frame: Frame) -> Option<FrameIndex> {
        let len = self.len();
        self.inline.get(len as usize)?.set(frame);
        self.counts.set(self.counts.get() + 1);
        Some(FrameIndex::new(len))
    }

    /// Pushes `frame` on the heap spill; the stack is [`INLINE`] deep or more.
    pub(crate) fn push_spilled(&self, frame: Frame) -> FrameIndex {
        let len = self.len();
        self.spilled.borrow_mut().push(frame);
        self.set_len(len + 1);
        FrameIndex::new(len)
    }

    /// Pops the top frame, freeing the spill's buffer when it empties.
    pub(crate) fn pop(&self) {
        let Some(slot) = self.len().checked_sub(1) else {
            return;
        };
        if slot as usize >= INLINE {
            let mut spilled = self.spilled.borrow_mut();
            spilled.pop();
            if spilled.is_empty() {
                spilled.shrink_to_fit(); // frees the buffer
            }
        }
        self.set_len(slot);
    }

    /// The capacity of the spill's buffer (for the tests of the stack's logic).
    #[cfg(test)]
    pub(crate) fn spill_capacity(&self) -> usize {
        self.spilled.borrow().capacity()
    }
}
