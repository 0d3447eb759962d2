//! The ring master's REMOTE sender on its own (no daemon): a stream ends, saying why,
//! when its ring goes away under it, and never hands the peer bytes it did not put.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::RingName;
use daqflow::ring::{self, Consumer, Producer};
use daqflow_daemons::ringmaster::sender::{self, End};
use daqflow_daemons::ringmaster::server::DEFAULT_STALL_TIMEOUT;

#[test]
fn a_ring_removed_before_its_stream_starts_still_ends_it() {
    // The daemon attaches while reading the request and starts streaming afterwards; a
    // removal in between once went unnoticed (the ring was compared with its name as it
    // was when streaming began, already gone) and the reader waited forever.
    let ring = RingName::created("gone-early", 65536, 4);
    let consumer = Consumer::attach(ring.s()).unwrap();
    ring::remove(ring.s()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let _reader = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (socket, _) = listener.accept().unwrap();
    let stop = AtomicBool::new(false);
    let streaming = std::thread::spawn(move || sender::stream(consumer, &socket, &stop, DEFAULT_STALL_TIMEOUT));
    let started = Instant::now();
    while !streaming.is_finished() {
        assert!(started.elapsed() < Duration::from_secs(10), "the stream did not notice the removed ring");
        std::thread::sleep(Duration::from_millis(50));
    }
    match streaming.join().unwrap() {
        (End::Failed(why), 0) => assert!(why.contains("removed or replaced"), "{why}"),
        (other, bytes) => panic!("ended after {bytes} bytes with {other:?}"),
    }
}

#[test]
fn a_ring_truncated_under_the_sender_ends_the_stream_without_zeros() {
    // The sender hands ring memory straight to send(2). Pages past the truncation give
    // the kernel EFAULT (not SIGBUS); the rest of the page the new size ends in reads as
    // zeros without any fault, which must not reach the peer as data. Either way the
    // stream ends, saying why.
    // (bytes put from offset 160, new size): all in the first page, of which 1000 bytes
    // stay; or over five pages, of which the first two partly stay.
    for (len, size) in [(3000usize, 1000u64), (20000, 5000)] {
        let ring = RingName::created("shrunk-send", 65536, 4);
        let consumer = Consumer::attach(ring.s()).unwrap();
        let mut producer = Producer::attach(ring.s()).unwrap();
        producer.put(&vec![0xab; len], Some(Duration::ZERO)).unwrap();
        std::fs::OpenOptions::new().write(true).open(format!("/dev/shm/{}", ring.s())).unwrap().set_len(size).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut reader = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (socket, _) = listener.accept().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let streaming = std::thread::spawn(move || sender::stream(consumer, &socket, &stopping, DEFAULT_STALL_TIMEOUT));
        reader.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = Vec::new();
        let eof = reader.read_to_end(&mut got).is_ok();
        stop.store(true, Ordering::Relaxed);
        let (end, sent) = streaming.join().unwrap();
        let what = format!("{len} bytes, truncated to {size}: after {sent} bytes, {end:?}");
        assert!(
            !got.contains(&0),
            "{what}: the peer got {} zero bytes among {}",
            got.iter().filter(|&&b| b == 0).count(),
            got.len()
        );
        assert!(eof, "{what}: the stream did not end in 10 s");
        match end {
            End::Failed(why) => assert!(why.contains("truncated"), "{what}"),
            _ => panic!("{what}"),
        }
        drop(producer);
    }
}
