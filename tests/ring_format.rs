//! Format as NSCLDAQ's `CRingBuffer::format` does it: any shared-memory object of
//! sufficient size becomes a ring, everything derived from the object's actual size
//! (NSCLDAQ's own test `rmasterTests::existsAndIsRing` formats a fresh zero-filled object;
//! FRIB's tools make rings whose top offset is the object size, unrounded).

mod common;

use std::os::unix::fs::FileExt;
use std::process::Command;
use std::time::Duration;

use common::RingName;
use daqflow::ffi::ring as ffi;
use daqflow::ring::{self, Consumer, Producer};

const RINGBUFFER: &str = concat!(env!("DAQFLOW_PROGRAMS"), "/ringbuffer");

/// The object's bytes: a plain file in /dev/shm is a POSIX shared-memory object.
fn plant(name: &RingName, bytes: &[u8]) {
    std::fs::write(name.path(), bytes).unwrap();
}

fn read_all(name: &RingName) -> Vec<u8> {
    std::fs::read(name.path()).unwrap()
}

/// One message through the ring, to show it works as a ring.
fn round_trip(name: &str) {
    let mut c = Consumer::attach(name).unwrap();
    let mut p = Producer::attach(name).unwrap();
    p.put(b"formatted", Some(Duration::ZERO)).unwrap();
    let mut buf = [0u8; 9];
    assert_eq!(c.get(&mut buf, 9, Some(Duration::from_secs(1))).unwrap(), 9);
    assert_eq!(&buf, b"formatted");
}

#[test]
fn a_zero_filled_object_becomes_a_ring() {
    // NSCLDAQ's existsAndIsRing: a 2 MiB object, then format(name, 10).
    let r = RingName::new("fmt-zeros");
    let size = 2u64 << 20;
    plant(&r, &vec![0u8; size as usize]);
    assert!(!ring::exists(r.s()).unwrap());
    ring::format(r.s(), 10).unwrap_or_else(|e| panic!("format of a zero-filled object: {e}"));
    assert!(ring::exists(r.s()).unwrap());
    let u = ring::usage(r.s()).unwrap();
    let data_offset = 80 + 16 * 11;
    assert_eq!((u.data_bytes, u.max_consumers, u.put_space), (size - data_offset, 10, size - data_offset - 1));
    assert_eq!(std::fs::metadata(r.path()).unwrap().len(), size, "format never resizes");
    round_trip(r.s());
}

#[test]
fn any_object_of_sufficient_size_through_every_layer() {
    let r = RingName::new("fmt-junk");
    // Not a ring: junk in the magic and everywhere else (the C ABI).
    plant(&r, &[0xa5u8; 8192]);
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_format(r.c().as_ptr(), 2) }, 0);
    assert_eq!(ring::usage(r.s()).unwrap().data_bytes, 8192 - 128);
    round_trip(r.s());
    // The tool.
    let mut text = b"some text, then zeros, not page-sized".to_vec();
    text.resize(4001, 0);
    plant(&r, &text);
    let out = Command::new(RINGBUFFER).args(["format", "--maxconsumers=3", r.s()]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let u = ring::usage(r.s()).unwrap();
    assert_eq!((u.max_consumers, u.data_bytes), (3, 4001 - 144));
    round_trip(r.s());
}

#[test]
fn an_object_too_small_for_the_header_is_refused_and_left_alone() {
    let r = RingName::new("fmt-small");
    // 2 consumers: 128 header bytes, and two data bytes at least (the one-byte gap).
    let junk: Vec<u8> = (0..129u8).collect();
    plant(&r, &junk);
    let e = ring::format(r.s(), 2).unwrap_err();
    assert_eq!(e.errno(), libc::EINVAL, "{e}");
    assert!(e.message().contains(r.s()) && e.message().contains("129-byte"), "{e}");
    assert_eq!(read_all(&r), junk, "a refused format wrote something");
    // One byte more is enough: a ring that holds one byte.
    plant(&r, &[0u8; 130]);
    ring::format(r.s(), 2).unwrap();
    assert_eq!(ring::usage(r.s()).unwrap().put_space, 1);
    // More consumers than the object has room for: refused the same way.
    plant(&r, &[0u8; 4096]);
    assert_eq!(ring::format(r.s(), 1000).unwrap_err().errno(), libc::EINVAL);
    assert_eq!(read_all(&r), vec![0u8; 4096]);
}

/// A ring as FRIB's `nscldaq_ringbuffer` 0.8.9 creates one: 100 consumers, a file of
/// exactly header + data bytes (no page rounding), top offset = file size, consumer
/// positions 0.
fn frib_ring(name: &RingName, data: u64) -> u64 {
    let data_offset = 80 + 16 * 101;
    let size = data_offset + data;
    let mut bytes = vec![0u8; size as usize];
    bytes[..8].copy_from_slice(b"NSCLRing");
    for (off, value) in [(32, 100), (40, data), (48, 80), (56, 96), (64, data_offset), (72, size)] {
        bytes[off..off + 8].copy_from_slice(&value.to_le_bytes());
    }
    bytes[80..88].copy_from_slice(&data_offset.to_le_bytes());
    for record in (80..data_offset as usize).step_by(16) {
        bytes[record + 8..record + 12].copy_from_slice(&(-1i32).to_le_bytes());
    }
    plant(name, &bytes);
    size
}

#[test]
fn a_frib_made_ring_is_refused_until_formatted_then_works() {
    let r = RingName::new("fmt-frib");
    let size = frib_ring(&r, 100_000);
    assert_ne!(size % 4096, 0, "the fixture must not be page-rounded");
    let e = Consumer::attach(r.s()).map(|_| ()).unwrap_err();
    assert_eq!(e.errno(), libc::EBADMSG, "{e}");
    // A FRIB client attached (this process's pid in consumer slot 3): its ring is not
    // reformatted under it.
    let f = std::fs::OpenOptions::new().write(true).open(r.path()).unwrap();
    f.write_all_at(&(std::process::id() as i32).to_le_bytes(), 96 + 16 * 3 + 8).unwrap();
    assert_eq!(ring::format(r.s(), 0).unwrap_err().errno(), libc::EBUSY);
    f.write_all_at(&(-1i32).to_le_bytes(), 96 + 16 * 3 + 8).unwrap();
    let out = Command::new(RINGBUFFER).args(["format", r.s()]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let u = ring::usage(r.s()).unwrap();
    assert_eq!((u.data_bytes, u.max_consumers), (size - 1696, 100), "derived from the object's size");
    let header = read_all(&r);
    assert_eq!(u64::from_le_bytes(header[72..80].try_into().unwrap()), size - 1, "top offset");
    round_trip(r.s());
}

#[test]
fn a_ring_in_use_is_still_refused() {
    let r = RingName::created("fmt-busy", 4096, 2);
    let c = Consumer::attach(r.s()).unwrap();
    assert_eq!(ring::format(r.s(), 2).unwrap_err().errno(), libc::EBUSY);
    drop(c);
    ring::format(r.s(), 2).unwrap();
    // Only the header and the client records are written: the data stays as it was.
    let f = std::fs::OpenOptions::new().write(true).open(r.path()).unwrap();
    f.write_all_at(b"payload", 4000).unwrap();
    ring::format(r.s(), 2).unwrap();
    assert_eq!(&read_all(&r)[4000..4007], b"payload");
}
