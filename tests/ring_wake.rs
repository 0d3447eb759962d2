//! Wake-ups between a producer blocked on space and the consumer it asked to free it.

use std::os::unix::fs::FileExt;
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;

use common::RingName;
use daqflow::ring::{self, Consumer, Producer};

/// The padding word of consumer record `slot` (offset 96 + 16 * slot + 12).
fn consumer_pad(ring: &RingName, slot: u32) -> u32 {
    let file = std::fs::File::open(ring.path()).expect("open ring file");
    let mut word = [0u8; 4];
    file.read_exact_at(&mut word, 96 + 16 * slot as u64 + 12).expect("read ring file");
    u32::from_le_bytes(word)
}

/// The scheduler state letter of thread `tid` of this process.
fn thread_state(tid: i32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
    stat.rfind(')').and_then(|i| stat[i + 1..].trim_start().chars().next()).unwrap_or('?')
}

/// Waits (bounded) until the producer thread `tid` sleeps after asking consumer `slot`.
fn until_asked_and_asleep(r: &RingName, slot: u32, tid: i32, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while consumer_pad(r, slot) >> 22 == 0 || thread_state(tid) != 'S' {
        assert!(Instant::now() < deadline, "{what}: the producer never slept asking for space");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Starts `put` of `len` bytes on another thread; returns it and the thread's id.
fn put_in_thread(mut p: Producer, len: usize) -> (std::thread::JoinHandle<Producer>, i32) {
    let (tx, rx) = mpsc::channel();
    let producer = std::thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        tx.send(unsafe { libc::gettid() }).expect("send");
        p.put(&vec![2u8; len], Some(Duration::from_secs(20))).expect("put");
        p
    });
    (producer, rx.recv().expect("tid"))
}

/// A consumer disconnected by an administrator while the producer sleeps on its word
/// wakes the producer (the disconnect clears the word and wakes whoever waits on it), so
/// the put goes on at once, not at the 100 ms backstop.
#[test]
fn disconnecting_the_consumer_asked_for_space_wakes_the_producer() {
    let r = RingName::created("disconnectwake", 4096, 2);
    let mut p = Producer::attach(r.s()).expect("producer");
    const ROUNDS: usize = 10;
    let mut stalled = Duration::ZERO;
    for round in 0..ROUNDS {
        let c = Consumer::attach(r.s()).expect("consumer");
        let cap = c.geometry().capacity() as usize;
        p.put(&vec![1u8; cap], Some(Duration::ZERO)).expect("fill");
        let (producer, tid) = put_in_thread(p, 1000);
        until_asked_and_asleep(&r, c.slot(), tid, &format!("round {round}"));
        ring::disconnect_consumer(r.s(), c.slot()).expect("disconnect");
        let start = Instant::now();
        p = producer.join().expect("join");
        stalled += start.elapsed();
        drop(c);
        // What the put left is read by nobody: the next consumer starts after it.
    }
    assert!(stalled < Duration::from_millis(ROUNDS as u64 * 100 / 3), "{ROUNDS} rounds stalled {stalled:?}");
}

/// The producer asks the slowest consumer to wake it once an eighth of the ring is free.
/// A consumer that frees less than that but enough for the put, then waits for more
/// data than there is, sleeps waiting for the producer, which sleeps waiting for it: each
/// round then lasts the producer's 100 ms backstop, a few milliseconds when the consumer
/// tells the producer to look again before it sleeps.
#[test]
fn a_consumer_that_stops_reading_to_wait_for_data_lets_the_producer_look_again() {
    let r = RingName::created("sleepanswer", 4096, 2);
    let mut c = Consumer::attach(r.s()).expect("consumer");
    let mut p = Producer::attach(r.s()).expect("producer");
    let cap = c.geometry().capacity() as usize; // 8063: a request step is 8 bytes
    // The producer waits for 1000 bytes and asks for an eighth of the ring, 1008 bytes;
    // the consumer frees 1003 of them.
    let (first, record, read) = (cap - 63, 1000, 940);
    const ROUNDS: usize = 10;
    let mut stalled = Duration::ZERO;
    let mut buf = vec![0u8; cap];
    for round in 0..ROUNDS {
        p.put(&vec![1u8; first], Some(Duration::ZERO)).expect("fill");
        let (producer, tid) = put_in_thread(p, record);
        until_asked_and_asleep(&r, c.slot(), tid, &format!("round {round}"));
        assert_eq!(c.get(&mut buf[..read], read as u64, Some(Duration::ZERO)).expect("read"), read);
        let rest = first - read + record;
        let start = Instant::now();
        assert_eq!(c.get(&mut buf, rest as u64, Some(Duration::from_secs(5))).expect("get the new record"), rest);
        stalled += start.elapsed();
        assert!(buf[rest - record..rest].iter().all(|&b| b == 2), "round {round}");
        p = producer.join().expect("join");
    }
    assert!(stalled < Duration::from_millis(ROUNDS as u64 * 100 / 3), "{ROUNDS} rounds stalled {stalled:?}");
}
