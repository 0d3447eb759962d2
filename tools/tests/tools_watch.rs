//! ring::Watch, the read-only sampler behind `ringbuffer top`, on rings changed under it
//! by other processes (here: plain file writes into /dev/shm/NAME): a corrupt pointer, a
//! ring shrunk, removed or formatted while watched. Each is an error or "not current",
//! never a crash (a shrunk mapping read is SIGBUS) and never a bogus position.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

#[path = "../../tests/common/mod.rs"]
mod common;

use common::RingName;
use daqflow::ring::{self, Consumer, Producer, Watch};

#[test]
fn positions_follow_the_clients() {
    let r = RingName::created("watch-pos", 4096, 2);
    let w = Watch::open(r.s()).expect("watch");
    let mut c = Consumer::attach(r.s()).expect("consumer");
    let mut p = Producer::attach(r.s()).expect("producer");
    p.put(&[1u8; 100], None).expect("put");
    let s = w.sample().expect("sample");
    assert_eq!(s.producer_pid, std::process::id() as i32);
    assert_eq!(s.put, 100);
    assert_eq!(s.consumers.len(), 1);
    assert_eq!(s.backlog(s.consumers[0].get), 100);
    let mut buf = [0u8; 40];
    c.get(&mut buf, 40, None).expect("get");
    let s = w.sample().expect("sample");
    assert_eq!(s.backlog(s.consumers[0].get), 60);
    assert!(w.is_current());
}

#[test]
fn a_corrupt_pointer_is_an_error() {
    let r = RingName::created("watch-bad", 4096, 2);
    let w = Watch::open(r.s()).expect("watch");
    // The put pointer is the producer record's first word, at offset 80.
    let f = OpenOptions::new().write(true).open(r.path()).expect("open");
    f.write_all_at(&u64::MAX.to_le_bytes(), 80).expect("poke");
    let e = w.sample().expect_err("a put pointer outside the ring");
    assert_eq!(e.errno(), libc::EBADMSG, "{}", e.message());
}

#[test]
fn a_ring_shrunk_while_watched_is_an_error_not_a_crash() {
    for len in [0u64, 100, 4096] {
        let r = RingName::created("watch-shrunk", 4096, 2);
        let w = Watch::open(r.s()).expect("watch");
        OpenOptions::new().write(true).open(r.path()).expect("open").set_len(len).expect("truncate");
        let e = w.sample().expect_err("sampling a shrunk ring");
        assert_eq!(e.errno(), libc::EBADMSG, "{}", e.message());
        assert!(e.message().contains(r.s()), "{}", e.message());
        assert!(!w.is_current(), "a ring shrunk to {len} bytes is not the one opened");
    }
}

#[test]
fn removed_and_formatted_rings_are_not_current() {
    let r = RingName::created("watch-gone", 4096, 2);
    let w = Watch::open(r.s()).expect("watch");
    ring::format(r.s(), 3).expect("format");
    assert!(!w.is_current(), "formatted for 3 consumers");
    let w = Watch::open(r.s()).expect("watch again");
    assert!(w.is_current());
    ring::remove(r.s()).expect("remove");
    assert!(!w.is_current(), "removed");
    // The memory stays mapped: sampling a removed ring is harmless.
    assert!(w.sample().is_ok());
}
