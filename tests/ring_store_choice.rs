//! Large records (4 KiB and more), put alone or in a batch, go into the ring with
//! ordinary or non-temporal stores, whichever moved more lately (see the ring core's
//! `store_choice`); both kinds are tried along the way.
//! Whatever the kind, at any offset and across the wrap, every byte arrives as put.

use std::time::Duration;

mod common;

use common::RingName;
use daqflow::ring::{Consumer, Producer};

/// Record `n`: its length (1 KiB .. 5 KiB: both kinds of single put, and both ragged
/// ends vary) and its bytes.
fn record(n: u32) -> Vec<u8> {
    let len = 1024 + (n as usize * 37) % 4096;
    (0..len).map(|i| (i as u32 ^ n.wrapping_mul(2654435761)) as u8).collect()
}

#[test]
fn large_records_arrive_intact_whichever_kind_of_store_carried_them() {
    // A small ring: an epoch (twice its capacity) passes every few records, so both
    // kinds of store carry many of them.
    let ring = RingName::created("store-choice", 16 << 10, 2);
    let mut c = Consumer::attach(ring.s()).expect("consumer");
    let name = ring.s().to_string();
    const RECORDS: u32 = 4000;
    let producer = std::thread::spawn(move || {
        let mut p = Producer::attach(&name).expect("producer");
        for n in 0..RECORDS {
            p.put(&record(n), Some(Duration::from_secs(20))).expect("put");
        }
    });
    let mut buf = vec![0u8; 8192];
    for n in 0..RECORDS {
        let want = record(n);
        let got = c.get(&mut buf[..want.len()], want.len() as u64, Some(Duration::from_secs(20))).expect("get");
        assert_eq!(got, want.len());
        assert!(buf[..got] == want[..], "record {n} ({} bytes) arrived changed", want.len());
    }
    producer.join().expect("producer thread");
}

#[test]
fn records_of_a_batch_arrive_intact_whichever_kind_of_store_carried_them() {
    use std::io::IoSlice;
    let ring = RingName::created("store-choice-batch", 16 << 10, 2);
    let mut c = Consumer::attach(ring.s()).expect("consumer");
    let name = ring.s().to_string();
    // Records of 1 .. 6000 bytes, so every ragged end and alignment occurs, in both kinds.
    let small = |n: u32| -> Vec<u8> {
        let len = 1 + (n as usize * 53) % 6000;
        (0..len).map(|i| (i as u32 ^ n.wrapping_mul(40503)) as u8).collect()
    };
    const BATCHES: u32 = 400;
    const PER_BATCH: u32 = 20;
    let producer = std::thread::spawn(move || {
        let mut p = Producer::attach(&name).expect("producer");
        for b in 0..BATCHES {
            let records: Vec<Vec<u8>> = (0..PER_BATCH).map(|k| small(b * PER_BATCH + k)).collect();
            let slices: Vec<IoSlice> = records.iter().map(|r| IoSlice::new(r)).collect();
            let put = p.put_vectored(&slices, Some(Duration::from_secs(20))).expect("put_vectored");
            assert_eq!(put, slices.len());
        }
    });
    let mut buf = vec![0u8; 6000];
    for n in 0..BATCHES * PER_BATCH {
        let want = small(n);
        let got = c.get(&mut buf[..want.len()], want.len() as u64, Some(Duration::from_secs(20))).expect("get");
        assert_eq!(got, want.len());
        assert!(buf[..got] == want[..], "record {n} ({} bytes) arrived changed", want.len());
    }
    producer.join().expect("producer thread");
}
