//! Sleeping until a condition on the ring holds, woken by the other side.
//!
//! One side publishes (a put or get pointer) and then calls `Signal::notify`; the other
//! side checks its condition, and before sleeping announces itself in a shared "sleepers"
//! word and checks again. Both the publish and the announcement are sequentially
//! consistent, so either the notifier sees the sleeper or the sleeper sees the new
//! pointer: no lost wake-up. The notifier makes a system call only when someone
//! announced a sleep, and clears the word as it wakes, so a burst of small records costs
//! one wake, not one per record.
//!
//! Peers that never notify (NSCLDAQ's C++ clients poll) are still noticed because every
//! sleep is a slice of at most a few milliseconds unless the peer is known to wake us.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::futex;
use crate::error::Result;

/// Sleep slice when the peer may be a legacy client that never wakes us (NSCLDAQ polls
/// every 3 ms; we re-check at least as often).
pub const POLL_SLICE: Duration = Duration::from_millis(2);
/// Sleep slice when the peer is a daqflow client that wakes us: only a backstop.
pub const WOKEN_SLICE: Duration = Duration::from_millis(100);

/// Busy checks before yielding, and yields before sleeping: a consumer that caught up
/// with a fast producer usually has new data within microseconds, and a futex round
/// trip costs tens of them.
const SPINS: u32 = 200;
const YIELDS: u32 = 8;

pub struct Signal<'a> {
    pub seq: &'a AtomicU32,
    pub sleepers: &'a AtomicU32,
}

impl Signal<'_> {
    /// Wakes every sleeper, if any announced itself. Call after the publishing store.
    #[inline]
    pub fn notify(&self) {
        if self.sleepers.load(Ordering::SeqCst) != 0 && self.sleepers.swap(0, Ordering::SeqCst) != 0 {
            self.seq.fetch_add(1, Ordering::SeqCst);
            futex::wake_all(self.seq);
        }
    }

    /// Announces a sleep; returns the ticket to sleep on. Re-check the condition after.
    /// The ticket is read *before* the announcement: a notifier that clears the
    /// announcement afterwards also bumps the sequence, so the sleep returns at once
    /// instead of missing the wake-up (read after, the clear could slip in between and
    /// leave us asleep with nobody announced, until the slice ran out).
    fn prepare(&self) -> u32 {
        let ticket = self.seq.load(Ordering::SeqCst);
        self.sleepers.store(1, Ordering::SeqCst);
        ticket
    }
}

/// When a wait gives up: `None` waits forever.
pub fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.map(|t| Instant::now().checked_add(t).unwrap_or_else(|| Instant::now() + Duration::from_secs(86400 * 365)))
}

/// What a waiting side supplies: its condition, how long it may sleep between checks,
/// and periodic work (freeing dead peers' slots).
pub trait Waiter {
    type Ready;
    /// `Some` when the wait is over. Must load the peer's pointer with SeqCst.
    fn check(&mut self) -> Result<Option<Self::Ready>>;
    fn slice(&self) -> Duration;
    fn housekeeping(&mut self) -> Result<()>;
}

/// Waits until `waiter.check()` is ready or `deadline` passes (`Ok(None)`).
pub fn wait<W: Waiter>(signal: &Signal<'_>, deadline: Option<Instant>, waiter: &mut W) -> Result<Option<W::Ready>> {
    if let Some(ready) = waiter.check()? {
        return Ok(Some(ready));
    }
    let expired = |d: Option<Instant>| d.is_some_and(|d| Instant::now() >= d);
    if expired(deadline) {
        return Ok(None);
    }
    for i in 0..SPINS + YIELDS {
        if i < SPINS { std::hint::spin_loop() } else { std::thread::yield_now() }
        if let Some(ready) = waiter.check()? {
            return Ok(Some(ready));
        }
    }
    loop {
        let now = Instant::now();
        let nap = match deadline {
            Some(d) if now >= d => return Ok(None),
            Some(d) => (d - now).min(waiter.slice()),
            None => waiter.slice(),
        };
        let ticket = signal.prepare();
        if let Some(ready) = waiter.check()? {
            return Ok(Some(ready));
        }
        futex::wait(signal.seq, ticket, nap);
        waiter.housekeeping()?;
        if let Some(ready) = waiter.check()? {
            return Ok(Some(ready));
        }
    }
}
