//! Counts of the system calls a ring client makes to wait and to wake its peers, so that
//! a benchmark can say who sleeps, how often, and whether it had to, per byte moved
//! (issue 13). Off unless a program turns it on (`count_wait_stats`). Counting sits only
//! on paths that are about to make a system call: off, it costs a load and a branch
//! there, and nothing on a put or get that makes none; on, one relaxed add.
//!
//! The counts are per process (every ring, every thread), which is what a benchmark
//! running one client per process needs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What this process's ring clients did while counting was on (since the last reset).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WaitStats {
    /// futex waits that slept and returned on a wake (or a signal).
    pub waits_woken: u64,
    /// futex waits that slept their whole slice.
    pub waits_timed_out: u64,
    /// futex waits that returned at once: the word had already changed.
    pub waits_not_slept: u64,
    /// futex wakes that woke at least one process.
    pub wakes: u64,
    /// futex wakes that found nobody asleep (the sleeper had not slept yet, or left).
    pub wakes_for_nobody: u64,
    /// membarrier calls: one per announced sleep (see `fence`).
    pub membarriers: u64,
    /// sched_yield calls, while waiting or pacing a consumer.
    pub yields: u64,
    /// Timed sleeps nobody is told of (a streaming consumer's naps, see `wait`).
    pub naps: u64,
}

impl WaitStats {
    /// Every system call counted here.
    pub fn syscalls(&self) -> u64 {
        self.waits_woken
            + self.waits_timed_out
            + self.waits_not_slept
            + self.wakes
            + self.wakes_for_nobody
            + self.membarriers
            + self.yields
            + self.naps
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Event {
    WaitWoken,
    WaitTimedOut,
    WaitNotSlept,
    Wake,
    WakeForNobody,
    Membarrier,
    Yield,
    Nap,
}

static ON: AtomicBool = AtomicBool::new(false);
static COUNTS: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

#[inline]
pub(crate) fn count(event: Event) {
    if ON.load(Ordering::Relaxed) {
        COUNTS[event as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// Starts (or stops) counting in this process; counting is off until then.
pub fn count_wait_stats(on: bool) {
    ON.store(on, Ordering::Relaxed);
}

/// What this process's ring clients did while counting was on.
pub fn wait_stats() -> WaitStats {
    let c = |e: Event| COUNTS[e as usize].load(Ordering::Relaxed);
    WaitStats {
        waits_woken: c(Event::WaitWoken),
        waits_timed_out: c(Event::WaitTimedOut),
        waits_not_slept: c(Event::WaitNotSlept),
        wakes: c(Event::Wake),
        wakes_for_nobody: c(Event::WakeForNobody),
        membarriers: c(Event::Membarrier),
        yields: c(Event::Yield),
        naps: c(Event::Nap),
    }
}

/// Sets this process's counts back to zero.
pub fn reset_wait_stats() {
    COUNTS.iter().for_each(|c| c.store(0, Ordering::Relaxed));
}

/// `std::thread::yield_now`, counted.
#[inline]
pub(crate) fn yield_now() {
    count(Event::Yield);
    std::thread::yield_now();
}

/// `std::thread::sleep`, counted as a nap.
#[inline]
pub(crate) fn nap(d: std::time::Duration) {
    count(Event::Nap);
    std::thread::sleep(d);
}
