//! Where this thread's frames live: a `const`-initialized thread-local without a
//! destructor, with [`INLINE`] frames inline and a heap spill beyond.
//!
//! Reading it costs a few instructions, never allocates while the stack is shallower than
//! [`INLINE`], and still works in the `Drop` of a guard that outlives the other
//! thread-locals of a dying thread.

use core::cell::{Cell, RefCell};
use core::mem::ManuallyDrop;

use super::frame::Frame;

/// Frames kept inline before spilling to the heap. Real programs nest a handful of guards;
/// this covers them with room to spare.
pub(crate) const INLINE: usize = 16;

pub(crate) struct FrameStack {
    pub(crate) len: Cell<u32>,
    /// How many frames are [`Life::Finished`](super::frame::Life::Finished): while none
    /// is, a finishing top frame can be popped without looking at the frames below it.
    pub(crate) finished: Cell<u32>,
    inline: [Cell<Frame>; INLINE],
}

thread_local! {
    pub(crate) static FRAMES: FrameStack = const {
        FrameStack {
            len: Cell::new(0),
            finished: Cell::new(0),
            inline: [const { Cell::new(Frame::UNUSED) }; INLINE],
        }
    };
    /// Frames above [`INLINE`]; only touched by unusually deep nesting. `ManuallyDrop`, so
    /// that it has no destructor and outlives the other thread-locals like [`FRAMES`];
    /// [`FrameStack::pop`] frees its buffer when it empties.
    static SPILLED: RefCell<ManuallyDrop<Vec<Frame>>> =
        const { RefCell::new(ManuallyDrop::new(Vec::new())) };
}

impl FrameStack {
    pub(crate) fn get(&self, index: u32) -> Option<Frame> {
        if index >= self.len.get() {
            return None;
        }
        match self.inline.get(index as usize) {
            Some(cell) => Some(cell.get()),
            None => SPILLED
                .try_with(|spilled| spilled.borrow().get(index as usize - INLINE).copied())
                .ok()
                .flatten(),
        }
    }

    pub(crate) fn set(&self, index: u32, frame: Frame) {
        debug_assert!(
            index < self.len.get(),
            "set of a frame that is not on the stack"
        );
        match self.inline.get(index as usize) {
            Some(cell) => cell.set(frame),
            None => {
                let _ = SPILLED.try_with(|spilled| {
                    if let Some(slot) = spilled.borrow_mut().get_mut(index as usize - INLINE) {
                        *slot = frame;
                    }
                });
            }
        }
    }

    /// The index and frame at the top.
    pub(crate) fn top(&self) -> Option<(u32, Frame)> {
        let index = self.len.get().checked_sub(1)?;
        Some((index, self.get(index)?))
    }

    /// The frame at `index` if it is inline: what the fast paths may touch.
    #[inline(always)]
    pub(crate) fn inline(&self, index: u32) -> Option<Frame> {
        Some(self.inline.get(index as usize)?.get())
    }

    /// The stack's length and its top frame, if the top frame and the next slot are
    /// inline: the precondition of the fast paths, which then push with [`push_inline`].
    ///
    /// [`push_inline`]: FrameStack::push_inline
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
    pub(crate) fn push_inline(&self, len: u32, frame: Frame) {
        self.inline[len as usize].set(frame);
        self.len.set(len + 1);
    }

    /// Pushes `frame` inline, if there is room; returns its index.
    #[inline]
    pub(crate) fn try_push_inline(&self, frame: Frame) -> Option<u32> {
        let index = self.len.get();
        self.inline.get(index as usize)?.set(frame);
        self.len.set(index + 1);
        Some(index)
    }

    /// Pushes `frame` on the heap spill; the stack must be [`INLINE`] deep or more.
    ///
    /// # Panics
    /// If this thread's thread-locals are being destroyed (the spill cannot be reached).
    pub(crate) fn push_spilled(&self, frame: Frame) -> u32 {
        let index = self.len.get();
        SPILLED.with(|spilled| spilled.borrow_mut().push(frame));
        self.len.set(index + 1);
        index
    }

    /// Pops the top frame, freeing the spill's buffer when it empties.
    pub(crate) fn pop(&self) {
        let Some(index) = self.len.get().checked_sub(1) else {
            return;
        };
        if index as usize >= INLINE {
            let _ = SPILLED.try_with(|spilled| {
                let mut spilled = spilled.borrow_mut();
                spilled.pop();
                if spilled.is_empty() {
                    spilled.shrink_to_fit(); // frees the buffer
                }
            });
        }
        self.len.set(index);
    }

    /// Whether the spill holds a buffer (for the tests of the stack's logic).
    #[cfg(test)]
    pub(crate) fn spill_capacity() -> usize {
        SPILLED.with(|spilled| spilled.borrow().capacity())
    }
}
