//! The processor's time stamp counter, for the `stats` feature's clock: one instruction,
//! where `clock_gettime` reads the same counter and then scales it under a sequence lock.

#![allow(unsafe_code, reason = "reads the time stamp counter")]

/// Whether reading the counter gives a clock: Linux uses it as its own clock source only
/// once it has found it to run at one rate in every power state and in step on every core.
/// Elsewhere (another system, a kernel that distrusts it) the answer is no.
pub(crate) fn is_the_system_clock() -> bool {
    cfg!(target_arch = "x86_64")
        && std::fs::read_to_string(
            "/sys/devices/system/clocksource/clocksource0/current_clocksource",
        )
        .is_ok_and(|source| source.trim() == "tsc")
}

/// The counter's value.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn read() -> u64 {
    // SAFETY: `rdtsc` reads a register every x86-64 processor has; it touches no memory.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Not called: [`is_the_system_clock`] is false off x86-64.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn read() -> u64 {
    0
}
