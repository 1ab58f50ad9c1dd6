//! [`Snapshot`]: the figures read at one moment, per interpreter, in total and per call site.

use core::panic::Location;
use core::time::Duration;

use crate::stats::kind::{AttachKind, KINDS};

/// Attaches, detaches, waits and holds: of one interpreter, or of all of them
/// ([`Snapshot::total`]).
///
/// *Wait* is the time spent in the C calls that took the GIL; *hold*, the time from such an
/// attach to the detach that ended it. Nested attaches have neither. An attach whose hold is
/// in progress is counted, with its wait and hold, when the hold ends.
///
/// # Examples
///
/// ```
/// use gilguard::stats::{self, AttachKind};
///
/// gilguard::initialize()?;
/// gilguard::with_gil(|| ());
/// let total = stats::snapshot().total;
/// assert!(total.taking_the_gil() >= 1);
/// assert!(total.hold >= total.longest_hold);
/// # Ok::<(), gilguard::GilError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counts {
    pub(crate) attaches: [u64; KINDS],
    /// Detaches that ended a hold, and releases.
    pub detaches: u64,
    /// Time spent waiting to attach.
    pub wait: Duration,
    /// Time held, over every hold that ended.
    pub hold: Duration,
    /// The longest hold that ended.
    pub longest_hold: Duration,
    /// Threads blocked in an attach at the moment of the snapshot.
    pub waiting_now: u64,
}

impl Counts {
    /// Attaches of `kind`.
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::stats::{AttachKind, Counts};
    ///
    /// assert_eq!(Counts::default().attaches(AttachKind::Handle), 0);
    /// ```
    #[must_use]
    pub fn attaches(&self, kind: AttachKind) -> u64 {
        self.attaches[kind as usize]
    }

    /// Attaches of every kind but [`AttachKind::Nested`]: those that took a GIL.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(gilguard::stats::Counts::default().taking_the_gil(), 0);
    /// ```
    #[must_use]
    pub fn taking_the_gil(&self) -> u64 {
        self.attaches[1..].iter().sum()
    }

    pub(crate) fn add(&mut self, other: &Counts) {
        for (sum, count) in self.attaches.iter_mut().zip(other.attaches) {
            *sum += count;
        }
        self.detaches += other.detaches;
        self.wait += other.wait;
        self.hold += other.hold;
        self.longest_hold = self.longest_hold.max(other.longest_hold);
        self.waiting_now += other.waiting_now;
    }
}

/// One interpreter's [`Counts`].
///
/// # Examples
///
/// ```
/// gilguard::initialize()?;
/// gilguard::with_gil(|| ());
/// let snapshot = gilguard::stats::snapshot();
/// let main = snapshot.interpreters.iter().find(|i| i.id == 0).unwrap();
/// assert!(main.counts.taking_the_gil() >= 1);
/// # Ok::<(), gilguard::GilError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct InterpreterStats {
    /// Its id ([`Interpreter::id`](crate::Interpreter::id)); 0 is the main interpreter.
    pub id: i64,
    /// Which runtime it belonged to, counting from 0: a runtime finalized and started again
    /// (or a fork's child) has interpreters of the same ids that are not the same.
    pub runtime: u64,
    /// Its figures.
    pub counts: Counts,
}

/// One call site's figures: the attaches that took a GIL there (nested ones are not counted
/// per site) and the holds they began.
///
/// # Examples
///
/// ```
/// gilguard::initialize()?;
/// gilguard::with_gil(|| ());
/// let here = line!() - 1;
/// let snapshot = gilguard::stats::snapshot();
/// let site = snapshot.sites.iter().find(|s| s.site.line() == here && s.site.file() == file!());
/// assert!(site.is_some_and(|site| site.attaches >= 1));
/// # Ok::<(), gilguard::GilError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SiteStats {
    /// Where the public entry point was called.
    pub site: &'static Location<'static>,
    /// Attaches that took a GIL for it.
    pub attaches: u64,
    /// Their time waiting.
    pub wait: Duration,
    /// The longest of those waits.
    pub longest_wait: Duration,
    /// Holds that ended (fewer than `attaches` while one is in progress, or where Python, not
    /// the crate, ends the hold: a restore on a thread Python attached).
    pub holds: u64,
    /// Their time held.
    pub hold: Duration,
    /// The longest of them.
    pub longest_hold: Duration,
}

impl SiteStats {
    /// Wait and hold together: what the table sorts by.
    pub(crate) fn cost(&self) -> Duration {
        self.wait + self.hold
    }
}

/// The figures at one moment: in total, per interpreter and per call site (costliest first).
/// `Send`, so it can be handed to another thread; [`Display`](core::fmt::Display) prints it as a
/// table.
///
/// # Examples
///
/// ```
/// gilguard::initialize()?;
/// gilguard::with_gil(|| ());
/// let snapshot = gilguard::stats::snapshot();
/// std::thread::spawn(move || println!("{snapshot}")).join().unwrap();
/// # Ok::<(), gilguard::GilError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Snapshot {
    /// Every interpreter together.
    pub total: Counts,
    /// Each interpreter attached since the process started (or since
    /// [`reset`](crate::stats::reset), with figures of zero for those not attached since).
    pub interpreters: Vec<InterpreterStats>,
    /// Each call site, by wait plus hold, largest first.
    pub sites: Vec<SiteStats>,
    /// Attaches and detaches that did not fit in their thread's table of sites (which has
    /// room for 128 combinations of site, interpreter and kind of attach per thread).
    pub sites_not_recorded: u64,
}

impl Snapshot {
    /// The `n` costliest call sites (by wait plus hold).
    ///
    /// # Examples
    ///
    /// ```
    /// gilguard::initialize()?;
    /// gilguard::with_gil(|| ());
    /// assert!(gilguard::stats::snapshot().top_sites(3).len() <= 3);
    /// # Ok::<(), gilguard::GilError>(())
    /// ```
    #[must_use]
    pub fn top_sites(&self, n: usize) -> &[SiteStats] {
        &self.sites[..n.min(self.sites.len())]
    }
}
