//! A [`Snapshot`] as a table ([`Display`](fmt::Display)).

use core::fmt;
use core::time::Duration;

use crate::stats::kind::AttachKind;
use crate::stats::snapshot::{Counts, Snapshot};

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
