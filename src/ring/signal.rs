//! daqflow's wake-up state, kept in the 4 padding bytes of the client records.
//!
//! Those bytes are the only ones of a ring that no peer reads or writes: NSCLDAQ's
//! C++ class never touches them, and FRIB's `nscldaq_ringbuffer` maps a record as
//! `repr(C) {usize offset; u32 pid}` and writes its fields one by one. The header's magic
//! field is not free (FRIB's crate refuses a ring with any non-zero byte after
//! `NSCLRing`), so nothing here is ever written outside a record's padding.
//!
//! One 32-bit word per record:
//!
//! | record   | bits 0..22 | bit 22 | bits 23..32 |
//! |----------|------------|--------|-------------|
//! | producer | waker tag  | consumers sleep on this word | wake sequence |
//! | consumer | waker tag  | space request (bits 22..32)  ||
//!
//! The waker tag says "the client in this record is a daqflow client that wakes its
//! peers": a peer that sees it may sleep long instead of polling. It is derived from the
//! record's pid, so a tag left behind by a client that died, and then found beside a
//! legacy client that reused the slot, does not match. Linux pids are below 2^22.
//!
//! Consumers waiting for data all sleep on the producer's word: one wake reaches all of
//! them. The producer waiting for space asks only the slowest consumer, in that
//! consumer's word, to wake it once the consumer has freed enough; it sleeps on that
//! word. Everyone else's reads and puts cost one load of a word in a cache line they
//! write anyway.

use std::sync::atomic::{AtomicU32, Ordering};

use super::futex;
use super::layout::Geometry;

const TAG_MASK: u32 = (1 << 22) - 1;
const SLEEPERS: u32 = 1 << 22;
/// The wake sequence is the top 9 bits: adding this wraps within them.
const SEQ_ONE: u32 = 1 << 23;
const REQUEST_SHIFT: u32 = 22;
/// Space requests are quantised to this many steps of the ring's capacity.
const REQUEST_STEPS: u64 = (1 << (32 - REQUEST_SHIFT)) - 1;

/// The tag of a daqflow client with this pid. The complement, not the pid itself: the
/// previous release wrote the plain pid into the padding, and a client of that release
/// polls its peers, so it must not be taken for a waker.
#[inline]
fn tag(pid: i32) -> u32 {
    !(pid as u32) & TAG_MASK
}

/// Whether a record's word says its client, `pid`, wakes its peers. The highest pid
/// Linux can give (2^22 - 1, where `pid_max` is 2^22, as systemd sets it) has tag 0,
/// which is also the word of a fresh ring and of every legacy client: nobody with that
/// tag counts as a waker (a daqflow client with that pid is polled, like a legacy one).
#[inline]
pub fn wakes(word: &AtomicU32, pid: i32) -> bool {
    let tag = tag(pid);
    pid > 0 && tag != 0 && word.load(Ordering::Relaxed) & TAG_MASK == tag
}

/// The word a consumer writes when it claims a slot: its tag, no request.
pub fn consumer_word(pid: i32) -> u32 {
    tag(pid)
}

/// Sets or clears the tag of the producer's word, keeping the sleepers' bits.
pub fn set_producer_tag(word: &AtomicU32, pid: Option<i32>) {
    let tag = pid.map_or(0, tag);
    let _ = word.fetch_update(Ordering::SeqCst, Ordering::Relaxed, |w| Some(w & !TAG_MASK | tag));
}

/// Consumers waiting for data, in the producer's word.
pub struct DataSignal<'a>(pub &'a AtomicU32);

impl DataSignal<'_> {
    /// Wakes every sleeper, if one announced itself. Call after the publishing store
    /// (`fence::publish`), which orders the two.
    #[inline]
    pub fn notify(&self) {
        if self.0.load(Ordering::Relaxed) & SLEEPERS != 0 {
            self.wake_sleepers();
        }
    }

    #[cold]
    fn wake_sleepers(&self) {
        let woke = self.0.fetch_update(Ordering::SeqCst, Ordering::Relaxed, |w| {
            (w & SLEEPERS != 0).then(|| (w & !SLEEPERS).wrapping_add(SEQ_ONE))
        });
        if woke.is_ok() {
            futex::wake_all(self.0);
        }
    }

    /// Wakes every sleeper whether or not one announced itself (the producer changed).
    pub fn wake(&self) {
        let _ =
            self.0.fetch_update(Ordering::SeqCst, Ordering::Relaxed, |w| Some((w & !SLEEPERS).wrapping_add(SEQ_ONE)));
        futex::wake_all(self.0);
    }

    /// Announces a sleep; returns the value to sleep on. Re-check the condition after.
    /// A notifier that sees the announcement clears it and moves the sequence on, so a
    /// sleep that starts after that returns at once instead of missing the wake-up.
    pub fn announce(&self) -> u32 {
        self.0.fetch_or(SLEEPERS, Ordering::SeqCst) | SLEEPERS
    }
}

/// The producer's request for space, in one consumer's word.
pub struct SpaceRequest<'a>(pub &'a AtomicU32);

/// Bytes of free space one step of a request stands for.
#[inline]
fn step(geo: &Geometry) -> u64 {
    geo.capacity().div_ceil(REQUEST_STEPS).max(1)
}

impl SpaceRequest<'_> {
    /// Asks this consumer to wake the producer once at least `free` bytes are free as
    /// far as it is concerned; returns the value to sleep on. The request is rounded up
    /// to a step, never past the capacity, so a consumer that reads everything always
    /// answers it.
    pub fn ask(&self, geo: &Geometry, free: u64) -> u32 {
        let steps = free.div_ceil(step(geo)).clamp(1, REQUEST_STEPS) as u32;
        let request = steps << REQUEST_SHIFT;
        match self.0.fetch_update(Ordering::SeqCst, Ordering::Relaxed, |w| Some(w & TAG_MASK | request)) {
            Ok(old) | Err(old) => old & TAG_MASK | request,
        }
    }

    /// Takes back a request the producer no longer waits on (it would cost the consumer
    /// a pointless wake). Leaves a newer one alone.
    pub fn withdraw(&self, asked: u32) {
        let _ = self.0.compare_exchange(asked, asked & TAG_MASK, Ordering::SeqCst, Ordering::Relaxed);
    }

    /// For the consumer after it moved its get pointer: the free space the producer
    /// waits for, if it asked. `#[inline]` with the check alone on the hot path.
    #[inline]
    pub fn pending(&self, geo: &Geometry) -> Option<u64> {
        let steps = (self.0.load(Ordering::Relaxed) >> REQUEST_SHIFT) as u64;
        (steps != 0).then(|| (steps * step(geo)).min(geo.capacity()))
    }

    /// Ends the request and wakes the producer.
    #[cold]
    pub fn answer(&self) {
        if self.0.fetch_and(TAG_MASK, Ordering::SeqCst) >> REQUEST_SHIFT != 0 {
            futex::wake_all(self.0);
        }
    }

    /// For whoever frees the slot: clears the whole word, waking the producer if it
    /// waits on this consumer (its backlog no longer holds the producer back).
    pub fn release(&self) {
        if self.0.swap(0, Ordering::SeqCst) >> REQUEST_SHIFT != 0 {
            futex::wake_all(self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_never_match_the_previous_release_or_a_zero_word() {
        for pid in [1, 2, 4242, 1 << 21, (1 << 22) - 2] {
            let word = AtomicU32::new(tag(pid));
            assert!(wakes(&word, pid));
            assert!(!wakes(&AtomicU32::new(pid as u32), pid), "the previous release's plain pid");
            assert!(!wakes(&AtomicU32::new(0), pid));
            assert!(!wakes(&word, pid + 1));
        }
        assert!(!wakes(&AtomicU32::new(tag(-1)), -1), "a free slot is nobody's waker");
        let highest = (1 << 22) - 1;
        assert!(!wakes(&AtomicU32::new(0), highest), "a legacy client (zero word) with the highest pid");
    }

    #[test]
    fn requests_round_up_and_stay_answerable() {
        let word = AtomicU32::new(tag(77));
        let request = SpaceRequest(&word);
        // The default ring; one past 4 GiB of data (steps of megabytes); 2^20 consumers.
        let geos = [((8 << 20) + 4096, 100), ((5 << 30) + 4096, 100), ((32 << 20) + 4096, 1 << 20)];
        for geo in geos.map(|(len, consumers)| Geometry::for_format(len, consumers).unwrap()) {
            for free in [1, 4096, geo.capacity() / 8, geo.capacity() - 1, geo.capacity()] {
                let asked = request.ask(&geo, free);
                let wanted = request.pending(&geo).unwrap();
                assert!(wanted >= free && wanted <= geo.capacity(), "{free} -> {wanted}");
                assert!(wanted - free < step(&geo), "rounded up by less than a step");
                assert!(wakes(&word, 77), "the tag survives a request");
                request.withdraw(asked);
                assert_eq!(request.pending(&geo), None);
            }
        }
        // A tiny ring: every byte a step.
        let small = Geometry::for_format(1024, 2).unwrap(); // capacity 895
        request.ask(&small, 3);
        assert_eq!(request.pending(&small), Some(3));
        request.answer();
        assert_eq!(request.pending(&small), None);
        assert!(wakes(&word, 77));
    }

    #[test]
    fn the_sequence_wraps_inside_its_bits() {
        let word = AtomicU32::new(!SLEEPERS);
        let data = DataSignal(&word);
        set_producer_tag(&word, Some(9));
        assert_eq!(data.announce() & SLEEPERS, SLEEPERS);
        data.notify();
        let w = word.load(Ordering::Relaxed);
        assert_eq!(w & SLEEPERS, 0, "notify clears the announcement");
        assert_eq!(w >> 23, 0, "the sequence wrapped to zero");
        assert!(wakes(&word, 9), "without touching the tag");
    }
}
