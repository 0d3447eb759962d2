//! Sleeping until a condition on the ring holds, woken by the other side.
//!
//! One side publishes (a put or get pointer) and then looks at the peer's announcement
//! word; the other side checks its condition, and before sleeping announces itself in
//! that word, issues the heavy half of an asymmetric fence (see `fence`) and checks
//! again. So either the notifier sees the sleeper or the sleeper sees the new pointer: no
//! lost wake-up. The notifier makes a system call only when someone announced a sleep,
//! and clears the word as it wakes, so a burst of small records costs one wake, not one
//! per record.
//!
//! Peers that never notify (NSCLDAQ's C++ clients poll) are still noticed because every
//! sleep is a slice of at most a few milliseconds unless the peer is known to wake us.

use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use super::{fence, futex};
use crate::error::Result;

/// Sleep slice when the peer may be a legacy client that never wakes us (NSCLDAQ polls
/// every 3 ms; we re-check at least as often).
pub const POLL_SLICE: Duration = Duration::from_millis(2);
/// Sleep slice when the peer is a daqflow client that wakes us: only a backstop.
pub const WOKEN_SLICE: Duration = Duration::from_millis(100);

/// Checks with a growing pause between them, then yields, before sleeping: a consumer
/// that caught up with a fast producer usually has new data within microseconds, and a
/// futex round trip costs tens of them. The pause grows so that a waiting consumer does
/// not keep pulling the cache line the producer is writing its pointer to. The busy part
/// is short and the rest yields, because consumers often share a core and a spinning
/// one would steal it from those with data to copy.
const SPIN_ROUNDS: u32 = 6; // pauses of 1, 2 .. 32 spin hints: a few microseconds
const YIELDS: u32 = 16; // about a microsecond each when the core is otherwise idle

/// A waiter whose peer is streaming (see `Waiter::streaming`) naps this long, at most
/// NAPS times, instead of spinning and yielding before it announces a sleep. Nobody is
/// told of a nap, so the peer makes no wake call and takes no membarrier interrupt: on a
/// virtual machine each costs the producer microseconds of the time it would spend
/// putting. A nap really lasts about 70-90 us (timer slack and the hypervisor), in which
/// a streaming producer puts a few hundred KiB: what the waiter then copies in one go.
pub const NAP: Duration = Duration::from_micros(20);
const NAPS: u32 = 2;

/// A yield that came back sooner than this found nobody else wanting the core.
const ALONE: Duration = Duration::from_micros(10);

/// Yields; true when the core came straight back. Naps are for a waiter with a core to
/// itself: where consumers share one, each nap is one more context switch among them,
/// and a yield already hands the core to those with data to copy.
pub fn yield_alone() -> bool {
    let t = Instant::now();
    super::stats::yield_now();
    t.elapsed() < ALONE
}

/// Whether a nap fits in what is left of `timeout` after `spent`. Nothing shortens a nap,
/// so one taken anyway would overshoot a short timeout by all of it; one that fits
/// overshoots only by the timer's slack (tens of us), as every timed sleep does.
pub fn nap_fits(timeout: Option<Duration>, spent: Duration) -> bool {
    timeout.is_none_or(|t| t.saturating_sub(spent) >= NAP)
}

/// What to sleep on: a word in ring memory and the value it had when the sleep was
/// announced (the sleep ends at once if it changed since).
pub struct Ticket<'r> {
    pub word: &'r AtomicU32,
    pub expected: u32,
}

/// What a waiting side supplies: its condition, how long it may sleep between checks,
/// and periodic work (freeing dead peers' slots).
pub trait Waiter<'r> {
    type Ready;
    /// `Some` when the wait is over. Must load the peer's pointer with SeqCst.
    fn check(&mut self) -> Result<Option<Self::Ready>>;
    /// Announces the coming sleep to the peer; returns what to sleep on.
    fn announce(&mut self) -> Ticket<'r>;
    /// How long to sleep at most; asked after `announce` and the check that follows it.
    fn slice(&self) -> Duration;
    /// The peer has been streaming (data came in bulk without our sleeping): take short
    /// naps nobody is told of before announcing a sleep.
    fn streaming(&self) -> bool {
        false
    }
    fn housekeeping(&mut self) -> Result<()>;
}

/// Waits until `waiter.check()` is ready or `timeout` passes (`Ok(None)`); `None`
/// waits forever, zero only checks.
pub fn wait<'r, W: Waiter<'r>>(timeout: Option<Duration>, waiter: &mut W) -> Result<Option<W::Ready>> {
    if let Some(ready) = waiter.check()? {
        return Ok(Some(ready));
    }
    if timeout == Some(Duration::ZERO) {
        return Ok(None);
    }
    // The clock is read only once a wait is really needed.
    let start = Instant::now();
    let expired = || timeout.is_some_and(|t| start.elapsed() >= t);
    // A streaming peer will have put plenty after a nap, and checking again within
    // microseconds would only take its lines from it; others are checked with a growing
    // pause, then between yields. A nap that would outlast the timeout is not taken (the
    // sleep below keeps to what is left of it).
    let napping = waiter.streaming() && yield_alone();
    let rounds = if napping { NAPS } else { SPIN_ROUNDS + YIELDS };
    for round in 0..rounds {
        if napping {
            if !nap_fits(timeout, start.elapsed()) {
                break;
            }
            super::stats::nap(NAP);
        } else if round < SPIN_ROUNDS {
            for _ in 0..1u32 << round {
                std::hint::spin_loop();
            }
        } else {
            super::stats::yield_now();
        }
        if let Some(ready) = waiter.check()? {
            return Ok(Some(ready));
        }
        if expired() {
            return Ok(None);
        }
    }
    loop {
        let left = match timeout {
            Some(t) => match t.checked_sub(start.elapsed()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return Ok(None),
            },
            None => None,
        };
        let ticket = waiter.announce();
        let fenced = fence::heavy();
        if let Some(ready) = waiter.check()? {
            return Ok(Some(ready));
        }
        // The slice is read after the announcement: a peer that wakes us and leaves before
        // it saw the announcement, replaced by one that never wakes anyone, would
        // otherwise leave us asleep for a whole long slice.
        let slice = waiter.slice();
        // Without the barrier a publisher's plain store may not be visible yet, nor our
        // announcement to it: sleep only briefly then.
        let slice = if fenced { slice } else { slice.min(POLL_SLICE) };
        let nap = left.map_or(slice, |left| left.min(slice));
        futex::wait(ticket.word, ticket.expected, nap);
        waiter.housekeeping()?;
        if let Some(ready) = waiter.check()? {
            return Ok(Some(ready));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    /// A waiter whose peer woke it (long slices) until, while it announced its sleep, that
    /// peer left and one that never wakes anyone took its place and put the data.
    struct PeerReplaced<'r> {
        word: &'r AtomicU32,
        announced: bool,
        checks_since: u32,
    }

    impl<'r> Waiter<'r> for PeerReplaced<'r> {
        type Ready = ();

        fn check(&mut self) -> Result<Option<()>> {
            if self.announced {
                self.checks_since += 1;
            }
            // The data comes just after the check that follows the announcement.
            Ok((self.checks_since >= 2).then_some(()))
        }

        fn announce(&mut self) -> Ticket<'r> {
            self.announced = true;
            Ticket { word: self.word, expected: self.word.load(Ordering::SeqCst) }
        }

        fn slice(&self) -> Duration {
            if self.announced { POLL_SLICE } else { Duration::from_secs(10) }
        }

        fn housekeeping(&mut self) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_slice_is_the_one_of_the_peer_there_when_the_sleep_was_announced() {
        let word = AtomicU32::new(0);
        let mut waiter = PeerReplaced { word: &word, announced: false, checks_since: 0 };
        let start = Instant::now();
        let got = wait(Some(Duration::from_secs(5)), &mut waiter).expect("wait");
        assert_eq!(got, Some(()), "timed out");
        // With the slice of the peer that left, the sleep lasts the whole 5 s timeout.
        assert!(start.elapsed() < Duration::from_secs(2), "slept {:?} past a poller's data", start.elapsed());
    }
}
