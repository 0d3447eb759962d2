//! Hostile shared memory: headers, truncated objects and client records written by
//! "another process" (here: plain file writes into /dev/shm/NAME). Every operation must
//! return an error (EBADMSG for a corrupt ring, ENOENT or EBADMSG for a non-ring) with a
//! message, never crash, hang or touch memory outside the mapping.

use std::ffi::CString;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::sync::mpsc;
use std::time::Duration;

mod common;

use common::{RingName, within};
use daqflow::ffi::ring as ffi;
use daqflow::ring::{self, Consumer, CreateOptions, Producer};

/// create(4096, 2): 8192-byte object, B = 128, T = 8191, D = 8064.
fn small_ring(name: &RingName) {
    ring::create(name.s(), CreateOptions { data_bytes: 4096, max_consumers: 2, ..Default::default() }).unwrap();
}

fn poke(name: &RingName, off: u64, bytes: &[u8]) {
    let f = OpenOptions::new().write(true).open(name.path()).unwrap();
    f.write_all_at(bytes, off).unwrap();
}

fn poke_u64(name: &RingName, off: u64, v: u64) {
    poke(name, off, &v.to_le_bytes());
}

/// `r` must be an error with errno in `allowed` and a non-empty message.
fn expect_err<T>(what: &str, r: daqflow::Result<T>, allowed: &[i32]) {
    match r {
        Ok(_) => panic!("{what}: succeeded on a corrupt ring"),
        Err(e) => {
            assert!(
                allowed.contains(&e.errno()),
                "{what}: errno {} ({}), expected one of {allowed:?}",
                e.errno(),
                e.message()
            );
            assert!(!e.message().is_empty(), "{what}: empty message");
        }
    }
}

/// Every operation that reads the header, on a ring whose header is hostile.
fn all_ops_refuse(name: &str, allowed: &'static [i32], case: &str) {
    let n = name.to_string();
    let case = case.to_string();
    within(Duration::from_secs(10), format!("operations on {case}"), move || {
        expect_err(&format!("{case}: producer attach"), Producer::attach(&n), allowed);
        expect_err(&format!("{case}: consumer attach"), Consumer::attach(&n), allowed);
        expect_err(&format!("{case}: usage"), ring::usage(&n), allowed);
        expect_err(&format!("{case}: disconnect_producer"), ring::disconnect_producer(&n), allowed);
        expect_err(&format!("{case}: disconnect_consumer"), ring::disconnect_consumer(&n, 0), allowed);
        // The C ABI too: negated errno and a message.
        let c = CString::new(n.clone()).unwrap();
        let mut out = std::ptr::null_mut();
        // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
        // locals (or NULL): what the C ABI accepts.
        let rc = unsafe { ffi::ring_attach_consumer(c.as_ptr(), &mut out) };
        assert!(allowed.iter().any(|&e| rc == -e), "{case}: ring_attach_consumer gave {rc}");
        assert!(out.is_null());
        let msg =
            // SAFETY: daqflow_last_error returns a NUL-terminated string (never NULL) that stays valid until this
            // thread calls daqflow again.
            unsafe { std::ffi::CStr::from_ptr(daqflow::ffi::daqflow_last_error()) }.to_string_lossy().into_owned();
        assert!(!msg.is_empty(), "{case}: no message");
        // SAFETY: ring_usage_info is plain integers: all-zero bits are a valid value.
        let mut info = unsafe { std::mem::zeroed::<ffi::ring_usage_info>() };
        // SAFETY: a NUL-terminated name; `info` points to a live local, and `consumers` is NULL with capacity 0
        // or a local array of that capacity.
        let rc = unsafe { ffi::ring_usage(c.as_ptr(), &mut info, std::ptr::null_mut(), 0) };
        assert!(allowed.iter().any(|&e| rc == -e), "{case}: ring_usage gave {rc}");
    });
}

const BADMSG: &[i32] = &[libc::EBADMSG];
const NOT_A_RING: &[i32] = &[libc::EBADMSG, libc::ENOENT];

#[test]
fn hostile_header_fields() {
    let r = RingName::new("corrupt-header");
    // (offset, value, description)
    let cases: Vec<(u64, u64, &str)> = vec![
        (32, u64::MAX, "max consumers u64::MAX"),
        (32, 1 << 32, "max consumers 2^32"),
        (32, 1 << 40, "max consumers 2^40"),
        (32, 1000, "max consumers past the data offset"),
        (32, 0, "max consumers 0"),
        (32, 3, "max consumers 3 (records run into the data offset)"),
        (40, 8065, "data bytes one too many"),
        (40, 8063, "data bytes one too few"),
        (40, 0, "data bytes 0"),
        (40, u64::MAX, "data bytes u64::MAX"),
        (40, 1 << 40, "data bytes 2^40"),
        (48, 0, "producer record at 0"),
        (48, 81, "producer record at 81"),
        (48, 8000, "producer record in the data area"),
        (48, u64::MAX, "producer record u64::MAX"),
        (56, 0, "consumer records at 0"),
        (56, 97, "consumer records at 97"),
        (56, 1 << 33, "consumer records past the mapping"),
        (64, 0, "data offset 0"),
        (64, 127, "data offset 127"),
        (64, 129, "data offset 129"),
        (64, 8191, "data offset at the top"),
        (64, 8192, "data offset past the mapping"),
        (64, u64::MAX, "data offset u64::MAX"),
        (72, 8192, "top offset one past the mapping"),
        (72, 1 << 40, "top offset far past the mapping"),
        (72, u64::MAX, "top offset u64::MAX"),
        (72, 127, "top offset below the data offset"),
        (72, 0, "top offset 0"),
    ];
    for (off, value, what) in cases {
        small_ring(&r);
        poke_u64(&r, off, value);
        all_ops_refuse(r.s(), BADMSG, what);
        // exists still says "a ring" or "not a ring", without crashing.
        let _ = ring::exists(r.s()).unwrap();
        assert!(r.path().exists());
        std::fs::remove_file(r.path()).unwrap();
    }
}

#[test]
fn consistent_but_lying_headers() {
    let r = RingName::new("corrupt-lying");
    // The header adds up (dataOffset + dataBytes == top + 1) but describes a ring larger
    // than the object: a reader trusting it would run off the mapping.
    for top in [8192u64, 8192 + 4095, 1 << 20, 1 << 40] {
        small_ring(&r);
        poke_u64(&r, 72, top);
        poke_u64(&r, 40, top - 128 + 1);
        all_ops_refuse(r.s(), BADMSG, &format!("top {top} with matching data bytes"));
        std::fs::remove_file(r.path()).unwrap();
    }
    // More consumers than the header has room for, with everything else consistent.
    small_ring(&r);
    let n = 600u64; // 80 + 16 * 601 = 9696 > 8192
    poke_u64(&r, 32, n);
    poke_u64(&r, 64, 80 + 16 * (n + 1));
    poke_u64(&r, 40, 100);
    poke_u64(&r, 72, 80 + 16 * (n + 1) + 99);
    all_ops_refuse(r.s(), BADMSG, "600 consumers in an 8192-byte object");
    std::fs::remove_file(r.path()).unwrap();
}

/// A sparse object whose header is consistent in every field but names billions of
/// consumer records: walking them under the lock (attach, usage, `ringbuffer status`)
/// would fault in a tmpfs page for every 256 records until /dev/shm is full. The create
/// limit (2^20) holds for headers read too.
#[test]
fn consistent_headers_with_too_many_consumers() {
    let r = RingName::new("corrupt-huge");
    for n in [(1u64 << 32) - 1, (1 << 20) + 1] {
        let data_offset = 80 + 16 * (n + 1);
        let size = (data_offset + 8192).div_ceil(4096) * 4096;
        let f = OpenOptions::new().read(true).write(true).create_new(true).open(r.path()).unwrap();
        f.set_len(size).expect("a sparse object");
        let mut header = [0u8; 80];
        header[..8].copy_from_slice(b"NSCLRing");
        for (off, v) in [(32, n), (40, size - data_offset), (48, 80), (56, 96), (64, data_offset), (72, size - 1)] {
            header[off..off + 8].copy_from_slice(&v.to_le_bytes());
        }
        f.write_all_at(&header, 0).unwrap();
        all_ops_refuse(r.s(), BADMSG, &format!("{n} consumers, consistent"));
        let e = ring::peek_usage(r.s()).expect_err("peek usage");
        assert!(e.message().contains("more than"), "{}", e.message());
        let used = std::fs::metadata(r.path()).map(|m| std::os::unix::fs::MetadataExt::blocks(&m)).unwrap();
        assert!(used < 1024, "{n} consumers: the refusal faulted in {used} blocks of /dev/shm");
        std::fs::remove_file(r.path()).unwrap();
    }
}

#[test]
fn not_a_ring() {
    let r = RingName::new("corrupt-magic");
    for magic in [&b"NSCLRinX\0"[..], b"nsclring\0", b"NSCLRing12", b"\0\0\0\0\0\0\0\0\0", b"NSCLRing!"] {
        small_ring(&r);
        poke(&r, 0, magic);
        all_ops_refuse(r.s(), NOT_A_RING, &format!("magic {:?}", String::from_utf8_lossy(magic)));
        assert!(!ring::exists(r.s()).unwrap(), "{magic:?} is not a ring");
        assert!(!ring::list().unwrap().iter().any(|n| n == r.s()), "{magic:?} listed as a ring");
        expect_err("remove of a non-ring", ring::remove(r.s()), NOT_A_RING);
        assert!(r.path().exists(), "remove deleted a non-ring");
        // Format, as NSCLDAQ's, makes any object of sufficient size a ring.
        ring::format(r.s(), 2).unwrap_or_else(|e| panic!("format of magic {magic:?}: {e}"));
        assert!(ring::exists(r.s()).unwrap());
        std::fs::remove_file(r.path()).unwrap();
    }
}

#[test]
fn truncated_objects() {
    let r = RingName::new("corrupt-trunc");
    for len in [0u64, 8, 9, 50, 79, 80, 100, 127, 4096, 8191] {
        small_ring(&r);
        OpenOptions::new().write(true).open(r.path()).unwrap().set_len(len).unwrap();
        all_ops_refuse(r.s(), NOT_A_RING, &format!("object truncated to {len} bytes"));
        let _ = ring::exists(r.s()).unwrap();
        // Format derives the geometry from the object's actual size (spec section 2):
        // it either makes a sane ring of what is there or refuses (EINVAL: no room for
        // the header and two data bytes; EBADMSG/ENOENT: the magic is gone).
        match ring::format(r.s(), 2) {
            Ok(()) => {
                assert!(len >= 128 + 2, "format of a {len}-byte object succeeded");
                let u = ring::usage(r.s()).unwrap();
                assert_eq!((u.data_bytes, u.put_space), (len - 128, len - 129), "format of a {len}-byte object");
                let mut c = Consumer::attach(r.s()).unwrap();
                let mut p = Producer::attach(r.s()).unwrap();
                let data = vec![7u8; (len - 129) as usize];
                p.put(&data, Some(Duration::ZERO)).unwrap();
                let mut back = vec![0u8; data.len()];
                assert_eq!(c.get(&mut back, data.len() as u64, Some(Duration::ZERO)).unwrap(), data.len());
                assert!(back == data);
            }
            Err(e) => {
                assert!(
                    [libc::EBADMSG, libc::ENOENT, libc::EINVAL].contains(&e.errno()),
                    "format of {len} bytes: {}",
                    e.message()
                );
                assert!(!e.message().is_empty());
            }
        }
        std::fs::remove_file(r.path()).unwrap();
    }
    // An object that is all zeros / all 0xff.
    for fill in [0u8, 0xff] {
        std::fs::write(r.path(), vec![fill; 8192]).unwrap();
        all_ops_refuse(r.s(), NOT_A_RING, &format!("8192 bytes of {fill:#x}"));
        std::fs::remove_file(r.path()).unwrap();
    }
}

#[test]
fn format_repairs_or_refuses_a_corrupt_header() {
    // Format is how a corrupt ring is recovered; whatever it does, afterwards the ring
    // is either refused or sane.
    let r = RingName::new("corrupt-format");
    for (off, value) in [(32u64, u64::MAX), (40, 0), (64, 0), (72, u64::MAX), (48, 0)] {
        small_ring(&r);
        poke_u64(&r, off, value);
        match ring::format(r.s(), 2) {
            Ok(()) => {
                let u = ring::usage(r.s()).unwrap();
                assert_eq!((u.data_bytes, u.max_consumers, u.put_space), (8064, 2, 8063));
                let mut c = Consumer::attach(r.s()).unwrap();
                let mut p = Producer::attach(r.s()).unwrap();
                p.put(b"repaired", Some(Duration::ZERO)).unwrap();
                let mut buf = [0u8; 8];
                assert_eq!(c.get(&mut buf, 8, Some(Duration::ZERO)).unwrap(), 8);
                assert_eq!(&buf, b"repaired");
            }
            Err(e) => assert_eq!(e.errno(), libc::EBADMSG, "{}", e.message()),
        }
        std::fs::remove_file(r.path()).unwrap();
    }
}

/// A corrupt header's refusal names the cure; FRIB's `create` signature (top offset =
/// the object's size, no page rounding) is named as the cause.
#[test]
fn a_corrupt_header_is_refused_with_its_cause_and_cure() {
    let r = RingName::new("corrupt-cure");
    small_ring(&r);
    poke_u64(&r, 40, 0);
    let text = Consumer::attach(r.s()).err().expect("attach to a corrupt ring").to_string();
    assert!(text.contains(&format!("`ringbuffer format {}`", r.s())) && !text.contains("FRIB"), "{text}");
    std::fs::remove_file(r.path()).unwrap();

    // As FRIB's nscldaq_ringbuffer 0.8.9 makes them: 100 consumers, 1000 data bytes.
    small_ring(&r);
    let size = 80 + 16 * 101 + 1000;
    OpenOptions::new().write(true).open(r.path()).unwrap().set_len(size).unwrap();
    for (off, value) in [(32, 100), (40, 1000), (64, 80 + 16 * 101), (72, size)] {
        poke_u64(&r, off, value);
    }
    let err = Producer::attach(r.s()).err().expect("attach to FRIB's unformatted ring");
    assert_eq!(err.errno(), libc::EBADMSG);
    let text = err.to_string();
    assert!(
        text.contains(&format!("top offset {size}")) && text.contains("FRIB's nscldaq_ringbuffer create"),
        "{text}"
    );
    assert!(text.contains(&format!("`ringbuffer format {}`", r.s())), "{text}");
    ring::format(r.s(), 0).unwrap();
    assert_eq!(ring::usage(r.s()).unwrap().data_bytes, 1000);
    std::fs::remove_file(r.path()).unwrap();
}

/// Positions that are not in [B, T] = [128, 8191].
const BAD_POSITIONS: [u64; 7] = [0, 80, 127, 8192, 8193, 1 << 40, u64::MAX];

#[test]
fn hostile_producer_record() {
    let r = RingName::new("corrupt-prodrec");
    for pos in BAD_POSITIONS {
        small_ring(&r);
        let mut c = Consumer::attach(r.s()).unwrap();
        let mut p = Producer::attach(r.s()).unwrap();
        p.put(b"before", Some(Duration::ZERO)).unwrap();
        poke_u64(&r, 80, pos);
        let what = format!("put pointer {pos}");
        let mut buf = [0u8; 64];
        expect_err(&format!("{what}: get"), c.get(&mut buf, 1, Some(Duration::ZERO)), BADMSG);
        expect_err(&format!("{what}: get(min 0)"), c.get(&mut buf, 0, Some(Duration::ZERO)), BADMSG);
        expect_err(&format!("{what}: peek"), c.peek(&mut buf), BADMSG);
        expect_err(&format!("{what}: skip"), c.skip(1), BADMSG);
        expect_err(&format!("{what}: available"), c.available(), BADMSG);
        expect_err(&format!("{what}: borrow"), c.borrow(1, 10, Some(Duration::ZERO)), BADMSG);
        expect_err(&format!("{what}: usage"), ring::usage(r.s()), BADMSG);
        expect_err(&format!("{what}: consumer attach"), Consumer::attach(r.s()), BADMSG);
        // A blocked get that sees the pointer go bad returns instead of waiting.
        let (tx, rx) = mpsc::channel();
        let mut c2 = c;
        poke_u64(&r, 80, 128 + 6);
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            tx.send(c2.get(&mut buf, 60, Some(Duration::from_secs(20))).map_err(|e| e.errno())).unwrap();
        });
        // Wait (bounded) until the getter has seen the sane short backlog... then break it.
        assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
        poke_u64(&r, 80, pos);
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)).expect("blocked get never noticed"),
            Err(libc::EBADMSG),
            "{what}"
        );
        t.join().unwrap();
        // The C ABI turns it into -EBADMSG with a message.
        let name = CString::new(r.s()).unwrap();
        let mut cc = std::ptr::null_mut();
        // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
        // locals (or NULL): what the C ABI accepts.
        assert_eq!(unsafe { ffi::ring_attach_consumer(name.as_ptr(), &mut cc) }, -libc::EBADMSG);
        drop(p);
        std::fs::remove_file(r.path()).unwrap();
    }
    // Producer attach reads the put pointer it keeps.
    for pos in BAD_POSITIONS {
        small_ring(&r);
        poke_u64(&r, 80, pos);
        expect_err(&format!("put pointer {pos}: producer attach"), Producer::attach(r.s()), BADMSG);
        std::fs::remove_file(r.path()).unwrap();
    }
}

#[test]
fn hostile_consumer_record() {
    let r = RingName::new("corrupt-consrec");
    for pos in BAD_POSITIONS {
        small_ring(&r);
        let c = Consumer::attach(r.s()).unwrap();
        let slot = c.slot() as u64;
        poke_u64(&r, 96 + 16 * slot, pos);
        let what = format!("consumer get pointer {pos}");
        // A fresh producer must scan the consumer records before its first put.
        let mut p = Producer::attach(r.s()).unwrap();
        expect_err(&format!("{what}: put"), p.put(b"data", Some(Duration::ZERO)), BADMSG);
        expect_err(&format!("{what}: available_space"), p.available_space(), BADMSG);
        expect_err(&format!("{what}: reserve"), p.reserve(10, Some(Duration::ZERO)), BADMSG);
        expect_err(&format!("{what}: usage"), ring::usage(r.s()), BADMSG);
        let name = CString::new(r.s()).unwrap();
        // SAFETY: a NUL-terminated name, an out-pointer to a local, a 4-byte buffer for 4
        // bytes, a handle attached here and detached last; daqflow_last_error's string
        // is valid until this thread's next call.
        unsafe {
            let mut pp = std::ptr::null_mut();
            // The producer slot is ours already: detach first, then the C producer.
            drop(p);
            assert_eq!(ffi::ring_attach_producer(name.as_ptr(), &mut pp), 0);
            assert_eq!(ffi::ring_put(pp, b"data".as_ptr().cast(), 4, 0), -libc::EBADMSG);
            assert!(!std::ffi::CStr::from_ptr(daqflow::ffi::daqflow_last_error()).to_bytes().is_empty());
            ffi::ring_detach(pp);
        }
        // A producer blocked on space that then meets the bad pointer returns.
        poke_u64(&r, 96 + 16 * slot, 128);
        let mut p = Producer::attach(r.s()).unwrap();
        p.put(&vec![0u8; 8000], Some(Duration::ZERO)).unwrap();
        let (tx, rx) = mpsc::channel();
        let t = std::thread::spawn(move || {
            tx.send(p.put(&[0u8; 100], Some(Duration::from_secs(20))).map_err(|e| e.errno())).unwrap();
        });
        assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
        poke_u64(&r, 96 + 16 * slot, pos);
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)).expect("blocked put never noticed"),
            Err(libc::EBADMSG),
            "{what}"
        );
        t.join().unwrap();
        drop(c);
        std::fs::remove_file(r.path()).unwrap();
    }
}

#[test]
fn hostile_pids() {
    // pid words the legacy code never writes (negative) or a joiner that never finished
    // (0): operations terminate and do not crash.
    let r = RingName::new("corrupt-pids");
    small_ring(&r);
    for pid in [0i32, -2, i32::MIN, i32::MAX] {
        poke(&r, 88, &pid.to_le_bytes());
        poke(&r, 96 + 8, &pid.to_le_bytes());
        poke(&r, 112 + 8, &pid.to_le_bytes());
        let n = r.s().to_string();
        within(Duration::from_secs(15), format!("pid {pid}"), move || {
            let _ = ring::usage(&n);
            let _ = Producer::attach(&n).map(|mut p| p.put(&[0u8; 10], Some(Duration::from_millis(10))));
            let _ = Consumer::attach(&n);
            let _ = ring::format(&n, 2);
        });
    }
}

#[test]
fn list_and_exists_ignore_junk_in_dev_shm() {
    let fifo = RingName::new("junk-fifo");
    let link = RingName::new("junk-link");
    let short = RingName::new("junk-short");
    let dir = RingName::new("junk-dir");
    let real = RingName::new("junk-real");
    small_ring(&real);
    let c = CString::new(fifo.path().to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0);
    std::os::unix::fs::symlink(real.path(), link.path()).unwrap();
    std::fs::write(short.path(), b"NSCLR").unwrap();
    std::fs::create_dir(dir.path()).unwrap();
    let cleanup_dir = dir.path();

    let listed = within(Duration::from_secs(5), "list with junk in /dev/shm", || ring::list().unwrap());
    assert!(listed.iter().any(|n| n == real.s()));
    for junk in [&fifo, &link, &short, &dir] {
        assert!(!listed.iter().any(|n| n == junk.s()), "{} listed", junk.s());
    }
    for junk in [&link, &short, &dir] {
        let n = junk.s().to_string();
        let e = within(Duration::from_secs(5), format!("exists({n})"), move || ring::exists(&n));
        assert!(matches!(e, Ok(false) | Err(_)), "{} looks like a ring", junk.s());
    }
    // Operations on a FIFO name must not block waiting for a writer.
    let n = fifo.s().to_string();
    let fifo_path = fifo.path();
    let unblock = move || {
        // Let a thread stuck in open(O_RDONLY) go, so it does not linger.
        let _ = OpenOptions::new().write(true).custom_flags_nonblock().open(&fifo_path);
    };
    type Op = Box<dyn FnOnce(&str) -> Result<(), i32> + Send>;
    let ops: Vec<(&str, Op, &[i32])> = vec![
        (
            "exists",
            Box::new(|n: &str| match ring::exists(n) {
                Ok(false) => Err(0),
                Ok(true) => Ok(()),
                Err(e) => Err(e.errno()),
            }),
            &[0],
        ),
        (
            "create",
            Box::new(|n: &str| {
                ring::create(n, CreateOptions { data_bytes: 4096, max_consumers: 2, ..Default::default() })
                    .map_err(|e| e.errno())
            }),
            &[libc::EEXIST],
        ),
        ("usage", Box::new(|n: &str| ring::usage(n).map(|_| ()).map_err(|e| e.errno())), NOT_A_RING),
        ("producer attach", Box::new(|n: &str| Producer::attach(n).map(|_| ()).map_err(|e| e.errno())), NOT_A_RING),
        ("consumer attach", Box::new(|n: &str| Consumer::attach(n).map(|_| ()).map_err(|e| e.errno())), NOT_A_RING),
        ("remove", Box::new(|n: &str| ring::remove(n).map_err(|e| e.errno())), NOT_A_RING),
        ("format", Box::new(|n: &str| ring::format(n, 2).map_err(|e| e.errno())), NOT_A_RING),
    ];
    let mut problems = Vec::new();
    for (what, op, allowed) in ops {
        let (tx, rx) = mpsc::channel();
        let n = n.clone();
        std::thread::spawn(move || {
            let _ = tx.send(op(&n));
        });
        match rx.recv_timeout(Duration::from_secs(3)) {
            Ok(Err(e)) if allowed.contains(&e) => {}
            Ok(other) => problems.push(format!("{what}: {other:?}, expected Err in {allowed:?} (0 = false)")),
            Err(_) => {
                problems.push(format!("{what}: hung (open of the FIFO waits for a writer)"));
                // Let the stuck open() go so the thread does not linger.
                for _ in 0..3 {
                    unblock();
                    if rx.recv_timeout(Duration::from_millis(100)).is_ok() {
                        break;
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "operations on a FIFO named like a ring:\n{}", problems.join("\n"));
    assert!(fifo.path().exists(), "the FIFO was removed");
    let _ = std::fs::remove_dir(cleanup_dir);
}

trait NonBlock {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}

impl NonBlock for OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NONBLOCK)
    }
}

/// Rings are 0666: anyone can shrink one under its clients. Touching the lost pages
/// used to be SIGBUS, killing every producer and consumer; now each learns it from the
/// next call, including one asleep in a wait when it happens.
#[test]
fn truncated_under_attached_clients() {
    // Shorter than the first page: the records and the data are gone.
    for len in [0u64, 100] {
        let r = RingName::created("corrupt-shrunk", 4096, 2);
        let mut p = Producer::attach(r.s()).unwrap();
        let mut c = Consumer::attach(r.s()).unwrap();
        let mut waiting = Consumer::attach(r.s()).unwrap();
        p.put(&[9u8; 3000], Some(Duration::ZERO)).unwrap();
        let (tx, rx) = mpsc::channel();
        let waiter = std::thread::spawn(move || {
            // Behind the data already there, so it sleeps until the truncation.
            let mut skip = [0u8; 3000];
            waiting.get(&mut skip, 3000, Some(Duration::ZERO)).unwrap();
            tx.send(()).unwrap();
            let mut buf = [0u8; 16];
            waiting.get(&mut buf, 1, Some(Duration::from_secs(30)))
        });
        rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        OpenOptions::new().write(true).open(r.path()).unwrap().set_len(len).unwrap();
        let what = format!("ring truncated to {len} bytes");
        let truncated = |e: daqflow::Error| {
            assert_eq!(e.errno(), libc::EBADMSG, "{what}: {}", e.message());
            assert!(e.message().contains("truncated") && e.message().contains(r.s()), "{what}: {}", e.message());
        };
        let mut buf = [0u8; 3000];
        truncated(c.get(&mut buf, 3000, Some(Duration::ZERO)).unwrap_err());
        // At 100 bytes the producer's own record survives and the rest of the first page
        // reads as zeros without a fault: the put lands there, where no one will read it.
        truncated(p.put(&[1u8; 100], Some(Duration::ZERO)).unwrap_err());
        truncated(within(Duration::from_secs(10), &what, move || waiter.join().unwrap()).unwrap_err());
        let usage = ring::usage(r.s());
        assert!(usage.is_err(), "{what}: usage of the shrunk ring succeeded");
        drop((p, c));
    }
}

/// A truncation to a size inside a page zeroes the rest of that page without any fault:
/// records already put there must not come back as zeros from a call that succeeds, and
/// a put there (which no one will ever read) must fail.
#[test]
fn truncated_inside_a_page_the_call_touches() {
    // create(65536, 2): 69632-byte object, B = 128, the last page at 65536.
    // (bytes put and read first, record put then read, new size): the record lies in the
    // first page past the records, or in the last page (which has no next page to fault).
    let cases = [(0u64, 3000u64, 1000u64), (65400, 100, 65600)];
    let truncated = |what: &str, e: daqflow::Error| {
        assert_eq!(e.errno(), libc::EBADMSG, "{what}: {}", e.message());
        assert!(e.message().contains("truncated"), "{what}: {}", e.message());
    };
    for (before, len, size) in cases {
        for op in ["get", "peek", "borrow", "release", "put", "commit"] {
            let what = format!("{op} of {len} bytes at {} after a truncation to {size}", 128 + before);
            let r = RingName::created("corrupt-partial", 65536, 2);
            let mut p = Producer::attach(r.s()).unwrap();
            let mut c = Consumer::attach(r.s()).unwrap();
            let mut buf = vec![0u8; 65536];
            if before > 0 {
                p.put(&vec![1u8; before as usize], Some(Duration::ZERO)).unwrap();
                assert_eq!(c.get(&mut buf, before, Some(Duration::ZERO)).unwrap(), before as usize);
            }
            let buf = &mut buf[..len as usize];
            let shrink = || OpenOptions::new().write(true).open(r.path()).unwrap().set_len(size).unwrap();
            let result = match op {
                "put" | "commit" => {
                    shrink();
                    if op == "put" {
                        p.put(&vec![7u8; len as usize], Some(Duration::ZERO))
                    } else {
                        let spans = p.reserve(len, Some(Duration::ZERO)).unwrap();
                        assert_eq!(spans[0].len as u64, len, "{what}");
                        // SAFETY: the reserved span is ours to fill.
                        unsafe { std::ptr::write_bytes(spans[0].ptr, 7, spans[0].len) };
                        p.commit(len)
                    }
                }
                "release" => {
                    p.put(&vec![7u8; len as usize], Some(Duration::ZERO)).unwrap();
                    // Lent before the truncation, read by the caller after it.
                    let spans = c.borrow(len, len, Some(Duration::ZERO)).unwrap();
                    shrink();
                    // SAFETY: the borrowed span lies in the mapping until released.
                    let first = unsafe { std::ptr::read_volatile(spans[0].ptr.add(spans[0].len - 1)) };
                    assert_eq!(first, 0, "{what}");
                    c.release(len)
                }
                _ => {
                    p.put(&vec![7u8; len as usize], Some(Duration::ZERO)).unwrap();
                    shrink();
                    match op {
                        "get" => {
                            c.get(buf, len, Some(Duration::ZERO)).map(|n| assert!(buf[..n].contains(&0), "{what}: {n}"))
                        }
                        "peek" => c.peek(buf).map(|n| assert!(buf[..n].contains(&0), "{what}: {n}")),
                        _ => c.borrow(len, len, Some(Duration::ZERO)).map(drop),
                    }
                }
            };
            match result {
                Ok(()) => panic!("{what}: succeeded"),
                Err(e) => truncated(&what, e),
            }
            // The failed call ended any reservation or borrow: the next one says why
            // too, instead of EBUSY.
            if op == "put" || op == "commit" {
                truncated(&format!("put after {what}"), p.put(&[1u8; 10], Some(Duration::ZERO)).unwrap_err());
            } else {
                truncated(&format!("get after {what}"), c.get(buf, 1, Some(Duration::ZERO)).unwrap_err());
            }
            drop((p, c));
        }
    }
}

/// A truncation that leaves the header and records faults nowhere a waiting client
/// looks, and no data or space can come any more: a consumer waiting for data and a
/// producer waiting for space must learn it, not wait out their timeouts (or for ever).
#[test]
fn truncated_past_the_records_under_waiting_clients() {
    let r = RingName::created("corrupt-waiting", 65536, 2);
    let mut p = Producer::attach(r.s()).unwrap();
    let c = Consumer::attach(r.s()).unwrap();
    let mut waiting = Consumer::attach(r.s()).unwrap();
    // Fill the ring so the producer waits for space, behind `c`, which never reads.
    let capacity = p.available_space().unwrap();
    p.put(&vec![1u8; capacity as usize], Some(Duration::ZERO)).unwrap();
    let mut all = vec![0u8; capacity as usize];
    waiting.get(&mut all, capacity, Some(Duration::ZERO)).unwrap();
    let (tx, rx) = mpsc::channel();
    let consumer = std::thread::spawn(move || {
        tx.send(()).unwrap();
        let mut buf = [0u8; 16];
        waiting.get(&mut buf, 1, Some(Duration::from_secs(60))).map(drop)
    });
    let producer = std::thread::spawn(move || p.put(&[2u8; 100], Some(Duration::from_secs(60))));
    rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    OpenOptions::new().write(true).open(r.path()).unwrap().set_len(8192).unwrap();
    for (who, waiter) in [("consumer waiting for data", consumer), ("producer waiting for space", producer)] {
        let e = within(Duration::from_secs(10), who, move || waiter.join().unwrap()).unwrap_err();
        assert_eq!(e.errno(), libc::EBADMSG, "{who}: {}", e.message());
        assert!(e.message().contains("truncated"), "{who}: {}", e.message());
    }
    drop(c);
}

/// The same for clients that poll (timeout 0, or `available` in a loop, as NSCLDAQ's do):
/// an empty or full ring truncated past its records must not look merely empty or full.
#[test]
fn truncated_past_the_records_under_polling_clients() {
    let r = RingName::created("corrupt-polled", 65536, 2);
    let mut p = Producer::attach(r.s()).unwrap();
    let c = Consumer::attach(r.s()).unwrap();
    let mut empty = Consumer::attach(r.s()).unwrap();
    let capacity = p.available_space().unwrap();
    p.put(&vec![1u8; capacity as usize], Some(Duration::ZERO)).unwrap();
    let mut all = vec![0u8; capacity as usize];
    empty.get(&mut all, capacity, Some(Duration::ZERO)).unwrap();
    OpenOptions::new().write(true).open(r.path()).unwrap().set_len(8192).unwrap();
    let truncated = |what: &str, e: daqflow::Error| {
        assert_eq!(e.errno(), libc::EBADMSG, "{what}: {}", e.message());
        assert!(e.message().contains("truncated"), "{what}: {}", e.message());
    };
    let mut buf = [0u8; 16];
    truncated("get with timeout 0 on an empty ring", empty.get(&mut buf, 1, Some(Duration::ZERO)).unwrap_err());
    truncated("put with timeout 0 into a full ring", p.put(&[2u8; 10], Some(Duration::ZERO)).unwrap_err());
    drop((p, c, empty));
    for poll in ["available", "available_space"] {
        let r = RingName::created("corrupt-polled", 65536, 2);
        let mut p = Producer::attach(r.s()).unwrap();
        let c = Consumer::attach(r.s()).unwrap();
        let capacity = p.available_space().unwrap();
        if poll == "available_space" {
            p.put(&vec![1u8; capacity as usize], Some(Duration::ZERO)).unwrap();
        }
        OpenOptions::new().write(true).open(r.path()).unwrap().set_len(8192).unwrap();
        let polled = if poll == "available" { c.available() } else { p.available_space() };
        truncated(poll, polled.unwrap_err());
        drop((p, c));
    }
}

/// Ring objects are sparse: a page is made when first touched, and on a full /dev/shm
/// that touch faults just as a truncated object does. The error must not blame a
/// truncation that did not happen. Runs itself again in a private mount namespace
/// with a 256 KiB /dev/shm (skipped where that is not allowed).
#[test]
fn a_full_dev_shm_is_not_called_a_truncation() {
    const CHILD: &str = "DAQFLOW_FULL_SHM_CHILD";
    const TEST: &str = "a_full_dev_shm_is_not_called_a_truncation";
    if std::env::var_os(CHILD).is_some() {
        // Room for the ring when it is made; then something else takes half of it.
        let r = RingName::created("full-shm", 192 << 10, 2);
        let mut p = Producer::attach(r.s()).unwrap();
        let _c = Consumer::attach(r.s()).unwrap();
        let filler = format!("/dev/shm/filler-{}", std::process::id());
        std::fs::write(&filler, vec![1u8; 128 << 10]).unwrap();
        let chunk = vec![3u8; 16384];
        let mut put = 0usize;
        let e = loop {
            match p.put(&chunk, Some(Duration::ZERO)) {
                Ok(()) => put += chunk.len(),
                Err(e) => break e,
            }
            assert!(put <= 160 << 10, "{put} bytes put into a ring with 128 KiB of /dev/shm left");
        };
        let _ = std::fs::remove_file(&filler);
        assert_eq!(e.errno(), libc::ENOSPC, "after {put} bytes: {}", e.message());
        assert!(!e.message().contains("truncated by another process"), "{}", e.message());
        drop(p);
        return;
    }
    let me = std::env::current_exe().unwrap();
    // Exit 77: no private /dev/shm could be had here.
    let script = format!(
        r#"mount -t tmpfs -o size=256k tmpfs /dev/shm || exit 77; exec "$0" --exact {TEST} --nocapture --test-threads=1"#
    );
    let run = std::process::Command::new("unshare").args(["-m", "sh", "-c", &script]).arg(&me).env(CHILD, "1").output();
    match run {
        Ok(out) if out.status.code() == Some(77) || (!out.status.success() && out.stdout.is_empty()) => {
            eprintln!("SKIPPED: no private mount namespace: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(out) => assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("SKIPPED: no unshare ({e})"),
    }
}
