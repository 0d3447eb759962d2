//! Where a streaming consumer's naps (timed sleeps nobody is told of, see tests/ring_naps.rs)
//! must not go: past the timeout of the get that takes them, on and on once nothing comes
//! any more, and into a ring too small to hold what the producer puts during one (it
//! fills, and the producer stops and must be woken: a 4 KiB ring moved 5x less with naps
//! than without). One test only: the counts are per process.
//!
//! A nap is taken only when a yield comes straight back, which a loaded machine may deny:
//! what is checked here is what must never happen, in every one of several attempts.

use std::time::Duration;

mod common;

use common::RingName;
use daqflow::ring::{self, Consumer, Producer};

const ATTEMPTS: usize = 20;
/// `wait::NAP`, the length a nap asks for (it lasts several times that).
const NAP: Duration = Duration::from_micros(20);

/// Reads `n` bytes that are already there in pieces of `piece` (no wait, so no sleep is
/// announced): the consumer now counts its producer as streaming.
fn stream(p: &mut Producer, c: &mut Consumer, n: usize, piece: usize) {
    let chunk = vec![7u8; piece];
    let mut buf = vec![0u8; piece];
    for _ in 0..n / piece {
        p.put(&chunk, Some(Duration::ZERO)).expect("put");
        assert_eq!(c.get(&mut buf, 0, Some(Duration::ZERO)).expect("get"), piece);
    }
}

/// Streams, then reads a small record, so that the next get that may wait is one of a
/// consumer keeping pace with a streaming producer (the case that naps before reading).
fn keep_pace(p: &mut Producer, c: &mut Consumer, piece: usize) {
    stream(p, c, 64 << 10, piece);
    p.put(b"pace", Some(Duration::ZERO)).expect("put");
    assert_eq!(c.get(&mut [0u8; 64], 1, Some(Duration::ZERO)).expect("poll"), 4);
}

/// A get that finds nothing and times out; returns the naps it took.
fn naps_of_empty_get(c: &mut Consumer, timeout: Duration) -> u64 {
    ring::reset_wait_stats();
    let e = c.get(&mut [0u8; 64], 1, Some(timeout)).expect_err("no data");
    assert_eq!(e.errno(), libc::ETIMEDOUT);
    ring::wait_stats().naps
}

#[test]
fn naps_keep_to_the_timeout_and_to_rings_that_hold_a_naps_worth() {
    ring::count_wait_stats(true);
    {
        let ring = RingName::created("nap-bounds", 1 << 20, 2);
        let mut c = Consumer::attach(ring.s()).expect("consumer");
        let mut p = Producer::attach(ring.s()).expect("producer");
        for _ in 0..ATTEMPTS {
            // A timeout shorter than a nap: no nap at all (each lasts 70-90 us, all of it
            // past the timeout; before, a 5 us get took two and returned after ~180 us).
            keep_pace(&mut p, &mut c, 16 << 10);
            let naps = naps_of_empty_get(&mut c, NAP / 4);
            assert_eq!(naps, 0, "a get with a {:?} timeout napped", NAP / 4);
            // Room for one nap: the pacing nap before the read counts against the
            // timeout, so the wait that follows has less than a nap left and takes none.
            keep_pace(&mut p, &mut c, 16 << 10);
            let naps = naps_of_empty_get(&mut c, NAP * 3 / 2);
            assert!(naps <= 1, "a get with a {:?} timeout napped {naps} times", NAP * 3 / 2);
        }
    }
    {
        // Nothing comes any more, and the consumer waits with timeouts that end during its
        // naps: the streak ended with the first wait that timed out, so it does not nap on
        // for ever, and its waits go back to the sleep whose housekeeping runs its `Idle`
        // (how a proxy ring's consumer restarts a dead feeder; a consumer that napped on
        // never ran it).
        let ring = RingName::created("nap-bounds-idle", 1 << 20, 2);
        let mut c = Consumer::attach(ring.s()).expect("consumer");
        let mut p = Producer::attach(ring.s()).expect("producer");
        for _ in 0..ATTEMPTS {
            keep_pace(&mut p, &mut c, 16 << 10);
            naps_of_empty_get(&mut c, Duration::from_micros(150));
            let naps = naps_of_empty_get(&mut c, Duration::from_micros(150));
            assert_eq!(naps, 0, "a consumer napped on after a wait that found nothing");
        }
        // A poll that finds nothing only caught up: the streak goes on, and a wait naps.
        let mut napped = false;
        for _ in 0..ATTEMPTS {
            stream(&mut p, &mut c, 64 << 10, 16 << 10);
            let e = c.get(&mut [0u8; 64], 1, Some(Duration::ZERO)).expect_err("no data");
            assert_eq!(e.errno(), libc::ETIMEDOUT);
            if naps_of_empty_get(&mut c, Duration::from_millis(5)) > 0 {
                napped = true;
                break;
            }
        }
        assert!(napped, "a poll that found nothing ended the streak ({ATTEMPTS} attempts)");
    }
    {
        // A 16 KiB ring: streaming through it never leads to a nap, waiting or pacing.
        let ring = RingName::created("nap-bounds-short", 16 << 10, 2);
        let mut c = Consumer::attach(ring.s()).expect("consumer");
        let mut p = Producer::attach(ring.s()).expect("producer");
        for _ in 0..ATTEMPTS {
            keep_pace(&mut p, &mut c, 8 << 10);
            let naps = naps_of_empty_get(&mut c, Duration::from_millis(5));
            assert_eq!(naps, 0, "a consumer of a 16 KiB ring napped");
        }
    }
    ring::count_wait_stats(false);
}
