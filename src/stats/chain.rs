//! [`Chain`]: an append-only list of leaked items that threads add to and read without a
//! lock. The statistics keep their interpreters and threads' blocks in chains rather than
//! behind a `Mutex`, which a fork would leave locked forever in the child if another thread
//! held it at that moment.

use core::iter;
use std::sync::OnceLock;

/// One item and the link to the next.
#[derive(Debug)]
pub(crate) struct Link<T: 'static> {
    item: T,
    next: OnceLock<&'static Link<T>>,
}

/// An append-only list; its items live for the rest of the process.
#[derive(Debug)]
pub(crate) struct Chain<T: 'static> {
    head: OnceLock<&'static Link<T>>,
}

impl<T: Sync + Send> Chain<T> {
    pub(crate) const fn new() -> Chain<T> {
        Chain {
            head: OnceLock::new(),
        }
    }

    /// Adds `item` at the end and returns it, leaked. Threads adding at once each find the
    /// end again: setting a link that another thread set first fails, and moves on.
    pub(crate) fn push(&'static self, item: T) -> &'static T {
        let mut link: &'static Link<T> = Box::leak(Box::new(Link {
            item,
            next: OnceLock::new(),
        }));
        let mut slot = &self.head;
        loop {
            match slot.set(link) {
                Ok(()) => return &link.item,
                Err(mine) => {
                    link = mine;
                    slot = &slot.get().expect("set by another thread").next;
                }
            }
        }
    }

    /// Every item, oldest first.
    pub(crate) fn iter(&'static self) -> impl Iterator<Item = &'static T> {
        iter::successors(self.head.get().copied(), |link| link.next.get().copied())
            .map(|link| &link.item)
    }
}
