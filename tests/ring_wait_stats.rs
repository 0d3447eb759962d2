//! `ring::wait_stats`: once a program turns counting on, the waits, wakes, membarriers and
//! yields its ring clients make are counted, and nothing is while it is off. One test
//! only: the counts are per process.

use std::time::Duration;

mod common;

use common::RingName;
use daqflow::ring::{self, Consumer, Producer};

#[test]
fn waits_and_wakes_are_counted_once_counting_is_on() {
    let ring = RingName::created("wait-stats", 4096, 2);
    let mut c = Consumer::attach(ring.s()).expect("consumer");
    let mut p = Producer::attach(ring.s()).expect("producer");
    let mut buf = [0u8; 16];
    // Off (the default): nothing is counted.
    let e = c.get(&mut buf, 1, Some(Duration::from_millis(10))).expect_err("no data");
    assert_eq!(e.errno(), libc::ETIMEDOUT);
    assert_eq!(ring::wait_stats(), ring::WaitStats::default());
    ring::count_wait_stats(true);
    // Nothing comes: the consumer spins, yields, then sleeps whole slices.
    // Generous: on a loaded machine each yield can give the core away for milliseconds.
    let e = c.get(&mut buf, 1, Some(Duration::from_millis(300))).expect_err("no data");
    assert_eq!(e.errno(), libc::ETIMEDOUT);
    let idle = ring::wait_stats();
    assert!(idle.yields >= 16, "{idle:?}");
    assert!(idle.membarriers >= 1, "{idle:?}");
    assert!(idle.waits_timed_out >= 1, "{idle:?}");
    assert_eq!((idle.wakes, idle.wakes_for_nobody), (0, 0), "{idle:?}");
    // A consumer asleep on another thread is woken by the put.
    let sleeper = std::thread::spawn(move || c.get(&mut [0u8; 16], 1, Some(Duration::from_secs(10))).map(|_| c));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while ring::wait_stats().membarriers == idle.membarriers && std::time::Instant::now() < deadline {
        std::thread::yield_now();
    }
    std::thread::sleep(Duration::from_millis(20));
    p.put(b"wake up", Some(Duration::ZERO)).expect("put");
    let mut c = sleeper.join().expect("sleeper").expect("get");
    let after = ring::wait_stats();
    assert!(after.wakes + after.wakes_for_nobody >= 1, "{after:?}");
    assert!(after.syscalls() > idle.syscalls(), "{after:?}");
    ring::reset_wait_stats();
    assert_eq!(ring::wait_stats(), ring::WaitStats::default());
    // A consumer keeping pace with small records (the last read found a few bytes) pauses
    // with a yield before a get that may wait, so that a batch builds up ...
    p.put(b"pace", Some(Duration::ZERO)).expect("put");
    assert_eq!(c.get(&mut buf, 1, Some(Duration::from_secs(10))).expect("get"), 4);
    assert_eq!(ring::wait_stats().yields, 1, "{:?}", ring::wait_stats());
    // ... but a poll (zero timeout, or min 0) never waits, not even for a yield: its caller
    // paces itself, as NSCLDAQ's clients do with their 3 ms sleeps.
    for min in [1, 0] {
        p.put(b"poll", Some(Duration::ZERO)).expect("put");
        let timeout = if min == 0 { Some(Duration::from_secs(10)) } else { Some(Duration::ZERO) };
        assert_eq!(c.get(&mut buf, min, timeout).expect("get"), 4);
        assert_eq!(ring::wait_stats().yields, 1, "min {min}: {:?}", ring::wait_stats());
    }
    ring::reset_wait_stats();
}
