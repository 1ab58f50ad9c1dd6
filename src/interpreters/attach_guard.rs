//! [`AttachGuard`]: a [`ThreadStateHandle`](crate::ThreadStateHandle) kept attached.

use core::marker::PhantomData;

use crate::context::frame::FrameIndex;
use crate::guards::stack;
use crate::marker::CPythonThreadState;

/// Keeps a [`ThreadStateHandle`](crate::ThreadStateHandle) attached; detaches it (and
/// re-attaches whatever it suspended) when dropped.
///
/// # Examples
///
/// ```
/// gilguard::initialize()?;
/// let interpreter = gilguard::SubInterpreter::new()?;
/// let handle = interpreter.thread_state()?;
/// let attached = handle.attach()?;
/// assert!(gilguard::is_attached());
/// drop(attached);
/// assert!(!gilguard::is_attached());
/// # Ok::<(), gilguard::GilError>(())
/// ```
#[clippy::has_significant_drop]
#[must_use = "the thread state is detached as soon as the guard is dropped"]
#[derive(Debug)]
pub struct AttachGuard<'h> {
    frame: FrameIndex,
    _handle: PhantomData<&'h ()>,
    _thread: CPythonThreadState,
}

static_assertions::assert_not_impl_any!(AttachGuard<'static>: Send, Sync);

impl AttachGuard<'_> {
    /// The guard of the `Entry::Kept` frame at `frame`, just pushed.
    #[inline(always)]
    pub(super) fn new(frame: FrameIndex) -> Self {
        AttachGuard {
            frame,
            _handle: PhantomData,
            _thread: CPythonThreadState::NEW,
        }
    }
}

impl Drop for AttachGuard<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        stack::finish_likely::<stack::KeptFrame>(self.frame);
        #[cfg(feature = "stats")]
        crate::stats::record::settled();
    }
}
