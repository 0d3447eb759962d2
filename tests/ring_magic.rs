//! The magic field holds `NSCLRing` and 24 zero bytes whatever daqflow does to a ring:
//! FRIB's `nscldaq_ringbuffer` refuses a ring with anything else there (and FRIB's ring
//! master then SIGTERMs every client of it). daqflow's wake-up state lives in the
//! padding of the client records instead; rings where daqflow 1.0 left words in bytes
//! 12..31 stay usable, and a format cleans them.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;

use common::RingName;
use daqflow::ring::{self, Consumer, Producer};

const MAGIC: &[u8; 32] = b"NSCLRing\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";

fn bytes_at(ring: &RingName, off: u64, len: usize) -> Vec<u8> {
    let file = OpenOptions::new().read(true).open(ring.path()).expect("open ring file");
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, off).expect("read ring file");
    buf
}

fn magic_of(ring: &RingName) -> [u8; 32] {
    bytes_at(ring, 0, 32).try_into().expect("32 bytes")
}

fn assert_clean(ring: &RingName, when: &str) {
    assert_eq!(&magic_of(ring), MAGIC, "magic field written {when}");
}

/// The producer record's padding word (offset 80 + 12).
fn producer_pad(ring: &RingName) -> u32 {
    u32::from_le_bytes(bytes_at(ring, 92, 4).try_into().expect("4 bytes"))
}

/// Waits (bounded) until `cond` holds.
fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn no_daqflow_call_writes_the_magic_field() {
    let r = RingName::created("magic", 4096, 4); // D = 8064 - 16 * 2
    assert_clean(&r, "by create");
    let mut p = Producer::attach(r.s()).expect("producer");
    assert_clean(&r, "by a producer attach");

    // A consumer asleep waiting for data.
    let c = Consumer::attach(r.s()).expect("consumer");
    let (tx, rx) = mpsc::channel();
    let sleeper = std::thread::spawn(move || {
        let mut c = c;
        let mut buf = [0u8; 64];
        tx.send(c.get(&mut buf, 64, Some(Duration::from_secs(20))).map(|n| buf[..n].to_vec())).expect("send");
        c
    });
    // Its announcement is in the producer record's padding, and nowhere in the header.
    until("the consumer announces its sleep", || producer_pad(&r) & (1 << 22) != 0);
    assert_clean(&r, "by a consumer going to sleep");
    p.put(&[7u8; 64], Some(Duration::ZERO)).expect("put");
    let got = rx.recv_timeout(Duration::from_secs(10)).expect("woken").expect("get");
    assert_eq!(got, vec![7u8; 64]);
    let mut c = sleeper.join().expect("join");
    assert_clean(&r, "by a wake-up");

    // The producer asleep waiting for space.
    let capacity = c.geometry().capacity() as usize;
    p.put(&vec![1u8; capacity], Some(Duration::ZERO)).expect("fill the ring");
    let (tx, rx) = mpsc::channel();
    let blocked = std::thread::spawn(move || {
        tx.send(p.put(&[2u8; 1000], Some(Duration::from_secs(20)))).expect("send");
        p
    });
    assert!(rx.recv_timeout(Duration::from_millis(100)).is_err(), "the put did not wait for space");
    assert_clean(&r, "by a producer going to sleep");
    let mut buf = vec![0u8; capacity];
    assert_eq!(c.get(&mut buf, capacity as u64, Some(Duration::ZERO)).expect("drain"), capacity);
    rx.recv_timeout(Duration::from_secs(10)).expect("producer woken").expect("put");
    let p = blocked.join().expect("join");

    // Inquiries, detaching, disconnecting, reaping.
    ring::usage(r.s()).expect("usage");
    ring::peek_usage(r.s()).expect("peek usage");
    drop(c);
    let extra = Consumer::attach(r.s()).expect("consumer");
    ring::disconnect_consumer(r.s(), extra.slot()).expect("disconnect consumer");
    drop(extra);
    drop(p);
    let p = Producer::attach(r.s()).expect("producer again");
    ring::disconnect_producer(r.s()).expect("disconnect producer");
    drop(p);
    assert_clean(&r, "by inquiries, detaches and disconnects");
}

/// daqflow 1.0 kept four words in bytes 12..31. Such a ring is used without reading
/// them (data flows, sleepers are woken) and the next format zeroes them.
#[test]
fn rings_of_the_previous_release_stay_usable_and_format_cleans_them() {
    let r = RingName::created("oldwords", 65536, 2);
    // What 1.0 left: a data sequence, a sleeper flag, a space sequence and a space target
    // that names no position of this ring.
    let mut words = [0u8; 20];
    words[0..4].copy_from_slice(&77u32.to_le_bytes());
    words[4..8].copy_from_slice(&1u32.to_le_bytes());
    words[8..12].copy_from_slice(&9u32.to_le_bytes());
    words[12..20].copy_from_slice(&u64::MAX.to_le_bytes());
    let file = OpenOptions::new().read(true).write(true).open(r.path()).expect("open");
    file.write_all_at(&words, 12).expect("plant 1.0 words");

    let mut p = Producer::attach(r.s()).expect("producer");
    let c = Consumer::attach(r.s()).expect("consumer");
    let consumer = std::thread::spawn(move || {
        let mut c = c;
        let mut total = 0u64;
        let mut buf = vec![0u8; 4096];
        while total < 4 << 20 {
            let n = c.get(&mut buf, 1, Some(Duration::from_secs(20))).expect("get");
            for (i, b) in buf[..n].iter().enumerate() {
                assert_eq!(*b, ((total + i as u64) % 251) as u8, "byte {}", total + i as u64);
            }
            total += n as u64;
        }
        total
    });
    let data: Vec<u8> = (0..4u64 << 20).map(|i| (i % 251) as u8).collect();
    for chunk in data.chunks(3000) {
        p.put(chunk, Some(Duration::from_secs(20))).expect("put");
    }
    assert_eq!(consumer.join().expect("join"), 4 << 20);
    assert_eq!(&bytes_at(&r, 12, 20), &words, "daqflow wrote the old words");
    drop(p);

    ring::format(r.s(), 2).expect("format");
    assert_clean(&r, "after a format");
}

/// A producer blocked on space is woken by the consumer that frees it, not found by a
/// backstop slice (100 ms when every consumer is a daqflow one): 40 fill-and-drain
/// rounds where the producer must sleep each time take seconds without the wake-up,
/// milliseconds with it.
#[test]
fn a_producer_waiting_for_space_is_woken_each_time() {
    let r = RingName::created("spacewake", 4096, 2);
    let mut c = Consumer::attach(r.s()).expect("consumer");
    let mut p = Producer::attach(r.s()).expect("producer");
    let capacity = c.geometry().capacity() as usize;
    const ROUNDS: usize = 40;
    let (tx, rx) = mpsc::channel::<()>();
    let producer = std::thread::spawn(move || {
        for round in 0..ROUNDS {
            p.put(&vec![round as u8; capacity], Some(Duration::from_secs(20))).expect("fill");
            tx.send(()).expect("send");
        }
    });
    let start = Instant::now();
    let mut buf = vec![0u8; capacity];
    for round in 0..ROUNDS {
        rx.recv_timeout(Duration::from_secs(20)).expect("filled");
        // The next fill is already waiting (or about to) while this one is read out.
        assert_eq!(c.get(&mut buf, capacity as u64, Some(Duration::from_secs(20))).expect("drain"), capacity);
        assert!(buf.iter().all(|&b| b == round as u8), "round {round}");
    }
    producer.join().expect("join");
    let took = start.elapsed();
    assert!(took < Duration::from_millis(ROUNDS as u64 * 100 / 3), "{ROUNDS} rounds took {took:?}: wake-ups missed");
}
