//! A consumer whose producer streams (it read 64 KiB since it last announced a sleep)
//! waits by napping, a timed sleep nobody is told of, before it announces a sleep: the
//! producer then makes no wake call. A consumer of a trickle never naps, so its wake-up
//! latency stays the futex's. One test only: the counts are per process.
//!
//! Naps are taken only when a yield comes straight back (the core is the consumer's
//! alone), which a loaded machine may deny any single attempt: each case is tried a few
//! times and must show up at least once, while what must never happen must not in any.

use std::time::Duration;

mod common;

use common::RingName;
use daqflow::ring::{self, Consumer, Producer};

const ATTEMPTS: usize = 20;
/// Long enough to reach the announced sleep even when, on a loaded machine, each of the
/// yields before it gives the core away for milliseconds.
const WAIT: Duration = Duration::from_millis(300);

/// Reads `n` bytes that are already there (no wait, so no sleep is announced).
fn stream(p: &mut Producer, c: &mut Consumer, n: usize) {
    let chunk = vec![7u8; 16 << 10];
    let mut buf = vec![0u8; 16 << 10];
    for _ in 0..n / chunk.len() {
        p.put(&chunk, Some(Duration::ZERO)).expect("put");
        assert_eq!(c.get(&mut buf, 0, Some(Duration::ZERO)).expect("get"), chunk.len());
    }
}

#[test]
fn a_streaming_consumer_naps_and_a_trickle_one_never_does() {
    let ring = RingName::created("naps", 1 << 20, 2);
    let mut c = Consumer::attach(ring.s()).expect("consumer");
    let mut p = Producer::attach(ring.s()).expect("producer");
    let mut buf = [0u8; 64];
    ring::count_wait_stats(true);

    // A trickle: a few bytes between sleeps. Nothing comes: spins, yields, then announced
    // sleeps, never a nap.
    for _ in 0..3 {
        ring::reset_wait_stats();
        let e = c.get(&mut buf, 1, Some(WAIT)).expect_err("no data");
        assert_eq!(e.errno(), libc::ETIMEDOUT);
        let s = ring::wait_stats();
        assert_eq!(s.naps, 0, "a trickle's consumer napped: {s:?}");
        assert!(s.membarriers >= 1, "{s:?}");
    }

    // Streaming: after 64 KiB read without sleeping, a wait naps first (twice, then it
    // announces a sleep since nothing came).
    let mut napped = false;
    for _ in 0..ATTEMPTS {
        stream(&mut p, &mut c, 64 << 10);
        ring::reset_wait_stats();
        let e = c.get(&mut buf, 1, Some(WAIT)).expect_err("no data");
        assert_eq!(e.errno(), libc::ETIMEDOUT);
        let s = ring::wait_stats();
        assert!(s.naps <= 2, "{s:?}");
        if s.naps == 2 {
            assert!(s.membarriers >= 1, "it announced no sleep after its naps: {s:?}");
            napped = true;
            break;
        }
    }
    assert!(napped, "a streaming consumer never napped in {ATTEMPTS} attempts");

    // The announced sleep ended the streak: the next wait is a trickle's again.
    ring::reset_wait_stats();
    let e = c.get(&mut buf, 1, Some(WAIT)).expect_err("no data");
    assert_eq!(e.errno(), libc::ETIMEDOUT);
    assert_eq!(ring::wait_stats().naps, 0, "{:?}", ring::wait_stats());

    // Keeping pace with a streaming producer (a few bytes there at each read): a get that
    // may wait naps before it reads, so that a batch builds up; a poll never does.
    let mut paced = false;
    for _ in 0..ATTEMPTS {
        stream(&mut p, &mut c, 64 << 10);
        p.put(b"pace", Some(Duration::ZERO)).expect("put");
        assert_eq!(c.get(&mut buf, 1, Some(Duration::ZERO)).expect("poll"), 4);
        p.put(b"nap!", Some(Duration::ZERO)).expect("put");
        ring::reset_wait_stats();
        assert_eq!(c.get(&mut buf, 1, Some(Duration::from_secs(10))).expect("get"), 4);
        let s = ring::wait_stats();
        assert_eq!(s.membarriers, 0, "data was there: {s:?}");
        if s.naps == 1 {
            paced = true;
            break;
        }
    }
    assert!(paced, "a consumer keeping pace with a streaming producer never napped in {ATTEMPTS} attempts");
    ring::count_wait_stats(false);
}
