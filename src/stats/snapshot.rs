//! [`Snapshot`]: the figures read at one moment, per interpreter, in total and per call site;
//! [`reset`].

use core::fmt;
use core::panic::Location;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use crate::stats::interp::{self, Tally};
use crate::stats::kind::{AttachKind, KINDS};
use crate::stats::nested;
use crate::stats::sites;

/// Attaches, detaches, waits and holds: of one interpreter, or of all of them
/// ([`Snapshot::total`]).
///
/// *Wait* is the time spent in the C calls that took the GIL; *hold*, the time from such an
/// attach to the detach that ended it. Nested attaches have neither. A hold in progress is
/// counted when it ends.
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
    attaches: [u64; KINDS],
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

    fn read(tally: &Tally) -> Counts {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Counts {
            attaches: tally.attaches.each_ref().map(load),
            detaches: load(&tally.detaches),
            wait: Duration::from_nanos(load(&tally.wait_ns)),
            hold: Duration::from_nanos(load(&tally.hold_ns)),
            longest_hold: Duration::from_nanos(load(&tally.longest_hold_ns)),
            waiting_now: load(&tally.waiting_now),
        }
    }

    fn add(&mut self, other: &Counts) {
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
    fn cost(&self) -> Duration {
        self.wait + self.hold
    }
}

/// The figures at one moment: in total, per interpreter and per call site (costliest first).
/// `Send`, so it can be handed to another thread; [`Display`](fmt::Display) prints it as a
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
    /// Each interpreter attached since the process started (or since [`reset`], with figures
    /// of zero for those not attached since).
    pub interpreters: Vec<InterpreterStats>,
    /// Each call site, by wait plus hold, largest first.
    pub sites: Vec<SiteStats>,
    /// Attaches at sites that did not fit in the table of sites (over a thousand sites).
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

/// Reads the figures.
///
/// Each counter is read on its own while other threads may be adding to it: figures taken
/// while threads attach can be a few events apart from each other (attaches from detaches, a
/// site from its interpreter); taken when they are quiet, they agree exactly.
///
/// # Examples
///
/// ```
/// gilguard::initialize()?;
/// let before = gilguard::stats::snapshot().total.taking_the_gil();
/// gilguard::with_gil(|| ());
/// assert!(gilguard::stats::snapshot().total.taking_the_gil() > before);
/// # Ok::<(), gilguard::GilError>(())
/// ```
#[must_use]
pub fn snapshot() -> Snapshot {
    let mut interpreters: Vec<InterpreterStats> = interp::all()
        .into_iter()
        .map(|tally| InterpreterStats {
            id: tally.key.id,
            runtime: tally.key.epoch,
            counts: Counts::read(tally),
        })
        .collect();
    // Nested attaches to a main interpreter are counted per thread (`nested.rs`).
    for (runtime, count) in nested::all().iter().map(|block| block.read()) {
        let main = match interpreters
            .iter_mut()
            .position(|i| i.id == 0 && i.runtime == runtime)
        {
            Some(index) => &mut interpreters[index],
            None => {
                interpreters.push(InterpreterStats {
                    id: 0,
                    runtime,
                    counts: Counts::default(),
                });
                interpreters.last_mut().expect("just pushed")
            }
        };
        main.counts.attaches[AttachKind::Nested as usize] += count;
    }
    let mut total = Counts::default();
    for interpreter in &interpreters {
        total.add(&interpreter.counts);
    }
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let ns = |counter: &AtomicU64| Duration::from_nanos(load(counter));
    let mut sites: Vec<SiteStats> = sites::claimed()
        .map(|(site, slot)| SiteStats {
            site,
            attaches: load(&slot.attaches),
            wait: ns(&slot.wait_ns),
            longest_wait: ns(&slot.longest_wait_ns),
            holds: load(&slot.holds),
            hold: ns(&slot.hold_ns),
            longest_hold: ns(&slot.longest_hold_ns),
        })
        .filter(|site| site.attaches != 0 || site.holds != 0)
        .collect();
    sites.sort_by_key(|site| core::cmp::Reverse(site.cost()));
    Snapshot {
        total,
        interpreters,
        sites,
        sites_not_recorded: sites::OVERFLOW.load(Ordering::Relaxed),
    }
}

/// Sets every figure to zero (but [`Counts::waiting_now`], which counts threads, not
/// events). Holds in progress are counted when they end, in full.
///
/// # Examples
///
/// ```rust,standalone_crate
/// gilguard::initialize()?;
/// gilguard::with_gil(|| ());
/// gilguard::stats::reset();
/// let snapshot = gilguard::stats::snapshot();
/// assert_eq!(snapshot.total.taking_the_gil(), 0);
/// assert!(snapshot.sites.is_empty());
/// # Ok::<(), gilguard::GilError>(())
/// ```
pub fn reset() {
    nested::reset();
    for tally in interp::all() {
        tally.reset();
    }
    for (_, slot) in sites::claimed() {
        slot.reset();
    }
    sites::OVERFLOW.store(0, Ordering::Relaxed);
}

/// `Duration` in the table's unit.
struct Ms(Duration);

impl fmt::Display for Ms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = format!("{:.3}", self.0.as_secs_f64() * 1e3);
        f.pad(&text)
    }
}

impl fmt::Display for Snapshot {
    /// Two tables: the interpreters (and their total), then the call sites, costliest first;
    /// times in milliseconds. `{:.N}` (a precision) shows only the `N` costliest sites.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<12}", "interpreter")?;
        for kind in AttachKind::ALL {
            write!(f, " {:>9}", kind.name())?;
        }
        writeln!(
            f,
            " {:>9} {:>11} {:>11} {:>11} {:>7}",
            "detaches", "wait ms", "hold ms", "longest ms", "waiting"
        )?;
        let row = |f: &mut fmt::Formatter<'_>, name: &str, counts: &Counts| {
            write!(f, "{name:<12}")?;
            for kind in AttachKind::ALL {
                write!(f, " {:>9}", counts.attaches(kind))?;
            }
            writeln!(
                f,
                " {:>9} {:>11} {:>11} {:>11} {:>7}",
                counts.detaches,
                Ms(counts.wait),
                Ms(counts.hold),
                Ms(counts.longest_hold),
                counts.waiting_now
            )
        };
        for interpreter in &self.interpreters {
            let name = match (interpreter.id, interpreter.runtime) {
                (0, 0) => "main".to_owned(),
                (id, 0) => format!("{id}"),
                (id, runtime) => format!("{id} (rt {runtime})"),
            };
            row(f, &name, &interpreter.counts)?;
        }
        row(f, "total", &self.total)?;
        let sites = self.top_sites(f.precision().unwrap_or(usize::MAX));
        writeln!(
            f,
            "\n{:<40} {:>9} {:>11} {:>11} {:>9} {:>11} {:>11}",
            "call site", "attaches", "wait ms", "longest ms", "holds", "hold ms", "longest ms"
        )?;
        for site in sites {
            let place = format!("{}:{}", site.site.file(), site.site.line());
            writeln!(
                f,
                "{place:<40} {:>9} {:>11} {:>11} {:>9} {:>11} {:>11}",
                site.attaches,
                Ms(site.wait),
                Ms(site.longest_wait),
                site.holds,
                Ms(site.hold),
                Ms(site.longest_hold)
            )?;
        }
        if self.sites_not_recorded != 0 {
            writeln!(
                f,
                "(and {} attaches at sites not recorded)",
                self.sites_not_recorded
            )?;
        }
        Ok(())
    }
}
