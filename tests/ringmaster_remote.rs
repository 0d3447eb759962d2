//! REMOTE against the real daemon: the ring's bytes, whole and in order, from the moment
//! of the request; back-pressure from a reader that stops; a reader that leaves.

mod portmgr_support;
mod ringmaster_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use daqflow::ring::{self, Producer};
use ringmaster_support::{Master, TestRing, eventually, rss_kib};

const PUT_WAIT: Option<Duration> = Some(Duration::from_secs(10));

/// Byte `i` of the test stream: not periodic at any ring or buffer size used here.
fn byte_at(i: u64) -> u8 {
    (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8 ^ (i >> 12) as u8
}

fn chunk(from: u64, len: usize) -> Vec<u8> {
    (0..len as u64).map(|k| byte_at(from + k)).collect()
}

/// Sends REMOTE and reads the reply line byte by byte, as NSCLDAQ's client does.
fn remote(master: &Master, ring: &str) -> TcpStream {
    let mut s = TcpStream::connect(master.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("REMOTE {ring}\n").as_bytes()).unwrap();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while s.read(&mut b).unwrap() == 1 {
        line.push(b[0]);
        if b[0] == b'\n' {
            break;
        }
    }
    assert_eq!(String::from_utf8_lossy(&line), "OK BINARY FOLLOWS\r\n");
    s
}

/// Reads `n` bytes and checks they are stream bytes `from..from + n`.
fn read_and_check(s: &mut TcpStream, from: u64, n: u64) {
    let mut buf = vec![0u8; 256 * 1024];
    let mut at = from;
    while at < from + n {
        let want = ((from + n - at) as usize).min(buf.len());
        let got = s.read(&mut buf[..want]).unwrap();
        assert!(got > 0, "the stream ended at byte {at} of {}", from + n);
        for (k, &b) in buf[..got].iter().enumerate() {
            assert_eq!(b, byte_at(at + k as u64), "byte {} differs", at + k as u64);
        }
        at += got as u64;
    }
}

fn sender_attached(ring: &TestRing) -> bool {
    ring::usage(ring.s()).map(|u| u.consumers.len() == 1).unwrap_or(false)
}

#[test]
fn streams_every_byte_in_order_from_the_request_on() {
    let master = Master::start(&[]);
    let ring = TestRing::new("stream", 1024 * 1024, 4);
    let mut producer = Producer::attach(ring.s()).unwrap();
    // Put before the request: not part of the stream.
    producer.put(b"EARLIER", PUT_WAIT).unwrap();
    let mut s = remote(&master, ring.s());
    eventually("the sender to attach", || sender_attached(&ring));
    const TOTAL: u64 = 48 * 1024 * 1024;
    let writer = std::thread::spawn(move || {
        let mut at = 0u64;
        let mut size = 1usize;
        while at < TOTAL {
            let len = size.min((TOTAL - at) as usize);
            producer.put(&chunk(at, len), PUT_WAIT).unwrap();
            at += len as u64;
            size = size * 7 % 70_001 + 1;
        }
        producer.detach().unwrap();
    });
    read_and_check(&mut s, 0, TOTAL);
    writer.join().unwrap();
    drop(s);
    eventually("the sender to detach after the reader left", || !sender_attached(&ring));
    master.wait_log(&format!("stopped sending ring {} to 127.0.0.1 after {TOTAL} bytes: the peer closed", ring.s()));
}

#[test]
fn a_reader_that_stops_reading_holds_the_producer_back_without_memory_growth() {
    let master = Master::start(&[]);
    let ring = TestRing::new("stall", 256 * 1024, 4);
    let mut producer = Producer::attach(ring.s()).unwrap();
    let mut s = remote(&master, ring.s());
    eventually("the sender to attach", || sender_attached(&ring));
    let rss_before = rss_kib(master.pid());
    // Nobody reads: the socket buffers fill, then the ring, then the producer waits.
    let mut put = 0u64;
    let block = 64 * 1024;
    let started = Instant::now();
    loop {
        match producer.put(&chunk(put, block), Some(Duration::from_millis(300))) {
            Ok(()) => put += block as u64,
            Err(e) if e.errno() == libc::ETIMEDOUT => break,
            Err(e) => panic!("put: {e}"),
        }
        assert!(put < 256 * 1024 * 1024, "256 MiB went into a ring nobody reads: no back-pressure");
        assert!(started.elapsed() < Duration::from_secs(30));
    }
    std::thread::sleep(Duration::from_millis(500));
    let rss_after = rss_kib(master.pid());
    assert!(
        rss_after < rss_before + 16 * 1024,
        "the daemon grew from {rss_before} KiB to {rss_after} KiB while its reader stalled"
    );
    // Nothing was lost: reading resumes where it stopped and the producer goes on.
    let reader = std::thread::spawn(move || {
        read_and_check(&mut s, 0, put + 4 * block as u64);
        s
    });
    for k in 0..4u64 {
        producer.put(&chunk(put + k * block as u64, block), PUT_WAIT).unwrap();
    }
    let _s = reader.join().unwrap();
    producer.detach().unwrap();
}

#[test]
fn a_reader_that_disconnects_mid_stream_releases_the_sender() {
    let master = Master::start(&[]);
    let ring = TestRing::new("leave", 256 * 1024, 4);
    let mut producer = Producer::attach(ring.s()).unwrap();
    let mut s = remote(&master, ring.s());
    eventually("the sender to attach", || sender_attached(&ring));
    producer.put(&chunk(0, 100_000), PUT_WAIT).unwrap();
    read_and_check(&mut s, 0, 50_000);
    // Gone with data unread and more coming: the sender notices and detaches, and the
    // producer is no longer held back by it.
    drop(s);
    let mut at = 100_000u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    while sender_attached(&ring) {
        assert!(Instant::now() < deadline, "the sender stayed attached:\n{}", master.log_text());
        producer.put(&chunk(at, 10_000), PUT_WAIT).unwrap();
        at += 10_000;
    }
    for _ in 0..100 {
        producer.put(&chunk(at, 10_000), Some(Duration::from_secs(1))).unwrap();
        at += 10_000;
    }
    producer.detach().unwrap();
    master.wait_log("the peer closed");
}

#[test]
fn an_idle_reader_that_leaves_is_noticed() {
    let master = Master::start(&[]);
    let ring = TestRing::new("idle", 65536, 4);
    let s = remote(&master, ring.s());
    eventually("the sender to attach", || sender_attached(&ring));
    drop(s);
    eventually("the sender to detach from an idle ring", || !sender_attached(&ring));
}

#[test]
fn several_readers_each_get_the_whole_stream() {
    let master = Master::start(&[]);
    let ring = TestRing::new("fanout", 512 * 1024, 8);
    let mut producer = Producer::attach(ring.s()).unwrap();
    let readers: Vec<TcpStream> = (0..3).map(|_| remote(&master, ring.s())).collect();
    eventually("three senders", || ring::usage(ring.s()).map(|u| u.consumers.len() == 3).unwrap_or(false));
    const TOTAL: u64 = 8 * 1024 * 1024;
    let handles: Vec<_> =
        readers.into_iter().map(|mut s| std::thread::spawn(move || read_and_check(&mut s, 0, TOTAL))).collect();
    let mut at = 0;
    while at < TOTAL {
        producer.put(&chunk(at, 8192), PUT_WAIT).unwrap();
        at += 8192;
    }
    for h in handles {
        h.join().unwrap();
    }
    producer.detach().unwrap();
}

#[test]
fn removing_the_ring_ends_the_stream() {
    let master = Master::start(&[]);
    let ring = TestRing::new("removed", 65536, 4);
    let mut s = remote(&master, ring.s());
    eventually("the sender to attach", || sender_attached(&ring));
    ring::remove(ring.s()).unwrap();
    // The reader sees the end of the stream instead of waiting forever on a dead ring.
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    master.wait_log(&format!("ring {} was removed or replaced", ring.s()));
}

#[test]
fn the_sender_does_not_announce_itself_to_its_own_daemon() {
    // The daemon's library finds the port manager the daemon is registered with, as any
    // program on this host would: without `master::disable` the sender's attach would
    // CONNECT to the daemon itself (a connection to itself, a slot it would free itself).
    let master = Master::start(&[]);
    let ring = TestRing::new("self", 65536, 4);
    let s = remote(&master, ring.s());
    // Logged after the sender's attach returned, so after any CONNECT it made.
    master.wait_log(&format!("sending ring {} to 127.0.0.1", ring.s()));
    assert!(sender_attached(&ring));
    let own = format!("pid {}", master.pid());
    let log = master.log_text();
    assert!(
        !log.lines().any(|l| (l.contains("CONNECT") || l.contains("REGISTER")) && l.contains(&own)),
        "the daemon announced its own sender to itself:\n{log}"
    );
    drop(s);
    eventually("the sender to detach", || !sender_attached(&ring));
    master.wait_log("the peer closed");
    let log = master.log_text();
    assert!(!log.lines().any(|l| l.contains("DISCONNECT") && l.contains(&own)), "{log}");
}
