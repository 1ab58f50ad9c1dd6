//! An asymmetric fence for the shutdown gate's handshake (see `runtime::shutdown`).
//!
//! The gate is Dekker's pattern: a native thread writes its guard count, then reads the
//! gate; shutdown writes the gate, then reads the counts. Each side needs a store-load
//! fence between its two steps, or both may read the old value and the thread attaches
//! while shutdown stops waiting for it. A fence (or a read-modify-write, `lock xadd` on
//! x86-64) costs a native thread on every acquisition, for a shutdown that happens once.
//!
//! `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` moves that cost to shutdown: when it
//! returns, every thread of the process that was running has executed a full memory barrier,
//! and every other one does at its next context switch. So the frequent side only needs
//! its two accesses in program order (a compiler fence), and the rare side makes the system
//! call. The kernel requires registering for it first; where that is refused (another
//! system than Linux, an old kernel, valgrind, a seccomp filter), both sides keep using
//! sequentially consistent atomics.

#![allow(unsafe_code, reason = "calls `membarrier`")]

use core::sync::atomic::{AtomicBool, Ordering, compiler_fence, fence};

/// Whether this process registered for `MEMBARRIER_CMD_PRIVATE_EXPEDITED`.
static REGISTERED: AtomicBool = AtomicBool::new(false);

/// Registers this process for the asymmetric fence, if the system supports it. Cheap after
/// the first success.
pub(crate) fn enable() {
    if !is_enabled() && register() {
        REGISTERED.store(true, Ordering::Relaxed);
    }
}

/// In the child of a fork, which runs one thread: registers again, and uses the symmetric
/// fence from now on if the kernel refuses (Linux keeps the registration across `fork` today,
/// but does not promise it).
pub(crate) fn after_fork() {
    if is_enabled() {
        REGISTERED.store(register(), Ordering::Relaxed);
    }
}

/// Whether the frequent side may use [`light`] instead of a sequentially consistent
/// read-modify-write. A thread that reads a stale `false` only pays the old price.
#[inline]
pub(crate) fn is_enabled() -> bool {
    REGISTERED.load(Ordering::Relaxed)
}

/// The frequent side, when [`is_enabled`]: keeps the compiler from moving memory accesses
/// across it. The processor may still reorder them; [`heavy`] accounts for that.
#[inline]
pub(crate) fn light() {
    compiler_fence(Ordering::SeqCst);
}

/// The rare side: after it, every write that a thread made before its [`light`] fence is
/// visible to this thread, or that thread's reads after its fence see this thread's writes
/// made before this call. Returns `false` if the system call failed after registration
/// succeeded (which the kernel documents only for an unregistered process): then the writes
/// of threads that used [`light`] may not be visible yet.
pub(crate) fn heavy() -> bool {
    fence(Ordering::SeqCst);
    !is_enabled() || membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)
}

/// `membarrier` commands (`linux/membarrier.h`); kernel ABI, stable since Linux 4.14.
const MEMBARRIER_CMD_PRIVATE_EXPEDITED: i32 = 1 << 3;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: i32 = 1 << 4;

fn register() -> bool {
    membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED)
}

/// `membarrier(command, 0)`; true if it succeeded.
#[cfg(target_os = "linux")]
fn membarrier(command: i32) -> bool {
    // SAFETY: `membarrier` takes two integers and touches no memory of the caller; an unknown
    // command or an unsupported kernel only returns an error.
    unsafe { libc::syscall(libc::SYS_membarrier, command, 0) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn membarrier(_command: i32) -> bool {
    false
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use core::sync::atomic::AtomicU32;

    /// Where the kernel offers the command, the fast side is in use.
    #[test]
    fn registers_where_the_kernel_offers_it() {
        // SAFETY: `MEMBARRIER_CMD_QUERY` (0) only returns the supported commands.
        let supported = unsafe { libc::syscall(libc::SYS_membarrier, 0, 0) };
        let offered =
            supported >= 0 && supported & libc::c_long::from(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0;
        enable();
        assert_eq!(is_enabled(), offered);
        assert!(heavy());
    }

    /// The store-buffering litmus test, the shape of the gate: one thread stores `x` then
    /// loads `y` across [`light`], the other stores `y` then loads `x` across [`heavy`].
    /// Both loads reading the old value is what the fences forbid. Each round starts both
    /// sides together (a spin barrier), then delays one of them by a few spins, so that
    /// their accesses overlap in every possible order; without `heavy`'s system call, this
    /// fails on x86-64.
    #[test]
    fn forbids_store_buffering() {
        enable();
        if !is_enabled() {
            return; // `light` is not used then
        }
        const ROUNDS: u32 = 50_000;
        let (x, y) = (AtomicU32::new(0), AtomicU32::new(0));
        let arrived = AtomicU32::new(0);
        let start = |round: u32, delay: u32| {
            arrived.fetch_add(1, Ordering::AcqRel);
            let mut spins = 0u32;
            while arrived.load(Ordering::Acquire) < 2 * round {
                spins += 1;
                if spins % 1024 == 0 {
                    std::thread::yield_now(); // the other side is not running
                }
                core::hint::spin_loop();
            }
            for _ in 0..delay {
                core::hint::spin_loop();
            }
        };
        let (seen_by_light, seen_by_heavy) = std::thread::scope(|scope| {
            let light_side = scope.spawn(|| {
                let mut seen = Vec::with_capacity(ROUNDS as usize);
                for round in 1..=ROUNDS {
                    start(round, round % 16);
                    x.store(round, Ordering::Relaxed);
                    light();
                    seen.push(y.load(Ordering::Relaxed));
                }
                seen
            });
            let mut seen = Vec::with_capacity(ROUNDS as usize);
            for round in 1..=ROUNDS {
                start(round, (round / 16) % 16);
                y.store(round, Ordering::Relaxed);
                assert!(heavy());
                seen.push(x.load(Ordering::Relaxed));
            }
            (light_side.join().unwrap(), seen)
        });
        let both_stale = (1..=ROUNDS)
            .zip(seen_by_light.iter().zip(&seen_by_heavy))
            .filter(|&(round, (&y_seen, &x_seen))| y_seen < round && x_seen < round)
            .count();
        assert_eq!(
            both_stale, 0,
            "rounds in which both sides read the old value"
        );
    }
}
