//! The statistics' clock: ticks of the time stamp counter where the system uses it as its
//! clock, else nanoseconds from [`Instant`]. Three reads per attach that takes the GIL make
//! the clock most of what the feature costs there; ticks become durations only when read.

use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::sync::OnceLock;
use std::time::Instant;

use crate::raw::tsc;

/// Where the clock started: an `Instant` and the ticks at that moment.
#[derive(Debug)]
struct Start {
    instant: Instant,
    ticks: u64,
    counter: bool,
}

static START: OnceLock<Start> = OnceLock::new();
/// Set once the counter is chosen, for a read without looking at [`START`].
static COUNTER: AtomicBool = AtomicBool::new(false);

fn start() -> &'static Start {
    if let Some(start) = START.get() {
        return start;
    }
    // Measured outside the lock, so that a fork while another thread sets it (the lock stays
    // taken in the child) is as unlikely as can be.
    let counter = tsc::is_the_system_clock();
    let start = Start {
        instant: Instant::now(),
        ticks: if counter { tsc::read() } else { 0 },
        counter,
    };
    let start = START.get_or_init(|| start);
    COUNTER.store(start.counter, Ordering::Relaxed);
    start
}

/// The time now, in ticks.
#[inline(always)]
pub(crate) fn now() -> u64 {
    if COUNTER.load(Ordering::Relaxed) {
        tsc::read()
    } else {
        now_slow()
    }
}

#[cold]
#[inline(never)]
fn now_slow() -> u64 {
    let start = start();
    if start.counter {
        tsc::read()
    } else {
        nanos(start.instant.elapsed())
    }
}

/// Ticks to durations and back, at the counter's rate as measured now against `Instant`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scale {
    nanos_per_tick: f64,
}

impl Scale {
    /// The current scale; measures the counter's rate over at least a millisecond (waiting
    /// for one if the clock started less than that ago).
    pub(crate) fn now() -> Scale {
        let start = start();
        if !start.counter {
            return Scale {
                nanos_per_tick: 1.0,
            };
        }
        loop {
            let elapsed = start.instant.elapsed();
            let ticks = tsc::read().saturating_sub(start.ticks);
            if elapsed >= Duration::from_millis(1) && ticks != 0 {
                #[allow(clippy::cast_precision_loss, reason = "a rate")]
                return Scale {
                    nanos_per_tick: elapsed.as_nanos() as f64 / ticks as f64,
                };
            }
            std::thread::yield_now();
        }
    }

    /// `ticks` as a duration.
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "durations of up to 2^53 ticks are exact, longer ones saturate"
    )]
    pub(crate) fn duration(self, ticks: u64) -> Duration {
        Duration::from_nanos((ticks as f64 * self.nanos_per_tick) as u64)
    }

    /// `duration` in ticks, saturated.
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "as above"
    )]
    pub(crate) fn ticks(self, duration: Duration) -> u64 {
        (duration.as_nanos() as f64 / self.nanos_per_tick) as u64
    }
}

/// Nanoseconds, saturated (585 years).
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_measure_what_instant_measures() {
        let _ = now(); // starts the clock
        // Each clock is read right beside the other at both ends; a preemption between two
        // reads (a loaded machine) spoils one attempt, not five.
        let close = (0..5).any(|_| {
            let (instant, ticks) = (Instant::now(), now());
            std::thread::sleep(Duration::from_millis(30));
            let (ticks, elapsed) = (now() - ticks, instant.elapsed());
            let measured = Scale::now().duration(ticks);
            eprintln!("{measured:?} by the clock, {elapsed:?} by Instant");
            measured.abs_diff(elapsed) < elapsed / 100
        });
        assert!(close, "five attempts, none within 1%");
        let scale = Scale::now();
        let back = scale.duration(scale.ticks(Duration::from_millis(5)));
        assert!(back.abs_diff(Duration::from_millis(5)) < Duration::from_micros(5));
    }
}
