//! [`AttachKind`]: how an attach came about, the first split of the counts.

/// How an attach came about.
///
/// # Examples
///
/// ```
/// use gilguard::stats::{self, AttachKind};
///
/// gilguard::initialize()?;
/// gilguard::with_gil(|| ());
/// let total = stats::snapshot().total;
/// let attaches: u64 = AttachKind::ALL.iter().map(|kind| total.attaches(*kind)).sum();
/// assert!(attaches >= 1);
/// # Ok::<(), gilguard::GilError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AttachKind {
    /// The thread was already attached to the thread state: no C call, no wait, no hold of
    /// its own.
    Nested,
    /// A detached thread that has a thread state of its own (Python's main thread, a
    /// `threading` thread, the thread that called [`initialize`](crate::initialize))
    /// re-attached it to the main interpreter.
    Detached,
    /// A thread Python did not create attached to the main interpreter: its kept thread
    /// state re-attached, or its first attach, which makes one.
    Native,
    /// A [`ThreadStateHandle`](crate::ThreadStateHandle) attached on a detached thread, or
    /// switched to from another interpreter.
    Handle,
    /// A thread re-attached after a release ([`without_gil`](crate::without_gil) and the
    /// other releasing forms), or after another interpreter it switched to was detached.
    Restore,
}

/// The number of kinds.
pub(crate) const KINDS: usize = 5;

impl AttachKind {
    /// Every kind, in the order [`Snapshot`](crate::stats::Snapshot)'s table shows them.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(gilguard::stats::AttachKind::ALL.len(), 5);
    /// ```
    pub const ALL: [AttachKind; KINDS] = [
        AttachKind::Nested,
        AttachKind::Detached,
        AttachKind::Native,
        AttachKind::Handle,
        AttachKind::Restore,
    ];

    /// A short lower-case name, as in the table.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(gilguard::stats::AttachKind::Native.name(), "native");
    /// ```
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            AttachKind::Nested => "nested",
            AttachKind::Detached => "detached",
            AttachKind::Native => "native",
            AttachKind::Handle => "handle",
            AttachKind::Restore => "restore",
        }
    }
}
