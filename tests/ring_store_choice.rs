//! Large records go into the ring with ordinary or non-temporal stores, whichever moved
//! more lately (see the ring core's `store_choice`); both kinds are tried along the way.
//! Whatever the kind, at any offset and across the wrap, every byte arrives as put.

use std::time::Duration;

mod common;

use common::RingName;
use daqflow::ring::{Consumer, Producer};

/// Record `n`: its length (1 KiB .. 5 KiB, so both ragged ends vary) and its bytes.
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
