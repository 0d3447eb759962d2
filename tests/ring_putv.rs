//! The batch put: `Producer::put_vectored` and `ring_putv` (issue 13). Records go whole
//! and in order; the count says how many went; a record that can never fit fails the
//! call with nothing put; the timeout bounds the whole call.

use std::io::IoSlice;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

mod common;

use common::RingName;
use daqflow::ffi::ring as ffi;
use daqflow::ring::{Consumer, Producer};

/// create(4096, 2) gives 8064 data bytes, so 8063 bytes fit at once.
const SMALL_CAP: usize = 8063;

fn record(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|k| (i * 31 + k) as u8).collect()
}

fn drain(c: &mut Consumer) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        match c.get(&mut buf, 1, Some(Duration::ZERO)) {
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.errno() == libc::ETIMEDOUT => return out,
            Err(e) => panic!("get: {e}"),
        }
    }
}

#[test]
fn every_record_goes_whole_and_in_order() {
    let ring = RingName::created("putv-order", 4096, 2);
    let mut c = Consumer::attach(ring.s()).expect("consumer");
    let mut p = Producer::attach(ring.s()).expect("producer");
    // Sizes 0..=60 (an empty record included), 1830 bytes, several batches' worth of wraps.
    let records: Vec<Vec<u8>> = (0..61).map(|i| record(i, i)).collect();
    let mut expect = Vec::new();
    for round in 0..20 {
        let slices: Vec<IoSlice> = records.iter().map(|r| IoSlice::new(r)).collect();
        assert_eq!(
            p.put_vectored(&slices, Some(Duration::ZERO)).expect("put_vectored"),
            records.len(),
            "round {round}"
        );
        records.iter().for_each(|r| expect.extend_from_slice(r));
        assert_eq!(drain(&mut c), expect, "round {round}");
        expect.clear();
    }
    assert_eq!(p.put_vectored(&[], Some(Duration::ZERO)).expect("no records"), 0);
}

#[test]
fn a_full_ring_puts_the_records_that_fit_and_says_how_many() {
    let ring = RingName::created("putv-partial", 4096, 2);
    let mut c = Consumer::attach(ring.s()).expect("consumer");
    let mut p = Producer::attach(ring.s()).expect("producer");
    let records: Vec<Vec<u8>> = (0..10).map(|i| record(i, 1000)).collect();
    let slices: Vec<IoSlice> = records.iter().map(|r| IoSlice::new(r)).collect();
    // 8 records of 1000 fit in 8063 bytes; the 9th does not, and is not split.
    assert_eq!(p.put_vectored(&slices, Some(Duration::ZERO)).expect("partial"), 8);
    let got = drain(&mut c);
    assert_eq!(got, records[..8].concat());
    // The caller resumes with the first record not put.
    assert_eq!(p.put_vectored(&slices[8..], Some(Duration::ZERO)).expect("rest"), 2);
    assert_eq!(drain(&mut c), records[8..].concat());
    // Nothing fits: ETIMEDOUT, as for a single put.
    p.put(&vec![7u8; SMALL_CAP], Some(Duration::ZERO)).expect("fill");
    let e = p.put_vectored(&slices, Some(Duration::ZERO)).expect_err("no space");
    assert_eq!(e.errno(), libc::ETIMEDOUT, "{e}");
}

#[test]
fn a_record_that_can_never_fit_fails_the_call_with_nothing_put() {
    let ring = RingName::created("putv-toobig", 4096, 2);
    let mut c = Consumer::attach(ring.s()).expect("consumer");
    let mut p = Producer::attach(ring.s()).expect("producer");
    let small = record(0, 10);
    let huge = vec![1u8; SMALL_CAP + 1];
    let e = p.put_vectored(&[IoSlice::new(&small), IoSlice::new(&huge)], None).expect_err("too big");
    assert_eq!(e.errno(), libc::EMSGSIZE, "{e}");
    assert!(e.message().contains("record 1 of 2"), "{e}");
    assert_eq!(drain(&mut c), Vec::<u8>::new(), "the record before the impossible one was put");
    // An open reservation comes first in the stream: a batch cannot jump ahead of it.
    p.reserve(10, Some(Duration::ZERO)).expect("reserve");
    let e = p.put_vectored(&[IoSlice::new(&small)], Some(Duration::ZERO)).expect_err("behind a reservation");
    assert_eq!(e.errno(), libc::EBUSY, "{e}");
}

#[test]
fn the_timeout_bounds_the_whole_call_not_each_wait() {
    let ring = RingName::created("putv-timeout", 4096, 2);
    let mut c = Consumer::attach(ring.s()).expect("consumer");
    let mut p = Producer::attach(ring.s()).expect("producer");
    let records: Vec<Vec<u8>> = (0..40).map(|i| record(i, 1000)).collect();
    // A consumer that frees 1000 bytes every 50 ms until told to stop (5 s at most): each
    // record after the 8th waits for it.
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1000];
        let mut got = Vec::new();
        let start = Instant::now();
        while !stopped.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
            if let Ok(n) = c.get(&mut buf, 1000, Some(Duration::ZERO)) {
                got.extend_from_slice(&buf[..n]);
            }
        }
        (c, got)
    });
    let slices: Vec<IoSlice> = records.iter().map(|r| IoSlice::new(r)).collect();
    let start = Instant::now();
    let n = p.put_vectored(&slices, Some(Duration::from_millis(300))).expect("partial within the timeout");
    let took = start.elapsed();
    stop.store(true, Ordering::SeqCst);
    // Timed per wait instead, the call would last as long as the consumer keeps reading.
    assert!(took < Duration::from_millis(1500), "a 300 ms timeout took {took:?}");
    assert!((8..40).contains(&n), "{n} records put");
    let (mut c, mut got) = reader.join().expect("reader");
    got.extend(drain(&mut c));
    assert_eq!(got, records[..n].concat());
}

#[test]
fn a_batch_many_times_the_ring_goes_through_to_a_sleeping_consumer() {
    let ring = RingName::created("putv-stream", 4096, 2);
    let mut c = Consumer::attach(ring.s()).expect("consumer");
    let mut p = Producer::attach(ring.s()).expect("producer");
    // 4000 records of 64 bytes: 32 rings' worth, so the producer waits for space and the
    // consumer for data, each woken by the other.
    let records: Vec<Vec<u8>> = (0..4000).map(|i| record(i, 64)).collect();
    let expect = records.concat();
    let total = expect.len();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut got = Vec::with_capacity(total);
        let mut buf = vec![0u8; 4096];
        while got.len() < total {
            match c.get(&mut buf, 1, Some(Duration::from_secs(10))) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => panic!("get after {} bytes: {e}", got.len()),
            }
        }
        let _ = tx.send(got);
    });
    let slices: Vec<IoSlice> = records.iter().map(|r| IoSlice::new(r)).collect();
    // Bounded, so a lost wake-up fails the test instead of hanging it.
    assert_eq!(p.put_vectored(&slices, Some(Duration::from_secs(20))).expect("put_vectored"), records.len());
    let got = rx.recv_timeout(Duration::from_secs(20)).expect("the consumer got every byte in time");
    assert!(got == expect, "the stream differs from the records");
}

/// The C ABI: iovecs checked before anything moves, counts and errors as documented.
#[test]
fn ring_putv_checks_its_iovecs_and_returns_the_count() {
    let ring = RingName::created("putv-ffi", 4096, 2);
    let name = ring.c();
    let mut pp = std::ptr::null_mut();
    let mut cc = std::ptr::null_mut();
    // SAFETY: the handles come from attach and are detached last; every buffer and iovec
    // array outlives the call it is passed to, and counts match their arrays.
    unsafe {
        assert_eq!(ffi::ring_attach_consumer(name.as_ptr(), &mut cc), 0);
        assert_eq!(ffi::ring_attach_producer(name.as_ptr(), &mut pp), 0);
        let a = record(1, 100);
        let b = record(2, 200);
        let iov = |d: &[u8]| libc::iovec { iov_base: d.as_ptr() as *mut libc::c_void, iov_len: d.len() };
        let empty = libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 };
        let good = [iov(&a), empty, iov(&b)];
        assert_eq!(ffi::ring_putv(pp, good.as_ptr(), 3, 0), 3);
        assert_eq!(ffi::ring_putv(pp, std::ptr::null(), 0, 0), 0);
        assert_eq!(ffi::ring_putv(pp, std::ptr::null(), 1, 0), -(libc::EINVAL as isize));
        let null_data = [iov(&a), libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 5 }];
        assert_eq!(ffi::ring_putv(pp, null_data.as_ptr(), 2, 0), -(libc::EINVAL as isize));
        let big = vec![0u8; SMALL_CAP + 1];
        let too_big = [iov(&a), iov(&big)];
        assert_eq!(ffi::ring_putv(pp, too_big.as_ptr(), 2, 0), -(libc::EMSGSIZE as isize));
        assert_eq!(ffi::ring_putv(cc, good.as_ptr(), 3, 0), -(libc::EINVAL as isize), "a consumer handle");
        assert_eq!(ffi::ring_putv(pp, good.as_ptr(), 3, -2), -(libc::EINVAL as isize), "timeout -2");
        // Only the first good batch went in.
        let mut buf = vec![0u8; 1000];
        let n = ffi::ring_get(cc, buf.as_mut_ptr().cast(), 1, buf.len(), 0);
        assert_eq!(n, 300);
        assert_eq!(&buf[..300], [a.clone(), b.clone()].concat().as_slice());
        ffi::ring_detach(pp);
        ffi::ring_detach(cc);
    }
}

/// What can happen to a ring while a batch waits for space in it: the consumer holding
/// it back leaves (the batch goes on, whole), or someone truncates the object (the
/// records published before are counted, the next call is EBADMSG; no SIGBUS, no hang).
#[test]
fn a_batch_waiting_for_space_survives_its_consumer_leaving_and_its_ring_truncated() {
    for truncate in [false, true] {
        let ring = RingName::created("putv-meanwhile", 4096, 2);
        let c = Consumer::attach(ring.s()).expect("consumer");
        let mut p = Producer::attach(ring.s()).expect("producer");
        let records: Vec<Vec<u8>> = (0..20).map(|i| record(i, 1000)).collect();
        let path = ring.path();
        let meddler = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            if truncate {
                std::fs::OpenOptions::new().write(true).open(&path).expect("open").set_len(0).expect("truncate");
            }
            drop(c);
        });
        let slices: Vec<IoSlice> = records.iter().map(|r| IoSlice::new(r)).collect();
        let start = Instant::now();
        let put = p.put_vectored(&slices, Some(Duration::from_secs(20)));
        let took = start.elapsed();
        meddler.join().expect("meddler");
        assert!(took < Duration::from_secs(10), "truncate {truncate}: the batch took {took:?}");
        if truncate {
            // The first 8 records were published before the wait; the rest went nowhere.
            assert_eq!(put.expect("the records published before"), 8);
            let again = p.put_vectored(&slices[..1], Some(Duration::ZERO)).expect_err("a truncated ring");
            assert_eq!(again.errno(), libc::EBADMSG, "{}", again.message());
        } else {
            assert_eq!(put.expect("whole once the consumer left"), 20);
        }
    }
}

#[test]
fn a_batch_behind_an_open_reservation_is_refused_with_nothing_put() {
    let ring = RingName::created("putv-reserved", 4096, 2);
    let mut c = Consumer::attach(ring.s()).expect("consumer");
    let mut p = Producer::attach(ring.s()).expect("producer");
    p.reserve(10, Some(Duration::ZERO)).expect("reserve");
    let records = [record(1, 5), record(2, 0)];
    let slices: Vec<IoSlice> = records.iter().map(|r| IoSlice::new(r)).collect();
    let refused = p.put_vectored(&slices, Some(Duration::ZERO)).expect_err("behind a reservation");
    assert_eq!(refused.errno(), libc::EBUSY, "{}", refused.message());
    p.commit(0).expect("commit");
    assert_eq!(drain(&mut c), Vec::<u8>::new());
    assert_eq!(p.put_vectored(&slices, Some(Duration::ZERO)).expect("then it goes"), 2);
    assert_eq!(drain(&mut c), records.concat());
}
