//! FRIB's `nscldaq_ringbuffer` 0.8.9 and daqflow on the same ring at the same time, each
//! client a process of its own, every byte of the stream checked by every consumer.
//!
//! FRIB's producer computes free space without NSCLDAQ's one-byte gap and so can fill a
//! ring completely, after which it looks empty (its defect, see README). The exchanges
//! here use records that do not divide the ring's data size and consumers that take
//! whole records, so that a full ring never happens; the last test shows the defect with
//! records that do divide it.

use std::os::unix::fs::FileExt;
use std::process::Command;

use daqflow::ring;
use daqflow_interop::process::{Peer, RingName, daqflow_program, wait_until_sleeping};
use nscldaq_ringbuffer::ringbuffer::RingBufferMap;

const FRIB: &str = env!("CARGO_BIN_EXE_frib-peer");
const DAQFLOW: &str = env!("CARGO_BIN_EXE_daqflow-peer");

/// 65536 bytes and 4 consumers requested: 69472 data bytes, which 1000 does not divide.
const DATA: u64 = 65536;
const DATA_BYTES: u64 = 69472;
const RECORD: &str = "1000";
const TOTAL: &str = "8000000";

fn label(program: &str, role: &str) -> String {
    let who = if program == FRIB { "FRIB" } else { "daqflow" };
    format!("{who} {role}")
}

fn consumer(program: &str, ring: &RingName, total: &str, extra: &[&str]) -> Peer {
    let mut args = vec!["consume", ring.s(), RECORD, total];
    args.extend_from_slice(extra);
    let mut peer = Peer::start(&label(program, "consumer"), program, &args, &[]);
    peer.expect("attached");
    peer
}

fn producer(program: &str, ring: &RingName, record: &str, total: &str, consumers: usize, extra: &[&str]) -> Peer {
    let n = consumers.to_string();
    let mut args = vec!["produce", ring.s(), record, total, "--consumers", &n];
    args.extend_from_slice(extra);
    let mut peer = Peer::start(&label(program, "producer"), program, &args, &[]);
    peer.expect("attached");
    peer
}

/// Every consumer reads the whole stream, then every client exits cleanly.
fn complete(mut producer: Peer, consumers: Vec<Peer>) {
    producer.expect("done");
    for mut c in consumers {
        c.expect("done");
        c.finish().assert_success();
    }
    producer.finish().assert_success();
}

/// Consumers attach and wait first: a waiting daqflow consumer must leave nothing in the
/// ring that keeps FRIB's producer from opening it afterwards.
#[test]
fn a_frib_producer_feeds_daqflow_consumers() {
    let ring = RingName::create("frib-to-daqflow", DATA, 4);
    let consumers: Vec<Peer> = (0..2).map(|_| consumer(DAQFLOW, &ring, TOTAL, &[])).collect();
    consumers.iter().for_each(|c| wait_until_sleeping(c.pid()));
    let p = producer(FRIB, &ring, RECORD, TOTAL, 2, &[]);
    complete(p, consumers);
}

/// The daqflow producer attaches first: FRIB's consumers open the ring after it did.
#[test]
fn a_daqflow_producer_feeds_frib_consumers() {
    let ring = RingName::create("daqflow-to-frib", DATA, 4);
    let p = producer(DAQFLOW, &ring, RECORD, TOTAL, 2, &[]);
    let consumers: Vec<Peer> = (0..2).map(|_| consumer(FRIB, &ring, TOTAL, &[])).collect();
    complete(p, consumers);
}

/// One FRIB and one daqflow consumer of one stream, under either producer.
#[test]
fn a_frib_and_a_daqflow_consumer_together() {
    let ring = RingName::create("mixed-daqflow", DATA, 4);
    let p = producer(DAQFLOW, &ring, RECORD, TOTAL, 2, &[]);
    let consumers = vec![consumer(DAQFLOW, &ring, TOTAL, &[]), consumer(FRIB, &ring, TOTAL, &[])];
    complete(p, consumers);

    let ring = RingName::create("mixed-frib", DATA, 4);
    let waiting = consumer(DAQFLOW, &ring, TOTAL, &[]);
    wait_until_sleeping(waiting.pid());
    let consumers = vec![waiting, consumer(FRIB, &ring, TOTAL, &[])];
    let p = producer(FRIB, &ring, RECORD, TOTAL, 2, &[]);
    complete(p, consumers);
}

/// FRIB's `create` writes top offset = the object's size (NSCLDAQ: size - 1) and does not
/// round to pages. daqflow refuses such a ring, saying why and what cures it; once
/// `ringbuffer format` has rewritten the header, both use it together.
#[test]
fn a_ring_made_by_frib_is_refused_with_the_cure_then_formatted_and_shared() {
    let ring = RingName::new("frib-made");
    RingBufferMap::create(&ring.path(), DATA as u32).expect("FRIB's create");
    let size = std::fs::metadata(ring.path()).unwrap().len();
    assert_eq!(size, 80 + 16 * 101 + DATA, "FRIB's object size");

    let err = ring::Consumer::attach(ring.s()).err().expect("daqflow attaches to FRIB's unformatted ring");
    assert_eq!(err.errno(), libc::EBADMSG, "{err}");
    let text = err.to_string();
    for needed in [format!("top offset {size}"), "FRIB".into(), format!("ringbuffer format {}", ring.s())] {
        assert!(text.contains(&needed), "the refusal does not say {needed:?}: {text}");
    }

    let out = Command::new(daqflow_program("ringbuffer")).args(["format", ring.s()]).output().unwrap();
    assert!(out.status.success(), "ringbuffer format: {}", String::from_utf8_lossy(&out.stderr));
    let usage = ring::usage(ring.s()).expect("daqflow reads the formatted ring");
    assert_eq!(usage.data_bytes, size - (80 + 16 * 101), "{usage:?}");

    let waiting = consumer(DAQFLOW, &ring, TOTAL, &[]);
    wait_until_sleeping(waiting.pid());
    let consumers = vec![waiting, consumer(FRIB, &ring, TOTAL, &[])];
    let p = producer(FRIB, &ring, RECORD, TOTAL, 2, &[]);
    complete(p, consumers);
}

/// A ring made by FRIB's `create` and then formatted by daqflow's `ringbuffer format`.
fn frib_made_and_formatted(tag: &str) -> RingName {
    let ring = RingName::new(tag);
    RingBufferMap::create(&ring.path(), DATA as u32).expect("FRIB's create");
    let out = Command::new(daqflow_program("ringbuffer")).args(["format", ring.s()]).output().unwrap();
    assert!(out.status.success(), "ringbuffer format: {}", String::from_utf8_lossy(&out.stderr));
    ring
}

/// FRIB's view of a ring and daqflow's agree: producer, each consumer's pid and backlog,
/// the largest backlog; free space differs by FRIB's missing one-byte gap. Rings made by
/// daqflow under either producer, and one made by FRIB (then formatted).
#[test]
fn frib_and_daqflow_agree_on_a_rings_usage() {
    type MakeRing = fn() -> RingName;
    let cases: [(&str, MakeRing); 3] = [
        (DAQFLOW, || RingName::create("usage-daqflow", DATA, 4)),
        (FRIB, || RingName::create("usage-frib", DATA, 4)),
        (FRIB, || frib_made_and_formatted("usage-frib-made")),
    ];
    for (producer_program, make) in cases {
        let ring = make();
        // Each consumer reads part of what is put, then holds its place.
        let mut frib = consumer(FRIB, &ring, "20000", &["--hold"]);
        let mut daq = consumer(DAQFLOW, &ring, "35000", &["--hold"]);
        let mut p = producer(producer_program, &ring, RECORD, "50000", 2, &["--hold"]);
        p.expect("done");
        frib.expect("done");
        daq.expect("done");

        let ours = ring::usage(ring.s()).unwrap();
        let theirs = RingBufferMap::new(&ring.path()).expect("FRIB maps the ring").get_usage();
        let what = format!("{} producer on {}: daqflow {ours:?}, FRIB {theirs:?}", p.label, ring.s());
        assert_eq!(ours.producer_pid, p.pid(), "{what}");
        assert_eq!(theirs.producer_pid as i32, p.pid(), "{what}");
        let backlogs: Vec<(i32, u64)> = ours.consumers.iter().map(|c| (c.pid, c.backlog)).collect();
        assert_eq!(backlogs, [(frib.pid(), 30000), (daq.pid(), 15000)], "{what}");
        let their_backlogs: Vec<(i32, u64)> =
            theirs.consumer_usage.iter().map(|c| (c.pid as i32, c.available as u64)).collect();
        assert_eq!(their_backlogs, backlogs, "{what}");
        assert_eq!((ours.max_get, theirs.max_queued as u64), (30000, 30000), "{what}");
        assert_eq!(ours.put_space, ours.data_bytes - 1 - 30000, "{what}");
        assert_eq!(theirs.free_space as u64, ours.put_space + 1, "{what}");

        for peer in [p, frib, daq] {
            peer.finish().assert_success();
        }
        let after = ring::usage(ring.s()).unwrap();
        assert_eq!((after.producer_pid, after.consumers.len()), (-1, 0), "{after:?}");
    }
}

fn status(ring: &RingName) -> String {
    let out = Command::new(daqflow_program("ringbuffer")).args(["status", ring.s()]).output().unwrap();
    assert!(out.status.success(), "ringbuffer status: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// FRIB's defect: with records that divide the data size, its producer fills the ring
/// to the last byte, and the full ring then looks empty to a daqflow consumer, whose
/// unread data is lost. `ringbuffer status` warns about a FRIB producer, and only then.
#[test]
fn a_frib_producer_can_fill_a_ring_and_status_says_it_may_lose_data() {
    let ring = RingName::create("frib-full", DATA, 4);
    let record = (DATA_BYTES / 8).to_string();
    let total = DATA_BYTES.to_string();
    let mut idle = consumer(DAQFLOW, &ring, "0", &["--hold"]);
    idle.expect("done");
    let mut p = producer(FRIB, &ring, &record, &total, 1, &["--hold"]);
    p.expect("done");
    let usage = ring::usage(ring.s()).unwrap();
    assert_eq!(usage.consumers[0].backlog, 0, "FRIB's producer filled the ring and it looks empty: {usage:?}");
    assert!(!ring::producer_is_daqflow(ring.s()).unwrap(), "FRIB's producer taken for daqflow's");
    let text = status(&ring);
    assert!(text.contains("may lose data"), "no warning for a FRIB producer:\n{text}");
    p.finish().assert_success();

    // A daqflow producer: no warning.
    let mut p = producer(DAQFLOW, &ring, RECORD, "1000", 1, &["--hold"]);
    p.expect("done");
    assert!(ring::producer_is_daqflow(ring.s()).unwrap(), "daqflow's producer not recognised");
    let text = status(&ring);
    assert!(!text.contains("may lose data"), "a warning for a daqflow producer:\n{text}");
    p.finish().assert_success();

    // Some other producer (NSCLDAQ's C++ class, say: here a live process's pid written
    // into the producer record): nothing known, nothing said.
    let mut other = Command::new("sleep").arg("60").spawn().unwrap();
    let file = std::fs::OpenOptions::new().read(true).write(true).open(ring.path()).unwrap();
    file.write_all_at(&(other.id() as i32).to_le_bytes(), 80 + 8).unwrap();
    assert!(!ring::producer_is_daqflow(ring.s()).unwrap(), "another program's producer taken for daqflow's");
    let text = status(&ring);
    let _ = other.kill();
    let _ = other.wait();
    assert!(text.contains(&other.id().to_string()), "{text}");
    assert!(!text.contains("may lose data"), "a warning for a producer not known to be FRIB's:\n{text}");
    idle.finish().assert_success();
}
