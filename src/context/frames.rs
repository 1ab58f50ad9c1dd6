//! Where this thread's frames live: [`INLINE`] frames inline in the context, a heap spill
//! beyond. The spill has no destructor, so that it outlives the thread's other thread-locals
//! like the rest of the context; [`FrameStack::pop`] frees its buffer when it empties.

use core::cell::{Cell, RefCell};
use core::mem::ManuallyDrop;

use crate::context::frame::{Entry, Frame, FrameIndex};

/// Frames kept inline before spilling to the heap. Real programs nest a handful of guards;
/// this covers them with room to spare.
pub(crate) const INLINE: usize = 16;

/// This thread's frames, oldest first.
pub(crate) struct FrameStack {
    pub(crate) len: Cell<u32>,
    /// How many frames are [`Life::Finished`](crate::context::frame::Life::Finished): while none is, a finishing top frame can be
    /// popped without looking at the frames below it.
    pub(crate) finished: Cell<u32>,
    inline: [Cell<Frame>; INLINE],
    spilled: RefCell<ManuallyDrop<Vec<Frame>>>,
}

impl FrameStack {
    /// No frame.
    pub(crate) const fn new() -> FrameStack {
        FrameStack {
            len: Cell::new(0),
            finished: Cell::new(0),
            inline: [const { Cell::new(Frame::UNUSED) }; INLINE],
            spilled: RefCell::new(ManuallyDrop::new(Vec::new())),
        }
    }

    pub(crate) fn get(&self, index: FrameIndex) -> Option<Frame> {
        let slot = index.slot();
        if slot >= self.len.get() {
            return None;
        }
        match self.inline.get(slot as usize) {
            Some(cell) => Some(cell.get()),
            None => self.spilled.borrow().get(slot as usize - INLINE).copied(),
        }
    }

    pub(crate) fn set(&self, index: FrameIndex, frame: Frame) {
        let slot = index.slot();
        debug_assert!(slot < self.len.get(), "set of a frame not on the stack");
        match self.inline.get(slot as usize) {
            Some(cell) => cell.set(frame),
            None => {
                if let Some(spilled) = self.spilled.borrow_mut().get_mut(slot as usize - INLINE) {
                    *spilled = frame;
                }
            }
        }
    }

    /// The indices of the frames from `from` up, newest first.
    pub(crate) fn newest_first(&self, from: u32) -> impl Iterator<Item = FrameIndex> {
        (from..self.len.get()).rev().map(FrameIndex::new)
    }

    /// Every frame, oldest first.
    pub(crate) fn frames(&self) -> impl Iterator<Item = (FrameIndex, Frame)> + '_ {
        (0..self.len.get())
            .map(FrameIndex::new)
            .filter_map(|index| Some((index, self.get(index)?)))
    }

    /// The index and frame at the top.
    pub(crate) fn top(&self) -> Option<(FrameIndex, Frame)> {
        let index = FrameIndex::new(self.len.get().checked_sub(1)?);
        Some((index, self.get(index)?))
    }

    /// The newest frame at slot `from` or above that still holds a change.
    pub(crate) fn newest_holding(&self, from: u32) -> Option<(FrameIndex, Frame)> {
        self.newest_first(from)
            .filter_map(|index| Some((index, self.get(index)?)))
            .find(|(_, frame)| frame.entry != Entry::Forgotten)
    }

    /// The frame at `index` if it is inline: what the fast paths may touch.
    #[inline(always)]
    pub(crate) fn inline(&self, index: FrameIndex) -> Option<Frame> {
        Some(self.inline.get(index.slot() as usize)?.get())
    }

    /// The stack's length and its top frame, if the top frame and the next slot are
    /// inline: the precondition of the fast paths, which then push with
    /// [`push_inline`](FrameStack::push_inline).
    #[inline(always)]
    pub(crate) fn inline_top(&self) -> Option<(u32, Frame)> {
        let len = self.len.get();
        if len == 0 || len as usize >= INLINE {
            return None;
        }
        Some((len, self.inline[len as usize - 1].get()))
    }

    /// Pushes `frame` at `len`, the length [`inline_top`](FrameStack::inline_top) returned.
    #[inline(always)]
    pub(crate) fn push_inline(&self, len: u32, frame: Frame) -> FrameIndex {
        self.inline[len as usize].set(frame);
        self.len.set(len + 1);
        FrameIndex::new(len)
    }

    /// Pushes `frame` inline, if there is room.
    #[inline(always)]
    pub(crate) fn try_push_inline(&self, frame: Frame) -> Option<FrameIndex> {
        let len = self.len.get();
        self.inline.get(len as usize)?.set(frame);
        self.len.set(len + 1);
        Some(FrameIndex::new(len))
    }

    /// Pushes `frame` on the heap spill; the stack is [`INLINE`] deep or more.
    pub(crate) fn push_spilled(&self, frame: Frame) -> FrameIndex {
        let len = self.len.get();
        self.spilled.borrow_mut().push(frame);
        self.len.set(len + 1);
        FrameIndex::new(len)
    }

    /// Pops the top frame, freeing the spill's buffer when it empties.
    pub(crate) fn pop(&self) {
        let Some(slot) = self.len.get().checked_sub(1) else {
            return;
        };
        if slot as usize >= INLINE {
            let mut spilled = self.spilled.borrow_mut();
            spilled.pop();
            if spilled.is_empty() {
                spilled.shrink_to_fit(); // frees the buffer
            }
        }
        self.len.set(slot);
    }

    /// The capacity of the spill's buffer (for the tests of the stack's logic).
    #[cfg(test)]
    pub(crate) fn spill_capacity(&self) -> usize {
        self.spilled.borrow().capacity()
    }
}
