//! Integration tests of the ring API (Rust and C ABI) against spec/ring-format.md and
//! spec/c-api.md. Every test uses its own ring names (`t-<test>-<pid>`) and removes
//! them through a guard, even when it fails.

use std::ffi::{CStr, CString, c_char, c_void};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;

use common::{RingName, shm_path, within};
use daqflow::ffi::ring as ffi;
use daqflow::ring::{self, Consumer, CreateOptions, Producer};

// ---------------------------------------------------------------------------------
// helpers

fn opts(data_bytes: u64, max_consumers: u32) -> CreateOptions {
    CreateOptions { data_bytes, max_consumers, ..CreateOptions::default() }
}

/// Creates a small ring: create(4096, 2) gives D = 8064 (spec table).
fn small_ring(test: &str) -> RingName {
    let r = RingName::new(test);
    ring::create(r.s(), opts(4096, 2)).unwrap();
    r
}

const SMALL_D: u64 = 8064;
const SMALL_B: u64 = 128;
const SMALL_T: u64 = 8191;

fn errno<T>(r: daqflow::Result<T>) -> i32 {
    match r {
        Ok(_) => panic!("expected an error, got Ok"),
        Err(e) => {
            assert!(!e.message().is_empty(), "error {} has an empty message", e.errno());
            e.errno()
        }
    }
}

fn read_u64(name: &str, off: u64) -> u64 {
    let f = File::open(shm_path(name)).unwrap();
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, off).unwrap();
    u64::from_le_bytes(b)
}

fn read_i32(name: &str, off: u64) -> i32 {
    let f = File::open(shm_path(name)).unwrap();
    let mut b = [0u8; 4];
    f.read_exact_at(&mut b, off).unwrap();
    i32::from_le_bytes(b)
}

fn write_i32(name: &str, off: u64, v: i32) {
    let f = OpenOptions::new().write(true).open(shm_path(name)).unwrap();
    f.write_all_at(&v.to_le_bytes(), off).unwrap();
}

/// Put pointer as stored in the producer record (offset 80).
fn put_ptr(name: &str) -> u64 {
    read_u64(name, 80)
}

/// A deterministic byte pattern; `seed` shifts it so records differ.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn last_error() -> String {
    let p = daqflow::ffi::daqflow_last_error();
    assert!(!p.is_null(), "daqflow_last_error returned NULL");
    // SAFETY: daqflow_last_error returns a NUL-terminated string (never NULL) that stays valid until this thread
    // calls daqflow again.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Moves a fresh producer/consumer pair's pointers to `pos` (an absolute offset) by
/// putting and getting; returns nothing, the ring is empty afterwards.
fn move_to(p: &mut Producer, consumers: &mut [&mut Consumer], name: &str, target: u64) {
    let b = SMALL_B;
    let d = SMALL_D;
    let cur = put_ptr(name);
    let dist = if target >= cur { target - cur } else { (target + d) - cur };
    let mut left = dist;
    let _ = b;
    while left > 0 {
        let n = left.min(4000);
        p.put(&vec![0xEE; n as usize], Some(Duration::ZERO)).unwrap();
        for c in consumers.iter_mut() {
            c.skip(n).unwrap();
        }
        left -= n;
    }
    assert_eq!(put_ptr(name), target);
}

// ---------------------------------------------------------------------------------
// geometry and creation

#[test]
fn create_defaults_gives_measured_geometry() {
    let r = RingName::new("defaults");
    ring::create(r.s(), CreateOptions::default()).unwrap();
    assert_eq!(std::fs::metadata(r.path()).unwrap().len(), 8_392_704);
    let u = ring::usage(r.s()).unwrap();
    // `ringbuffer usage` of a fresh default ring: 8391008 8391007 100 -1 0 0 {}
    assert_eq!(
        (u.data_bytes, u.put_space, u.max_consumers, u.producer_pid, u.max_get, u.min_get),
        (8_391_008, 8_391_007, 100, -1, 0, 0)
    );
    assert!(u.consumers.is_empty());
    // Header fields at their byte offsets (spec section 3).
    let f = File::open(r.path()).unwrap();
    let mut magic = [0u8; 9];
    f.read_exact_at(&mut magic, 0).unwrap();
    assert_eq!(&magic, b"NSCLRing\0");
    assert_eq!(read_u64(r.s(), 32), 100);
    assert_eq!(read_u64(r.s(), 40), 8_391_008);
    assert_eq!(read_u64(r.s(), 48), 80);
    assert_eq!(read_u64(r.s(), 56), 96);
    assert_eq!(read_u64(r.s(), 64), 1696);
    assert_eq!(read_u64(r.s(), 72), 8_392_704 - 1);
    // Format writes {position = dataOffset, pid = -1} into every record.
    for rec in std::iter::once(80).chain((0..100).map(|i| 96 + 16 * i)) {
        assert_eq!(read_u64(r.s(), rec), 1696, "record at {rec}");
        assert_eq!(read_i32(r.s(), rec + 8), -1, "record at {rec}");
    }
    drop(r);

    // The same through the C ABI with zeros for the defaults.
    let r = RingName::new("defaults-c");
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_create(r.c().as_ptr(), 0, 0) }, 0, "{}", last_error());
    assert_eq!(std::fs::metadata(r.path()).unwrap().len(), 8_392_704);
    let mut info = std::mem::MaybeUninit::<ffi::ring_usage_info>::zeroed();
    // SAFETY: a NUL-terminated name; `info` points to a live local, and `consumers` is NULL with capacity 0 or a
    // local array of that capacity.
    let n = unsafe { ffi::ring_usage(r.c().as_ptr(), info.as_mut_ptr(), std::ptr::null_mut(), 0) };
    assert_eq!(n, 0);
    // SAFETY: ring_usage returned 0, so it wrote *info (which was zeroed besides).
    let info = unsafe { info.assume_init() };
    assert_eq!(
        (
            info.data_bytes,
            info.put_space,
            info.max_consumers,
            info.producer_pid,
            info.max_get,
            info.min_get,
            info.n_consumers
        ),
        (8_391_008, 8_391_007, 100, -1, 0, 0, 0)
    );
}

#[test]
fn create_size_table_rows() {
    // (request, N) -> (shm size, dataOffset, dataBytes), spec section 2.
    let table =
        [(1024 * 1024, 10, 1_052_672, 256, 1_052_416), (65536, 4, 69_632, 160, 69_472), (4096, 2, 8_192, 128, 8_064)];
    for (i, (req, n, size, off, data)) in table.into_iter().enumerate() {
        let r = RingName::new(&format!("table{i}"));
        ring::create(r.s(), opts(req, n)).unwrap();
        assert_eq!(std::fs::metadata(r.path()).unwrap().len(), size, "shm size of ({req}, {n})");
        assert_eq!(read_u64(r.s(), 32), n as u64);
        assert_eq!(read_u64(r.s(), 40), data);
        assert_eq!(read_u64(r.s(), 64), off);
        assert_eq!(read_u64(r.s(), 72), size - 1);
        let u = ring::usage(r.s()).unwrap();
        assert_eq!((u.data_bytes, u.put_space, u.max_consumers), (data, data - 1, n));
        // The largest put fits into an empty ring with a consumer attached.
        let mut c = Consumer::attach(r.s()).unwrap();
        let mut p = Producer::attach(r.s()).unwrap();
        let big = pattern((data - 1) as usize, i as u64);
        p.put(&big, Some(Duration::ZERO)).unwrap();
        assert_eq!(p.available_space().unwrap(), 0);
        let mut back = vec![0u8; big.len()];
        assert_eq!(c.get(&mut back, big.len() as u64, Some(Duration::ZERO)).unwrap(), big.len());
        assert!(back == big);
    }
}

#[test]
fn create_mode_default_and_tighter() {
    let r = RingName::new("mode-default");
    ring::create(r.s(), opts(4096, 2)).unwrap();
    assert_eq!(std::fs::metadata(r.path()).unwrap().mode() & 0o7777, 0o666, "default mode (umask must not apply)");

    let r2 = RingName::new("mode-default-c");
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_create(r2.c().as_ptr(), 4096, 2) }, 0);
    assert_eq!(std::fs::metadata(r2.path()).unwrap().mode() & 0o7777, 0o666);

    let r3 = RingName::new("mode-600");
    ring::create(r3.s(), CreateOptions { data_bytes: 4096, max_consumers: 2, mode: 0o600 }).unwrap();
    assert_eq!(std::fs::metadata(r3.path()).unwrap().mode() & 0o7777, 0o600);

    let r4 = RingName::new("mode-640-c");
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_create_mode(r4.c().as_ptr(), 4096, 2, 0o640) }, 0, "{}", last_error());
    assert_eq!(std::fs::metadata(r4.path()).unwrap().mode() & 0o7777, 0o640);
    // A tighter ring is still a working ring.
    assert!(ring::exists(r4.s()).unwrap());
    let mut c = Consumer::attach(r4.s()).unwrap();
    let mut p = Producer::attach(r4.s()).unwrap();
    p.put(b"hello", Some(Duration::ZERO)).unwrap();
    let mut buf = [0u8; 5];
    assert_eq!(c.get(&mut buf, 5, Some(Duration::ZERO)).unwrap(), 5);
    assert_eq!(&buf, b"hello");
}

#[test]
fn create_refuses_a_taken_name() {
    let r = small_ring("eexist");
    assert_eq!(errno(ring::create(r.s(), opts(4096, 2))), libc::EEXIST);
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_create(r.c().as_ptr(), 4096, 2) }, -libc::EEXIST);
    assert!(last_error().contains(r.s()), "message should name the ring: {}", last_error());
    // The existing ring is untouched.
    assert_eq!(std::fs::metadata(r.path()).unwrap().len(), 8192);
    assert_eq!(ring::usage(r.s()).unwrap().max_consumers, 2);

    // A shared-memory object that is not a ring.
    let other = RingName::new("eexist-other");
    std::fs::write(other.path(), b"not a ring at all").unwrap();
    assert_eq!(errno(ring::create(other.s(), opts(4096, 2))), libc::EEXIST);
    assert_eq!(std::fs::read(other.path()).unwrap(), b"not a ring at all", "create clobbered a foreign object");
    assert!(!ring::exists(other.s()).unwrap());
    assert_eq!(errno(ring::remove(other.s())), libc::ENOENT);
    assert!(other.path().exists(), "remove deleted an object that is not a ring");
}

#[test]
fn names_are_validated() {
    let long = "x".repeat(256);
    let cases: [(&str, &[&str]); 9] = [
        ("a/b", &["'/'", "slash"]),
        ("a b", &["whitespace", "' '"]),
        ("a\tb", &["whitespace", "\\t"]),
        ("a\nb", &["whitespace", "control", "\\n"]),
        ("{a", &["brace", "'{'"]),
        ("a}", &["brace", "'}'"]),
        ("", &["empty"]),
        (&long, &["long", "255", "limit"]),
        ("..", &["director", ".."]),
    ];
    for (bad, reasons) in cases {
        let check = |what: &str, e: i32| {
            assert_eq!(e, libc::EINVAL, "{what}({bad:?})");
        };
        let mut msgs = Vec::new();
        for (what, r) in [
            ("create", ring::create(bad, opts(4096, 2)).map(|_| ())),
            ("format", ring::format(bad, 2)),
            ("remove", ring::remove(bad)),
            ("exists", ring::exists(bad).map(|_| ())),
            ("usage", ring::usage(bad).map(|_| ())),
            ("producer", Producer::attach(bad).map(|_| ())),
            ("consumer", Consumer::attach(bad).map(|_| ())),
            ("disconnect_producer", ring::disconnect_producer(bad)),
            ("disconnect_consumer", ring::disconnect_consumer(bad, 0)),
        ] {
            let e = r.expect_err(&format!("{what}({bad:?}) accepted a bad name"));
            check(what, e.errno());
            msgs.push(e.message().to_string());
        }
        for m in &msgs {
            assert!(
                reasons.iter().any(|r| m.to_lowercase().contains(r)),
                "message for {bad:?} does not say why ({reasons:?}): {m}"
            );
        }
        // And through the C ABI.
        let c = CString::new(bad).unwrap();
        // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
        // locals (or NULL): what the C ABI accepts.
        assert_eq!(unsafe { ffi::ring_create(c.as_ptr(), 4096, 2) }, -libc::EINVAL, "C create({bad:?})");
        let m = last_error();
        assert!(reasons.iter().any(|r| m.to_lowercase().contains(r)), "C message for {bad:?}: {m}");
        // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
        // locals (or NULL): what the C ABI accepts.
        assert_eq!(unsafe { ffi::ring_exists(c.as_ptr()) }, -libc::EINVAL);
    }
    // Nothing was created in /dev/shm for any of them (`..` and `a/b` would escape).
    assert!(!std::path::Path::new("/dev/shm/a b").exists());

    // A name of exactly 255 bytes is fine.
    let prefix = format!("t-name255-{}-", std::process::id());
    let name = format!("{prefix}{}", "y".repeat(255 - prefix.len()));
    assert_eq!(name.len(), 255);
    let guard = RingName::exact(&name);
    ring::create(&name, opts(4096, 2)).unwrap();
    assert!(ring::exists(&name).unwrap());
    ring::remove(&name).unwrap();
    drop(guard);
}

#[test]
fn exists_list_remove() {
    let missing = RingName::new("missing");
    assert!(!ring::exists(missing.s()).unwrap());
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_exists(missing.c().as_ptr()) }, 0);
    assert_eq!(errno(ring::remove(missing.s())), libc::ENOENT);
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_remove(missing.c().as_ptr()) }, -libc::ENOENT);
    assert!(last_error().contains(missing.s()), "{}", last_error());
    assert_eq!(errno(ring::usage(missing.s())), libc::ENOENT);
    assert_eq!(errno(ring::format(missing.s(), 2)), libc::ENOENT);
    assert_eq!(errno(Producer::attach(missing.s())), libc::ENOENT);
    assert_eq!(errno(Consumer::attach(missing.s())), libc::ENOENT);
    assert_eq!(errno(ring::disconnect_producer(missing.s())), libc::ENOENT);
    assert_eq!(errno(ring::disconnect_consumer(missing.s(), 0)), libc::ENOENT);
    assert!(!missing.path().exists(), "a failed operation created the object");

    // Three rings created out of order, plus a plain file that is not a ring.
    let names = [RingName::new("list-c"), RingName::new("list-a"), RingName::new("list-b")];
    for r in &names {
        ring::create(r.s(), opts(4096, 1)).unwrap();
        assert!(ring::exists(r.s()).unwrap());
        // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
        // locals (or NULL): what the C ABI accepts.
        assert_eq!(unsafe { ffi::ring_exists(r.c().as_ptr()) }, 1);
    }
    let junk = RingName::new("list-junk");
    std::fs::write(junk.path(), vec![0u8; 8192]).unwrap();
    let listed = ring::list().unwrap();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted, "list is not sorted");
    for r in &names {
        assert!(listed.iter().any(|n| n == r.s()), "{} not listed", r.s());
    }
    assert!(!listed.iter().any(|n| n == junk.s()), "a non-ring was listed");

    // Through the C ABI.
    let mut arr: *mut *mut c_char = std::ptr::null_mut();
    let mut count = 0usize;
    // SAFETY: both out-pointers point to live locals.
    assert_eq!(unsafe { ffi::ring_list(&mut arr, &mut count) }, 0);
    let c_names: Vec<String> =
        // SAFETY: ring_list made `count` NUL-terminated names at `arr`, which live until ring_list_free below.
        (0..count).map(|i| unsafe { CStr::from_ptr(*arr.add(i)) }.to_string_lossy().into_owned()).collect();
    // SAFETY: `arr` and `count` as ring_list returned them, freed once.
    unsafe { ffi::ring_list_free(arr, count) };
    let mut c_sorted = c_names.clone();
    c_sorted.sort();
    assert_eq!(c_names, c_sorted);
    for r in &names {
        assert!(c_names.iter().any(|n| n == r.s()));
    }
    assert!(!c_names.iter().any(|n| n == junk.s()));
    // SAFETY: NULL is allowed and frees nothing.
    unsafe { ffi::ring_list_free(std::ptr::null_mut(), 0) };

    // remove, then it is gone everywhere.
    ring::remove(names[0].s()).unwrap();
    assert!(!names[0].path().exists());
    assert!(!ring::exists(names[0].s()).unwrap());
    assert!(!ring::list().unwrap().iter().any(|n| n == names[0].s()));
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_remove(names[1].c().as_ptr()) }, 0);
    assert!(!names[1].path().exists());
    assert_eq!(errno(ring::remove(names[1].s())), libc::ENOENT);
}

// ---------------------------------------------------------------------------------
// a failed create leaves nothing behind (spec section 1)

const FAILED_CREATE_ENV: &str = "DAQFLOW_TEST_FAILED_CREATE_NAMES";

/// Runs only as a child of `failed_create_leaves_nothing_behind` (re-executed test
/// binary): file size limit below the ring size, so ftruncate fails with EFBIG.
#[test]
fn failed_create_child() {
    let Ok(names) = std::env::var(FAILED_CREATE_ENV) else { return };
    let names: Vec<&str> = names.split(',').collect();
    // SAFETY: SIG_IGN is a valid disposition; getrlimit and setrlimit get pointers to a
    // local rlimit, for which all-zero bits are a valid value. This child process runs
    // this one test only, so nothing else depends on the signal or the limit.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let mut lim = std::mem::zeroed::<libc::rlimit>();
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut lim), 0);
        lim.rlim_cur = 1 << 20;
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0);
    }
    // Rust API, default size (8 MiB > 1 MiB limit).
    let e = ring::create(names[0], CreateOptions::default()).unwrap_err();
    assert_eq!(e.errno(), libc::EFBIG, "{}", e.message());
    assert!(!e.message().is_empty());
    assert!(std::fs::symlink_metadata(shm_path(names[0])).is_err(), "failed create left /dev/shm/{}", names[0]);
    // C ABI.
    let c = CString::new(names[1]).unwrap();
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_create(c.as_ptr(), 2 << 20, 4) }, -libc::EFBIG, "{}", last_error());
    assert!(!last_error().is_empty());
    assert!(std::fs::symlink_metadata(shm_path(names[1])).is_err(), "failed C create left /dev/shm/{}", names[1]);
    // The name is free again: a ring under the limit can be made with it.
    ring::create(names[1], opts(4096, 2)).unwrap();
    assert!(ring::exists(names[1]).unwrap());
    ring::remove(names[1]).unwrap();
    println!("FAILED-CREATE-CHILD-OK");
}

#[test]
fn failed_create_leaves_nothing_behind() {
    let a = RingName::new("failcreate-a");
    let b = RingName::new("failcreate-b");
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "failed_create_child", "--nocapture", "--test-threads=1"])
        .env(FAILED_CREATE_ENV, format!("{},{}", a.s(), b.s()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stdout.contains("FAILED-CREATE-CHILD-OK"), "child failed:\n{stdout}\n{stderr}");
    assert!(std::fs::symlink_metadata(a.path()).is_err());
    assert!(std::fs::symlink_metadata(b.path()).is_err());
    // And the names are usable (no EEXIST debris).
    ring::create(a.s(), opts(4096, 2)).unwrap();
}

// ---------------------------------------------------------------------------------
// data path

#[test]
fn put_get_round_trips_across_the_wrap() {
    let r = small_ring("roundtrip");
    let mut c = Consumer::attach(r.s()).unwrap();
    let mut c2 = Consumer::attach(r.s()).unwrap();
    let mut p = Producer::attach(r.s()).unwrap();
    let mut sizes: Vec<usize> =
        vec![1, 2, 3, 7, 8, 15, 16, 63, 64, 100, 127, 128, 1000, 4031, 4032, 4033, 8000, 8062, 8063];
    let mut x = 12345u64;
    for _ in 0..300 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        sizes.push(1 + (x >> 33) as usize % 8063);
    }
    let mut total = 0u64;
    let mut crossed = 0;
    for (i, &n) in sizes.iter().enumerate() {
        let before = put_ptr(r.s());
        let data = pattern(n, i as u64);
        p.put(&data, Some(Duration::ZERO)).unwrap();
        total += n as u64;
        let after = put_ptr(r.s());
        // Pointer arithmetic of spec section 5.
        let mut expect = before + n as u64;
        if expect > SMALL_T {
            expect -= SMALL_D;
            crossed += 1;
        }
        assert_eq!(after, expect, "put pointer after {n} bytes from {before}");
        assert_eq!(c.available().unwrap(), n as u64);
        let mut back = vec![0u8; n];
        assert_eq!(c.get(&mut back, n as u64, Some(Duration::ZERO)).unwrap(), n);
        assert!(back == data, "record {i} of {n} bytes corrupted (put pointer was {before})");
        // The second consumer reads it in two pieces.
        let half = n / 2;
        let mut b1 = vec![0u8; half];
        let mut b2 = vec![0u8; n - half];
        assert_eq!(c2.get(&mut b1, half as u64, Some(Duration::ZERO)).unwrap(), half);
        assert_eq!(c2.get(&mut b2, (n - half) as u64, Some(Duration::ZERO)).unwrap(), n - half);
        b1.extend_from_slice(&b2);
        assert!(b1 == data);
        // Consumers' records follow.
        assert_eq!(read_u64(r.s(), 96 + 16 * c.slot() as u64), after);
    }
    assert!(crossed > 50, "only {crossed} wraps");
    assert!(total > 10 * SMALL_D);
}

#[test]
fn write_ending_on_top_leaves_pointer_at_base() {
    let r = small_ring("ontop");
    let mut c = Consumer::attach(r.s()).unwrap();
    let mut p = Producer::attach(r.s()).unwrap();
    move_to(&mut p, &mut [&mut c], r.s(), 5000);
    let n = (SMALL_T - 5000 + 1) as usize;
    let data = pattern(n, 7);
    p.put(&data, Some(Duration::ZERO)).unwrap();
    assert_eq!(put_ptr(r.s()), SMALL_B, "a write ending exactly on T leaves the pointer at B");
    let mut back = vec![0u8; n];
    assert_eq!(c.get(&mut back, n as u64, Some(Duration::ZERO)).unwrap(), n);
    assert!(back == data);
    assert_eq!(read_u64(r.s(), 96 + 16 * c.slot() as u64), SMALL_B);
    // And the data went to the last bytes of the mapping.
    let f = File::open(r.path()).unwrap();
    let mut tail = vec![0u8; n];
    f.read_exact_at(&mut tail, 5000).unwrap();
    assert!(tail == data);
}

#[test]
fn one_byte_gap() {
    let r = small_ring("gap");
    let mut c = Consumer::attach(r.s()).unwrap();
    let mut p = Producer::attach(r.s()).unwrap();
    for start in [SMALL_B, 6000] {
        move_to(&mut p, &mut [&mut c], r.s(), start);
        let data = pattern((SMALL_D - 1) as usize, start);
        p.put(&data, Some(Duration::ZERO)).unwrap();
        assert_eq!(p.available_space().unwrap(), 0);
        let u = ring::usage(r.s()).unwrap();
        assert_eq!((u.put_space, u.max_get, u.min_get), (0, SMALL_D - 1, SMALL_D - 1));
        assert_eq!(errno(p.put(b"x", Some(Duration::ZERO))), libc::ETIMEDOUT);
        let t = Instant::now();
        assert_eq!(errno(p.put(b"x", Some(Duration::from_millis(50)))), libc::ETIMEDOUT);
        assert!(t.elapsed() >= Duration::from_millis(50));
        assert_eq!(c.available().unwrap(), SMALL_D - 1, "a full ring must not look empty");
        // Put pointer is one behind the get pointer.
        let put = put_ptr(r.s());
        let get = read_u64(r.s(), 96 + 16 * c.slot() as u64);
        assert_eq!(get, start);
        assert_eq!(put, if start == SMALL_B { SMALL_T } else { start - 1 }, "put stops one byte behind get");
        let mut back = vec![0u8; data.len()];
        assert_eq!(c.get(&mut back, 1, Some(Duration::ZERO)).unwrap(), data.len());
        assert!(back == data);
        // One byte freed: a one-byte put fits again.
        p.put(b"y", Some(Duration::ZERO)).unwrap();
        c.skip(1).unwrap();
    }
}

#[test]
fn emsgsize_at_once_even_waiting_forever() {
    let r = small_ring("emsgsize");
    let c = Consumer::attach(r.s()).unwrap();
    let p = Producer::attach(r.s()).unwrap();
    let (p, c) = within(Duration::from_secs(5), "put(D) / get(min = D) with no timeout", move || {
        let mut p = p;
        let mut c = c;
        let big = vec![1u8; SMALL_D as usize];
        let t = Instant::now();
        assert_eq!(p.put(&big, None).unwrap_err().errno(), libc::EMSGSIZE);
        assert_eq!(p.put(&vec![1u8; 1 << 20], None).unwrap_err().errno(), libc::EMSGSIZE);
        let mut buf = vec![0u8; SMALL_D as usize];
        assert_eq!(c.get(&mut buf, SMALL_D, None).unwrap_err().errno(), libc::EMSGSIZE);
        assert_eq!(p.reserve(SMALL_D, None).unwrap_err().errno(), libc::EMSGSIZE);
        assert_eq!(c.borrow(SMALL_D, SMALL_D, None).unwrap_err().errno(), libc::EMSGSIZE);
        assert!(t.elapsed() < Duration::from_secs(1), "EMSGSIZE took {:?}", t.elapsed());
        (p, c)
    });
    // Nothing happened to the ring.
    assert_eq!(c.available().unwrap(), 0);
    assert_eq!(p.available_space().unwrap(), SMALL_D - 1);
    drop((p, c));

    // The same through the C ABI with timeout -1.
    let name = r.c();
    struct Send2(*mut ffi::ring_client, *mut ffi::ring_client);
    // SAFETY: the handles move to one thread and back; the C ABI allows a handle on any
    // thread as long as one thread at a time uses it, which `within` ensures.
    unsafe impl Send for Send2 {}
    let mut pp = std::ptr::null_mut();
    let mut cc = std::ptr::null_mut();
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_attach_consumer(name.as_ptr(), &mut cc) }, 0);
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_attach_producer(name.as_ptr(), &mut pp) }, 0);
    let h = Send2(pp, cc);
    let h = within(Duration::from_secs(5), "ring_put / ring_get EMSGSIZE with timeout -1", move || {
        let h = h;
        let big = vec![1u8; SMALL_D as usize];
        let mut buf = vec![0u8; SMALL_D as usize];
        // SAFETY: handles still attached, used by this thread alone; local buffers at least
        // as long as the lengths passed.
        unsafe {
            assert_eq!(ffi::ring_put(h.0, big.as_ptr().cast(), big.len(), -1), -libc::EMSGSIZE);
            assert!(!last_error().is_empty());
            assert_eq!(
                ffi::ring_get(h.1, buf.as_mut_ptr().cast(), buf.len(), buf.len(), -1),
                -(libc::EMSGSIZE as isize)
            );
            assert!(!last_error().is_empty());
        }
        h
    });
    // SAFETY: handles from ring_attach_*, back from the thread that is done with them, not
    // used after.
    unsafe {
        assert_eq!(ffi::ring_detach(h.0), 0);
        assert_eq!(ffi::ring_detach(h.1), 0);
    }
}

#[test]
fn timeouts_are_honoured() {
    let r = small_ring("timeouts");
    let mut c = Consumer::attach(r.s()).unwrap();
    let mut p = Producer::attach(r.s()).unwrap();
    let mut buf = [0u8; 16];
    for ms in [0u64, 150, 400] {
        let t = Instant::now();
        assert_eq!(errno(c.get(&mut buf, 1, Some(Duration::from_millis(ms)))), libc::ETIMEDOUT);
        let e = t.elapsed();
        assert!(e >= Duration::from_millis(ms), "get returned after {e:?}, timeout {ms} ms");
        assert!(e < Duration::from_millis(ms + 1500), "get returned after {e:?}, timeout {ms} ms");
    }
    p.put(&vec![0u8; (SMALL_D - 1) as usize], Some(Duration::ZERO)).unwrap();
    for ms in [0u64, 150, 400] {
        let t = Instant::now();
        assert_eq!(errno(p.put(&[1u8; 10], Some(Duration::from_millis(ms)))), libc::ETIMEDOUT);
        let e = t.elapsed();
        assert!(
            e >= Duration::from_millis(ms) && e < Duration::from_millis(ms + 1500),
            "put after {e:?}, timeout {ms}"
        );
    }
    // C ABI, in ms.
    let mut cc = std::ptr::null_mut();
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_attach_consumer(r.c().as_ptr(), &mut cc) }, 0);
    let t = Instant::now();
    // SAFETY: a live consumer handle; `buf` is a local buffer at least as long as the length passed.
    let n = unsafe { ffi::ring_get(cc, buf.as_mut_ptr().cast(), 1, 16, 200) };
    assert_eq!(n, -(libc::ETIMEDOUT as isize));
    assert!(t.elapsed() >= Duration::from_millis(200) && t.elapsed() < Duration::from_millis(1700));
    assert!(!last_error().is_empty());
    // SAFETY: a handle from ring_attach_* that is still attached; it is not used after this.
    unsafe { ffi::ring_detach(cc) };
}

#[test]
fn blocked_get_is_woken_by_put_and_honours_min() {
    let r = small_ring("wake");
    let c = Consumer::attach(r.s()).unwrap();
    let mut p = Producer::attach(r.s()).unwrap();
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        let mut c = c;
        let mut buf = vec![0u8; 1000];
        let n = c.get(&mut buf, 100, Some(Duration::from_secs(20)));
        tx.send(n.map(|n| buf[..n].to_vec())).unwrap();
        c
    });
    let d1 = pattern(60, 1);
    p.put(&d1, Some(Duration::ZERO)).unwrap();
    // 60 < min = 100: the get must still be waiting.
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err(), "get returned before min bytes were there");
    let d2 = pattern(50, 2);
    p.put(&d2, Some(Duration::ZERO)).unwrap();
    let got = rx.recv_timeout(Duration::from_secs(5)).expect("blocked get not woken").unwrap();
    assert_eq!(got.len(), 110, "get returns min(available, max)");
    assert_eq!(&got[..60], &d1[..]);
    assert_eq!(&got[60..], &d2[..]);
    let mut c = t.join().unwrap();

    // Forever (None) is woken too.
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        let mut buf = vec![0u8; 10];
        let n = c.get(&mut buf, 10, None);
        tx.send(n.map(|n| buf[..n].to_vec())).unwrap();
    });
    p.put(&pattern(10, 3), Some(Duration::ZERO)).unwrap();
    let got = rx.recv_timeout(Duration::from_secs(5)).expect("blocked get(None) not woken").unwrap();
    assert_eq!(got, pattern(10, 3));
    t.join().unwrap();
}

#[test]
fn blocked_put_is_woken_by_get() {
    let r = small_ring("wakeput");
    let mut c = Consumer::attach(r.s()).unwrap();
    let mut p = Producer::attach(r.s()).unwrap();
    p.put(&vec![5u8; 8000], Some(Duration::ZERO)).unwrap();
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        let r = p.put(&pattern(1000, 9), None);
        tx.send(r).unwrap();
        p
    });
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err(), "put did not wait for space");
    let mut buf = vec![0u8; 500];
    assert_eq!(c.get(&mut buf, 500, Some(Duration::ZERO)).unwrap(), 500);
    // 63 + 500 < 1000: still waiting.
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err(), "put did not wait for enough space");
    let mut buf = vec![0u8; 7500];
    assert_eq!(c.get(&mut buf, 7500, Some(Duration::ZERO)).unwrap(), 7500);
    rx.recv_timeout(Duration::from_secs(5)).expect("blocked put not woken").unwrap();
    let _p = t.join().unwrap();
    let mut back = vec![0u8; 1000];
    assert_eq!(c.get(&mut back, 1000, Some(Duration::ZERO)).unwrap(), 1000);
    assert_eq!(back, pattern(1000, 9));
}

#[test]
fn get_min_semantics() {
    let r = small_ring("getmin");
    let mut c = Consumer::attach(r.s()).unwrap();
    let mut p = Producer::attach(r.s()).unwrap();
    let mut buf = vec![0u8; 1000];
    // min 0 never waits.
    let t = Instant::now();
    assert_eq!(c.get(&mut buf, 0, None).unwrap(), 0);
    assert!(t.elapsed() < Duration::from_secs(1));
    let data = pattern(300, 4);
    p.put(&data, Some(Duration::ZERO)).unwrap();
    // min above what is there: times out and consumes nothing.
    assert_eq!(errno(c.get(&mut buf, 301, Some(Duration::ZERO))), libc::ETIMEDOUT);
    assert_eq!(c.available().unwrap(), 300);
    // max below what is there: exactly max.
    assert_eq!(c.get(&mut buf[..50], 10, Some(Duration::ZERO)).unwrap(), 50);
    assert_eq!(&buf[..50], &data[..50]);
    // max above: everything that is there.
    assert_eq!(c.get(&mut buf, 1, Some(Duration::ZERO)).unwrap(), 250);
    assert_eq!(&buf[..250], &data[50..]);
    assert_eq!(c.available().unwrap(), 0);
    // min 0 with data returns it.
    p.put(&data[..20], Some(Duration::ZERO)).unwrap();
    assert_eq!(c.get(&mut buf, 0, Some(Duration::ZERO)).unwrap(), 20);
    // C ABI: min/max.
    let mut cc = std::ptr::null_mut();
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_attach_consumer(r.c().as_ptr(), &mut cc) }, 0);
    p.put(&data, Some(Duration::ZERO)).unwrap();
    // SAFETY: a live consumer handle; `buf` is a local buffer at least as long as the length passed.
    assert_eq!(unsafe { ffi::ring_get(cc, buf.as_mut_ptr().cast(), 100, 120, 0) }, 120);
    assert_eq!(&buf[..120], &data[..120]);
    // SAFETY: a live consumer handle; `buf` is a local buffer at least as long as the length passed.
    assert_eq!(unsafe { ffi::ring_get(cc, buf.as_mut_ptr().cast(), 181, 1000, 0) }, -(libc::ETIMEDOUT as isize));
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_available_data(cc) }, 180);
    // SAFETY: a live consumer handle; `buf` is a local buffer at least as long as the length passed.
    assert_eq!(unsafe { ffi::ring_get(cc, buf.as_mut_ptr().cast(), 180, 1000, 0) }, 180);
    assert_eq!(&buf[..180], &data[120..]);
    // SAFETY: a handle from ring_attach_* that is still attached; it is not used after this.
    unsafe { ffi::ring_detach(cc) };
}

#[test]
fn peek_does_not_consume_and_skip_ranges() {
    let r = small_ring("peekskip");
    let mut c = Consumer::attach(r.s()).unwrap();
    let mut p = Producer::attach(r.s()).unwrap();
    let mut buf = vec![0u8; 4000];
    assert_eq!(c.peek(&mut buf).unwrap(), 0, "peek of an empty ring");
    // Across the wrap.
    move_to(&mut p, &mut [&mut c], r.s(), 7000);
    let data = pattern(3000, 11);
    p.put(&data, Some(Duration::ZERO)).unwrap();
    assert_eq!(c.peek(&mut buf[..50]).unwrap(), 50);
    assert_eq!(&buf[..50], &data[..50]);
    for _ in 0..2 {
        assert_eq!(c.peek(&mut buf).unwrap(), 3000);
        assert!(buf[..3000] == data[..]);
        assert_eq!(c.available().unwrap(), 3000);
        assert_eq!(ring::usage(r.s()).unwrap().consumers[0].backlog, 3000);
    }
    // skip
    c.skip(0).unwrap();
    c.skip(1500).unwrap();
    assert_eq!(c.available().unwrap(), 1500);
    assert_eq!(errno(c.skip(1501)), libc::ERANGE);
    assert_eq!(c.available().unwrap(), 1500, "a refused skip moved the pointer");
    assert_eq!(c.peek(&mut buf[..10]).unwrap(), 10);
    assert_eq!(&buf[..10], &data[1500..1510]);
    let mut rest = vec![0u8; 1500];
    assert_eq!(c.get(&mut rest, 1500, Some(Duration::ZERO)).unwrap(), 1500);
    assert!(rest[..] == data[1500..]);
    assert_eq!(errno(c.skip(1)), libc::ERANGE);
    // C ABI.
    let mut cc = std::ptr::null_mut();
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_attach_consumer(r.c().as_ptr(), &mut cc) }, 0);
    p.put(&data[..100], Some(Duration::ZERO)).unwrap();
    // SAFETY: a live consumer handle; `buf` is a local buffer at least as long as the length passed.
    assert_eq!(unsafe { ffi::ring_peek(cc, buf.as_mut_ptr().cast(), 4000) }, 100);
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_skip(cc, 101) }, -libc::ERANGE);
    assert!(!last_error().is_empty());
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_skip(cc, 40) }, 0);
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_available_data(cc) }, 60);
    // SAFETY: a live consumer handle; `buf` is a local buffer at least as long as the length passed.
    assert_eq!(unsafe { ffi::ring_peek(cc, buf.as_mut_ptr().cast(), 4000) }, 60);
    assert_eq!(&buf[..60], &data[40..100]);
    // SAFETY: a handle from ring_attach_* that is still attached; it is not used after this.
    unsafe { ffi::ring_detach(cc) };
}

#[test]
fn new_consumer_sees_only_later_data() {
    let r = small_ring("latejoin");
    let mut a = Consumer::attach(r.s()).unwrap();
    let mut p = Producer::attach(r.s()).unwrap();
    p.put(&pattern(100, 1), Some(Duration::ZERO)).unwrap();
    let mut b = Consumer::attach(r.s()).unwrap();
    assert_eq!(b.available().unwrap(), 0);
    let mut buf = vec![0u8; 200];
    assert_eq!(b.peek(&mut buf).unwrap(), 0);
    p.put(&pattern(50, 2), Some(Duration::ZERO)).unwrap();
    assert_eq!(b.get(&mut buf, 1, Some(Duration::ZERO)).unwrap(), 50);
    assert_eq!(&buf[..50], &pattern(50, 2)[..]);
    assert_eq!(a.get(&mut buf, 1, Some(Duration::ZERO)).unwrap(), 150);
    assert_eq!(&buf[..100], &pattern(100, 1)[..]);
    // The join starts at the put pointer in shared memory.
    drop(b);
    let mut c = Consumer::attach(r.s()).unwrap();
    assert_eq!(read_u64(r.s(), 96 + 16 * c.slot() as u64), put_ptr(r.s()));
    assert_eq!(c.get(&mut buf, 0, Some(Duration::ZERO)).unwrap(), 0);
}

#[test]
fn producer_without_consumers_never_blocks() {
    let r = small_ring("noconsumers");
    let mut p = Producer::attach(r.s()).unwrap();
    let t = Instant::now();
    for i in 0..10 {
        p.put(&pattern((SMALL_D - 1) as usize, i), Some(Duration::ZERO)).unwrap();
        p.put(&pattern(777, i), None).unwrap();
    }
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(p.available_space().unwrap(), SMALL_D - 1);
    // A consumer that leaves with a backlog no longer holds space.
    let c = Consumer::attach(r.s()).unwrap();
    assert_eq!(c.available().unwrap(), 0);
    p.put(&vec![1u8; 8000], Some(Duration::ZERO)).unwrap();
    assert_eq!(errno(p.put(&[1u8; 100], Some(Duration::ZERO))), libc::ETIMEDOUT);
    c.detach().unwrap();
    p.put(&[1u8; 100], Some(Duration::ZERO)).unwrap();
    let u = ring::usage(r.s()).unwrap();
    assert_eq!((u.put_space, u.max_get, u.min_get), (SMALL_D - 1, 0, 0));
}

#[test]
fn producer_slot_is_exclusive_and_keeps_the_put_pointer() {
    let r = small_ring("eacces");
    let mut c = Consumer::attach(r.s()).unwrap();
    let mut p = Producer::attach(r.s()).unwrap();
    assert_eq!(errno(Producer::attach(r.s())), libc::EACCES);
    let mut out: *mut ffi::ring_client = 0x1234 as *mut _;
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_attach_producer(r.c().as_ptr(), &mut out) }, -libc::EACCES);
    assert_eq!(out as usize, 0x1234, "out-parameter written on failure");
    assert!(last_error().contains(r.s()), "{}", last_error());
    assert_eq!(ring::usage(r.s()).unwrap().producer_pid, std::process::id() as i32);
    assert_eq!(read_i32(r.s(), 88), std::process::id() as i32);
    p.put(&pattern(10, 1), Some(Duration::ZERO)).unwrap();
    p.detach().unwrap();
    assert_eq!(read_i32(r.s(), 88), -1);
    assert_eq!(ring::usage(r.s()).unwrap().producer_pid, -1);
    let mut p2 = Producer::attach(r.s()).unwrap();
    p2.put(&pattern(10, 2), Some(Duration::ZERO)).unwrap();
    let mut buf = [0u8; 20];
    assert_eq!(c.get(&mut buf, 20, Some(Duration::ZERO)).unwrap(), 20);
    assert_eq!(&buf[..10], &pattern(10, 1)[..]);
    assert_eq!(&buf[10..], &pattern(10, 2)[..]);
}

#[test]
fn consumer_slots_run_out_with_enomem() {
    let r = small_ring("enomem");
    let a = Consumer::attach(r.s()).unwrap();
    let b = Consumer::attach(r.s()).unwrap();
    // NSCLDAQ takes the lowest free slot.
    assert_eq!((a.slot(), b.slot()), (0, 1));
    assert_eq!(errno(Consumer::attach(r.s())), libc::ENOMEM);
    let mut out: *mut ffi::ring_client = std::ptr::null_mut();
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_attach_consumer(r.c().as_ptr(), &mut out) }, -libc::ENOMEM);
    assert!(out.is_null());
    assert!(!last_error().is_empty());
    drop(a);
    let c = Consumer::attach(r.s()).unwrap();
    assert_eq!(c.slot(), 0);
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_attach_consumer(r.c().as_ptr(), &mut out) }, -libc::ENOMEM);
    drop(b);
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_attach_consumer(r.c().as_ptr(), &mut out) }, 0);
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_slot(out) }, 1);
    // SAFETY: a handle from ring_attach_* that is still attached; it is not used after this.
    unsafe { ffi::ring_detach(out) };
}

#[test]
fn dead_clients_slots_are_reclaimed() {
    // A pid that names no process: a child that has exited and been reaped.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id() as i32;
    child.wait().unwrap();
    let r = small_ring("dead");
    write_i32(r.s(), 88, dead);
    write_i32(r.s(), 96 + 8, dead);
    write_i32(r.s(), 112 + 8, dead);
    let p = Producer::attach(r.s()).expect("a dead producer's slot must be reclaimed");
    let c = Consumer::attach(r.s()).expect("a dead consumer's slot must be reclaimed");
    drop((p, c));
    write_i32(r.s(), 96 + 8, dead);
    let u = ring::usage(r.s()).unwrap();
    assert!(u.consumers.iter().all(|c| c.pid != dead), "usage lists a dead consumer: {u:?}");
    // A dead consumer holding space does not stall the producer forever.
    let mut p = Producer::attach(r.s()).unwrap();
    let c = Consumer::attach(r.s()).unwrap();
    let slot = c.slot();
    p.put(&vec![0u8; 8000], Some(Duration::ZERO)).unwrap();
    std::mem::forget(c);
    write_i32(r.s(), 96 + 16 * slot as u64 + 8, dead);
    p.put(&[0u8; 1000], Some(Duration::from_secs(3))).expect("producer stalled by a dead consumer");
}

#[test]
fn disconnects_and_enotconn() {
    let r = small_ring("disconnect");
    let mut p = Producer::attach(r.s()).unwrap();
    let mut c = Consumer::attach(r.s()).unwrap();
    p.put(&[1u8; 10], Some(Duration::ZERO)).unwrap();
    ring::disconnect_producer(r.s()).unwrap();
    assert_eq!(ring::usage(r.s()).unwrap().producer_pid, -1);
    assert_eq!(errno(p.put(&[1u8; 10], Some(Duration::ZERO))), libc::ENOTCONN);
    assert_eq!(errno(p.put(&[1u8; 10], None)), libc::ENOTCONN);
    assert_eq!(errno(p.available_space()), libc::ENOTCONN);
    assert_eq!(errno(p.reserve(10, Some(Duration::ZERO))), libc::ENOTCONN);
    // The slot is free for someone else (C ABI).
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_disconnect_consumer(r.c().as_ptr(), 2) }, -libc::ERANGE);
    assert!(last_error().contains(r.s()), "{}", last_error());
    assert_eq!(errno(ring::disconnect_consumer(r.s(), 2)), libc::ERANGE);
    assert_eq!(errno(ring::disconnect_consumer(r.s(), u32::MAX)), libc::ERANGE);
    let slot = c.slot();
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_disconnect_consumer(r.c().as_ptr(), slot) }, 0);
    assert!(ring::usage(r.s()).unwrap().consumers.is_empty());
    let mut buf = [0u8; 10];
    assert_eq!(errno(c.get(&mut buf, 1, Some(Duration::ZERO))), libc::ENOTCONN);
    assert_eq!(errno(c.get(&mut buf, 1, None)), libc::ENOTCONN);
    assert_eq!(errno(c.peek(&mut buf)), libc::ENOTCONN);
    assert_eq!(errno(c.skip(1)), libc::ENOTCONN);
    assert_eq!(errno(c.available()), libc::ENOTCONN);
    assert_eq!(errno(c.borrow(1, 10, Some(Duration::ZERO))), libc::ENOTCONN);
    drop(c);
    drop(p);
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_disconnect_producer(r.c().as_ptr()) }, 0, "disconnecting a free slot is fine");

    // A consumer blocked in get is told, not left waiting.
    let c = Consumer::attach(r.s()).unwrap();
    let slot = c.slot();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut c = c;
        let mut buf = [0u8; 10];
        tx.send(c.get(&mut buf, 1, None).map_err(|e| e.errno())).unwrap();
    });
    assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
    ring::disconnect_consumer(r.s(), slot).unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).expect("blocked get not ended by a disconnect"),
        Err(libc::ENOTCONN)
    );

    // A producer blocked on space is told too.
    let _full = Consumer::attach(r.s()).unwrap();
    let mut p = Producer::attach(r.s()).unwrap();
    p.put(&vec![0u8; 8063], Some(Duration::ZERO)).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        tx.send(p.put(&[0u8; 10], None).map_err(|e| e.errno())).unwrap();
    });
    assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
    ring::disconnect_producer(r.s()).unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).expect("blocked put not ended by a disconnect"),
        Err(libc::ENOTCONN)
    );
}

/// After a disconnect the slot may be taken by another handle of the same process
/// (same pid). The old handle must stay disconnected and must not free or move the
/// slot that now belongs to the new handle.
#[test]
fn disconnected_handle_stays_disconnected_after_slot_reuse() {
    let r = small_ring("reuse");
    let mut old = Consumer::attach(r.s()).unwrap();
    let mut p = Producer::attach(r.s()).unwrap();
    let slot = old.slot();
    ring::disconnect_consumer(r.s(), slot).unwrap();
    let mut new = Consumer::attach(r.s()).unwrap();
    assert_eq!(new.slot(), slot, "lowest free slot");
    p.put(&pattern(100, 1), Some(Duration::ZERO)).unwrap();
    let mut buf = [0u8; 100];
    let stale = old.get(&mut buf, 1, Some(Duration::ZERO)).map_err(|e| e.errno());
    drop(old);
    let after_drop = ring::usage(r.s()).unwrap().consumers.len();
    let new_read = new.get(&mut buf, 100, Some(Duration::ZERO)).map_err(|e| e.errno());
    assert_eq!(
        (stale, after_drop, new_read),
        (Err(libc::ENOTCONN), 1, Ok(100)),
        "(get on the disconnected handle, slots in use after dropping it, get on the new handle)"
    );
    assert_eq!(&buf[..], &pattern(100, 1)[..]);
}

// ---------------------------------------------------------------------------------
// format

#[test]
fn format_changes_geometry_and_refuses_live_clients() {
    let r = small_ring("format"); // 8192-byte object
    for (n, header) in [(4u32, 160u64), (0, 1696), (1, 112), (2, 128)] {
        ring::format(r.s(), n).unwrap();
        let nn = if n == 0 { 100 } else { n };
        let d = 8192 - header;
        assert_eq!(std::fs::metadata(r.path()).unwrap().len(), 8192, "format must not resize the object");
        assert_eq!(read_u64(r.s(), 32), nn as u64);
        assert_eq!(read_u64(r.s(), 40), d);
        assert_eq!(read_u64(r.s(), 64), header);
        assert_eq!(read_u64(r.s(), 72), 8191);
        let u = ring::usage(r.s()).unwrap();
        assert_eq!((u.data_bytes, u.put_space, u.max_consumers, u.producer_pid), (d, d - 1, nn, -1));
        // Clients use the new geometry.
        let consumers: Vec<Consumer> = (0..nn.min(5)).map(|_| Consumer::attach(r.s()).unwrap()).collect();
        if nn <= 5 {
            assert_eq!(errno(Consumer::attach(r.s())), libc::ENOMEM);
        }
        let mut p = Producer::attach(r.s()).unwrap();
        p.put(&vec![1u8; (d - 1) as usize], Some(Duration::ZERO)).unwrap();
        assert_eq!(errno(p.put(&vec![1u8; d as usize], Some(Duration::ZERO))), libc::EMSGSIZE);
        drop(p);
        drop(consumers);
    }
    // Format resets every record.
    {
        let mut c = Consumer::attach(r.s()).unwrap();
        let mut p = Producer::attach(r.s()).unwrap();
        p.put(&[1u8; 1000], Some(Duration::ZERO)).unwrap();
        c.skip(500).unwrap();
    }
    ring::format(r.s(), 3).unwrap();
    for rec in [80u64, 96, 112, 128] {
        assert_eq!(read_u64(r.s(), rec), 144);
        assert_eq!(read_i32(r.s(), rec + 8), -1);
    }
    // EBUSY while a live client is attached.
    let p = Producer::attach(r.s()).unwrap();
    assert_eq!(errno(ring::format(r.s(), 2)), libc::EBUSY);
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_format(r.c().as_ptr(), 2) }, -libc::EBUSY);
    assert!(last_error().contains(r.s()), "{}", last_error());
    drop(p);
    let c = Consumer::attach(r.s()).unwrap();
    assert_eq!(errno(ring::format(r.s(), 2)), libc::EBUSY);
    assert_eq!(read_u64(r.s(), 32), 3, "a refused format changed the header");
    drop(c);
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_format(r.c().as_ptr(), 2) }, 0, "{}", last_error());
    assert_eq!(read_u64(r.s(), 32), 2);
    // Too many consumers for the object: refused, header untouched.
    assert!(ring::format(r.s(), 1000).is_err());
    assert_eq!(read_u64(r.s(), 32), 2);
    assert_eq!(ring::usage(r.s()).unwrap().data_bytes, SMALL_D);
}

// ---------------------------------------------------------------------------------
// usage

#[test]
fn usage_figures() {
    let r = RingName::new("usage");
    ring::create(r.s(), opts(65536, 4)).unwrap(); // D = 69472
    let d = 69_472u64;
    let mut c0 = Consumer::attach(r.s()).unwrap();
    let c1 = Consumer::attach(r.s()).unwrap();
    let mut c2 = Consumer::attach(r.s()).unwrap();
    assert_eq!((c0.slot(), c1.slot(), c2.slot()), (0, 1, 2));
    drop(c1); // leaves a hole at slot 1
    let mut p = Producer::attach(r.s()).unwrap();
    p.put(&vec![0u8; 10_000], Some(Duration::ZERO)).unwrap();
    let mut c3 = Consumer::attach(r.s()).unwrap(); // takes slot 1, backlog 0
    assert_eq!(c3.slot(), 1);
    p.put(&vec![0u8; 5_000], Some(Duration::ZERO)).unwrap();
    c0.skip(12_000).unwrap();
    let me = std::process::id() as i32;
    let u = ring::usage(r.s()).unwrap();
    assert_eq!(u.data_bytes, d);
    assert_eq!(u.max_consumers, 4);
    assert_eq!(u.producer_pid, me);
    assert_eq!(u.max_get, 15_000);
    assert_eq!(u.min_get, 3_000);
    assert_eq!(u.put_space, d - 1 - 15_000);
    assert_eq!(p.available_space().unwrap(), d - 1 - 15_000);
    let got: Vec<(u32, i32, u64)> = u.consumers.iter().map(|c| (c.slot, c.pid, c.backlog)).collect();
    assert_eq!(got, vec![(0, me, 3_000), (1, me, 5_000), (2, me, 15_000)], "consumers in slot order");

    // C ABI: capacity smaller than the number of consumers.
    let mut info = std::mem::MaybeUninit::<ffi::ring_usage_info>::zeroed();
    let mut entries = [
        ffi::ring_consumer_info { pid: 77, slot: 77, backlog: 77 },
        ffi::ring_consumer_info { pid: 77, slot: 77, backlog: 77 },
        ffi::ring_consumer_info { pid: 77, slot: 77, backlog: 77 },
    ];
    // SAFETY: a NUL-terminated name; `info` points to a live local, and `consumers` is NULL with capacity 0 or a
    // local array of that capacity.
    let n = unsafe { ffi::ring_usage(r.c().as_ptr(), info.as_mut_ptr(), entries.as_mut_ptr(), 2) };
    assert_eq!(n, 3, "returns n_consumers even when it exceeds capacity");
    // SAFETY: ring_usage returned 0, so it wrote *info (which was zeroed besides).
    let info = unsafe { info.assume_init() };
    assert_eq!((info.data_bytes, info.put_space, info.max_consumers, info.producer_pid), (d, d - 1 - 15_000, 4, me));
    assert_eq!((info.max_get, info.min_get, info.n_consumers), (15_000, 3_000, 3));
    assert_eq!((entries[0].pid, entries[0].slot, entries[0].backlog), (me, 0, 3_000));
    assert_eq!((entries[1].pid, entries[1].slot, entries[1].backlog), (me, 1, 5_000));
    assert_eq!((entries[2].pid, entries[2].slot, entries[2].backlog), (77, 77, 77), "wrote past capacity");

    // Consumers drain: figures follow.
    let mut buf = vec![0u8; 20_000];
    c2.get(&mut buf, 1, Some(Duration::ZERO)).unwrap();
    c3.get(&mut buf, 1, Some(Duration::ZERO)).unwrap();
    let u = ring::usage(r.s()).unwrap();
    assert_eq!((u.max_get, u.min_get, u.put_space), (3_000, 0, d - 1 - 3_000));
}

// ---------------------------------------------------------------------------------
// zero copy

/// # Safety
/// `span` is part of a reservation not yet committed, and `src` is `span.len` long.
unsafe fn fill(span: daqflow::ring::Span, src: &[u8]) {
    // SAFETY: per our contract, the span is ring memory ours alone to write, and the
    // source (a local slice) cannot overlap it.
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), span.ptr, span.len) };
}

/// # Safety
/// `span` is part of a borrow not yet released.
unsafe fn read_span(span: daqflow::ring::Span) -> Vec<u8> {
    let mut v = vec![0u8; span.len];
    // SAFETY: per our contract, the span is ring memory the producer does not write
    // until the release; the destination is a fresh vector of the span's length.
    unsafe { std::ptr::copy_nonoverlapping(span.ptr, v.as_mut_ptr(), span.len) };
    v
}

#[test]
fn reserve_commit_across_the_wrap() {
    let r = small_ring("reserve");
    let mut c = Consumer::attach(r.s()).unwrap();
    let mut p = Producer::attach(r.s()).unwrap();
    move_to(&mut p, &mut [&mut c], r.s(), 8000);
    let data = pattern(1000, 21);
    let spans = p.reserve(1000, Some(Duration::ZERO)).unwrap();
    assert_eq!(spans[0].len, (SMALL_T - 8000 + 1) as usize, "first span runs to the top");
    assert_eq!(spans[1].len, 1000 - spans[0].len, "second span starts at the data offset");
    // SAFETY: both spans point into the one mapping of the ring (they are parts of one reservation).
    assert_eq!(unsafe { spans[1].ptr.offset_from(spans[0].ptr) }, SMALL_B as isize - 8000);
    // Nothing is visible before commit; a put is refused meanwhile.
    assert_eq!(c.available().unwrap(), 0);
    assert_eq!(errno(p.put(b"x", Some(Duration::ZERO))), libc::EBUSY);
    assert_eq!(errno(p.reserve(1, Some(Duration::ZERO))), libc::EBUSY);
    assert_eq!(p.available_space().unwrap(), SMALL_D - 1 - 1000);
    // SAFETY: the spans of the reservation just made, not yet committed; `data` is as long
    // as both together.
    unsafe {
        fill(spans[0], &data[..spans[0].len]);
        fill(spans[1], &data[spans[0].len..]);
    }
    assert_eq!(errno(p.commit(1001)), libc::EINVAL);
    p.commit(1000).unwrap();
    assert_eq!(put_ptr(r.s()), SMALL_B + (1000 - 192));
    let mut back = vec![0u8; 1000];
    assert_eq!(c.get(&mut back, 1000, Some(Duration::ZERO)).unwrap(), 1000);
    assert!(back == data);

    // Partial commit: only the first bytes are published; the rest is given back.
    let spans = p.reserve(300, Some(Duration::ZERO)).unwrap();
    assert_eq!(spans[1].len, 0);
    // SAFETY: the first span of the reservation just made (the second is empty).
    unsafe { fill(spans[0], &pattern(300, 22)) };
    p.commit(120).unwrap();
    assert_eq!(c.available().unwrap(), 120);
    p.put(&pattern(30, 23), Some(Duration::ZERO)).unwrap();
    let mut back = vec![0u8; 150];
    assert_eq!(c.get(&mut back, 150, Some(Duration::ZERO)).unwrap(), 150);
    assert_eq!(&back[..120], &pattern(300, 22)[..120]);
    assert_eq!(&back[120..], &pattern(30, 23)[..]);
    // Commit of nothing ends the reservation.
    let _ = p.reserve(10, Some(Duration::ZERO)).unwrap();
    p.commit(0).unwrap();
    p.put(b"ok", Some(Duration::ZERO)).unwrap();
    // A reservation waits for space, and times out.
    p.put(&vec![0u8; 8000], Some(Duration::ZERO)).unwrap();
    assert_eq!(errno(p.reserve(100, Some(Duration::from_millis(20)))), libc::ETIMEDOUT);
    p.put(b"still works", Some(Duration::ZERO)).unwrap();
}

#[test]
fn borrow_release_across_the_wrap() {
    let r = small_ring("borrow");
    let mut c = Consumer::attach(r.s()).unwrap();
    let mut p = Producer::attach(r.s()).unwrap();
    assert_eq!(errno(c.borrow(1, 10, Some(Duration::from_millis(20)))), libc::ETIMEDOUT);
    let lent = c.borrow(0, 10, Some(Duration::ZERO)).unwrap();
    assert_eq!(lent[0].len + lent[1].len, 0);
    c.release(0).unwrap();
    move_to(&mut p, &mut [&mut c], r.s(), 7500);
    let data = pattern(2000, 31);
    p.put(&data, Some(Duration::ZERO)).unwrap();
    let spans = c.borrow(1500, 5000, Some(Duration::ZERO)).unwrap();
    assert_eq!(spans[0].len, (SMALL_T - 7500 + 1) as usize);
    assert_eq!(spans[0].len + spans[1].len, 2000);
    // SAFETY: the spans of the borrow just made, not yet released.
    let mut got = unsafe { read_span(spans[0]) };
    // SAFETY: as above.
    got.extend(unsafe { read_span(spans[1]) });
    assert!(got == data);
    let mut buf = [0u8; 10];
    assert_eq!(errno(c.get(&mut buf, 1, Some(Duration::ZERO))), libc::EBUSY);
    assert_eq!(errno(c.borrow(1, 1, Some(Duration::ZERO))), libc::EBUSY);
    assert_eq!(c.available().unwrap(), 2000, "borrowed data is still there until released");
    assert_eq!(errno(c.release(2001)), libc::EINVAL);
    c.release(1000).unwrap();
    assert_eq!(c.available().unwrap(), 1000);
    let spans = c.borrow(1, 400, Some(Duration::ZERO)).unwrap();
    assert_eq!(spans[0].len + spans[1].len, 400);
    // SAFETY: the spans of the borrow just made, not yet released.
    let mut got = unsafe { read_span(spans[0]) };
    // SAFETY: as above.
    got.extend(unsafe { read_span(spans[1]) });
    assert!(got[..] == data[1000..1400]);
    c.release(400).unwrap();
    let mut rest = vec![0u8; 600];
    assert_eq!(c.get(&mut rest, 600, Some(Duration::ZERO)).unwrap(), 600);
    assert!(rest[..] == data[1400..]);
    assert_eq!(ring::usage(r.s()).unwrap().max_get, 0);
}

#[test]
fn zero_copy_through_the_c_abi() {
    let r = small_ring("zc-c");
    let name = r.c();
    let (mut pp, mut cc) = (std::ptr::null_mut(), std::ptr::null_mut());
    // SAFETY: the C ABI with a NUL-terminated name, out-pointers to live locals, handles
    // attached here and detached last; data copied only into spans of a reservation not
    // yet committed and out of spans of a borrow not yet released, from and into local
    // buffers of the spans' lengths.
    unsafe {
        assert_eq!(ffi::ring_attach_consumer(name.as_ptr(), &mut cc), 0);
        assert_eq!(ffi::ring_attach_producer(name.as_ptr(), &mut pp), 0);
        assert_eq!(ffi::ring_slot(pp), -1);
        assert_eq!(ffi::ring_slot(cc), 0);
        // Move to near the top.
        let filler = vec![0u8; 7900];
        assert_eq!(ffi::ring_put(pp, filler.as_ptr().cast(), filler.len(), 0), 0);
        assert_eq!(ffi::ring_skip(cc, 7900), 0);
        let mut spans = [
            ffi::ring_span { data: std::ptr::null_mut(), len: 99 },
            ffi::ring_span { data: std::ptr::null_mut(), len: 99 },
        ];
        assert_eq!(ffi::ring_reserve(pp, 500, spans.as_mut_ptr(), 0), 0, "{}", last_error());
        assert_eq!(spans[0].len, (SMALL_T - (SMALL_B + 7900) + 1) as usize);
        assert_eq!(spans[0].len + spans[1].len, 500);
        let data = pattern(500, 41);
        std::ptr::copy_nonoverlapping(data.as_ptr(), spans[0].data.cast::<u8>(), spans[0].len);
        std::ptr::copy_nonoverlapping(data[spans[0].len..].as_ptr(), spans[1].data.cast::<u8>(), spans[1].len);
        assert_eq!(ffi::ring_put(pp, data.as_ptr().cast(), 1, 0), -libc::EBUSY);
        assert_eq!(ffi::ring_commit(pp, 500), 0);
        let mut got = [
            ffi::ring_span { data: std::ptr::null_mut(), len: 0 },
            ffi::ring_span { data: std::ptr::null_mut(), len: 0 },
        ];
        assert_eq!(ffi::ring_borrow(cc, 500, 1000, got.as_mut_ptr(), 0), 500);
        assert_eq!(got[0].len, spans[0].len);
        let mut back = std::slice::from_raw_parts(got[0].data.cast::<u8>(), got[0].len).to_vec();
        back.extend_from_slice(std::slice::from_raw_parts(got[1].data.cast::<u8>(), got[1].len));
        assert!(back == data);
        assert_eq!(ffi::ring_release(cc, 501), -libc::EINVAL);
        assert_eq!(ffi::ring_release(cc, 500), 0);
        // Failures leave the spans alone.
        let mut untouched = [
            ffi::ring_span { data: 0x10 as *mut c_void, len: 7 },
            ffi::ring_span { data: 0x20 as *mut c_void, len: 8 },
        ];
        assert_eq!(ffi::ring_borrow(cc, 1, 10, untouched.as_mut_ptr(), 0), -(libc::ETIMEDOUT as isize));
        assert_eq!(
            (untouched[0].data as usize, untouched[0].len, untouched[1].data as usize, untouched[1].len),
            (0x10, 7, 0x20, 8)
        );
        assert_eq!(ffi::ring_reserve(pp, 8064, untouched.as_mut_ptr(), 0), -libc::EMSGSIZE);
        assert_eq!(
            (untouched[0].data as usize, untouched[0].len, untouched[1].data as usize, untouched[1].len),
            (0x10, 7, 0x20, 8)
        );
        assert_eq!(ffi::ring_detach(pp), 0);
        assert_eq!(ffi::ring_detach(cc), 0);
    }
}

/// ring_leave: the slot goes at once (the producer is no longer held back, usage shows it
/// free), the borrowed memory stays mapped and readable, and the handle answers ENOTCONN
/// until ring_detach, which still succeeds.
#[test]
fn leaving_frees_the_slot_and_keeps_the_memory() {
    let r = small_ring("leave");
    let name = r.c();
    let (mut pp, mut cc) = (std::ptr::null_mut(), std::ptr::null_mut());
    // SAFETY: the C ABI with a NUL-terminated name, out-pointers to live locals, handles
    // attached here and detached last; the borrowed spans are read while the consumer's
    // handle (and so its mapping) is alive, which is what ring_leave promises.
    unsafe {
        assert_eq!(ffi::ring_attach_consumer(name.as_ptr(), &mut cc), 0);
        assert_eq!(ffi::ring_attach_producer(name.as_ptr(), &mut pp), 0);
        let data = pattern(300, 7);
        assert_eq!(ffi::ring_put(pp, data.as_ptr().cast(), data.len(), 0), 0);
        let mut got = spans2();
        assert_eq!(ffi::ring_borrow(cc, 300, 300, got.as_mut_ptr(), 0), 300);
        assert_eq!(ffi::ring_leave(cc), 0, "{}", last_error());
        let usage = daqflow::ring::usage(r.s()).expect("usage");
        assert!(usage.consumers.is_empty(), "the slot is still taken: {usage:?}");
        let mut back = std::slice::from_raw_parts(got[0].data.cast::<u8>(), got[0].len).to_vec();
        back.extend_from_slice(std::slice::from_raw_parts(got[1].data.cast::<u8>(), got[1].len));
        assert!(back == data, "the borrowed bytes changed or went away");
        // The borrow ends (saying the slot is gone), and nothing more is read.
        assert_eq!(ffi::ring_release(cc, 300), -libc::ENOTCONN);
        let mut buf = [0u8; 16];
        assert_eq!(ffi::ring_get(cc, buf.as_mut_ptr().cast(), 0, buf.len(), 0), -(libc::ENOTCONN as isize));
        assert_eq!(ffi::ring_leave(cc), 0, "leaving twice");
        // The producer is not held back by the slot left: a whole ring's worth goes in.
        let fill = vec![1u8; SMALL_T as usize - SMALL_B as usize];
        assert_eq!(ffi::ring_put(pp, fill.as_ptr().cast(), fill.len(), 0), 0, "{}", last_error());
        assert_eq!(ffi::ring_leave(pp), 0);
        assert!(daqflow::ring::usage(r.s()).expect("usage").producer_pid <= 0, "the producer slot is still taken");
        assert_eq!(ffi::ring_put(pp, data.as_ptr().cast(), 1, 0), -libc::ENOTCONN);
        assert_eq!(ffi::ring_leave(std::ptr::null_mut()), -libc::EINVAL);
        assert_eq!(ffi::ring_detach(cc), 0);
        assert_eq!(ffi::ring_detach(pp), 0);
    }
}

// ---------------------------------------------------------------------------------
// C ABI conventions

fn spans2() -> [ffi::ring_span; 2] {
    [ffi::ring_span { data: std::ptr::null_mut(), len: 0 }, ffi::ring_span { data: std::ptr::null_mut(), len: 0 }]
}

#[test]
fn c_abi_null_arguments_and_out_params() {
    let r = small_ring("cnull");
    let name = r.c();
    let null = std::ptr::null::<c_char>();
    let mut buf = [0u8; 16];
    // SAFETY: every call gets NULL where the test says so, and otherwise what the C ABI
    // accepts: a NUL-terminated name, handles attached here, out-pointers to live locals
    // (all-zero ring_usage_info is valid: plain integers), a local buffer of 16 bytes.
    unsafe {
        let mut out: *mut ffi::ring_client = std::ptr::null_mut();
        let mut pp = std::ptr::null_mut();
        let mut cc = std::ptr::null_mut();
        assert_eq!(ffi::ring_attach_producer(name.as_ptr(), &mut pp), 0);
        assert_eq!(ffi::ring_attach_consumer(name.as_ptr(), &mut cc), 0);

        let einval = -libc::EINVAL;
        let checks: Vec<(&str, i64)> = vec![
            ("ring_create", ffi::ring_create(null, 4096, 2) as i64),
            ("ring_create_mode", ffi::ring_create_mode(null, 4096, 2, 0o600) as i64),
            ("ring_format", ffi::ring_format(null, 2) as i64),
            ("ring_remove", ffi::ring_remove(null) as i64),
            ("ring_exists", ffi::ring_exists(null) as i64),
            ("ring_list names", ffi::ring_list(std::ptr::null_mut(), &mut 0usize) as i64),
            ("ring_list count", ffi::ring_list(&mut std::ptr::null_mut(), std::ptr::null_mut()) as i64),
            ("ring_attach_producer name", ffi::ring_attach_producer(null, &mut out) as i64),
            ("ring_attach_producer out", ffi::ring_attach_producer(name.as_ptr(), std::ptr::null_mut()) as i64),
            ("ring_attach_consumer name", ffi::ring_attach_consumer(null, &mut out) as i64),
            ("ring_attach_consumer out", ffi::ring_attach_consumer(name.as_ptr(), std::ptr::null_mut()) as i64),
            ("ring_put client", ffi::ring_put(std::ptr::null_mut(), buf.as_ptr().cast(), 4, 0) as i64),
            ("ring_put data", ffi::ring_put(pp, std::ptr::null(), 4, 0) as i64),
            ("ring_put consumer handle", ffi::ring_put(cc, buf.as_ptr().cast(), 4, 0) as i64),
            ("ring_get client", ffi::ring_get(std::ptr::null_mut(), buf.as_mut_ptr().cast(), 1, 4, 0) as i64),
            ("ring_get buf", ffi::ring_get(cc, std::ptr::null_mut(), 1, 4, 0) as i64),
            ("ring_get producer handle", ffi::ring_get(pp, buf.as_mut_ptr().cast(), 1, 4, 0) as i64),
            ("ring_peek client", ffi::ring_peek(std::ptr::null_mut(), buf.as_mut_ptr().cast(), 4) as i64),
            ("ring_peek buf", ffi::ring_peek(cc, std::ptr::null_mut(), 4) as i64),
            ("ring_skip", ffi::ring_skip(std::ptr::null_mut(), 1) as i64),
            ("ring_slot", ffi::ring_slot(std::ptr::null()) as i64),
            ("ring_usage name", ffi::ring_usage(null, &mut std::mem::zeroed(), std::ptr::null_mut(), 0) as i64),
            ("ring_usage info", ffi::ring_usage(name.as_ptr(), std::ptr::null_mut(), std::ptr::null_mut(), 0) as i64),
            (
                "ring_usage consumers",
                ffi::ring_usage(name.as_ptr(), &mut std::mem::zeroed(), std::ptr::null_mut(), 4) as i64,
            ),
            ("ring_disconnect_producer", ffi::ring_disconnect_producer(null) as i64),
            ("ring_disconnect_consumer", ffi::ring_disconnect_consumer(null, 0) as i64),
            ("ring_reserve client", ffi::ring_reserve(std::ptr::null_mut(), 1, spans2().as_mut_ptr(), 0) as i64),
            ("ring_reserve spans", ffi::ring_reserve(pp, 1, std::ptr::null_mut(), 0) as i64),
            ("ring_commit", ffi::ring_commit(std::ptr::null_mut(), 0) as i64),
            ("ring_borrow client", ffi::ring_borrow(std::ptr::null_mut(), 0, 1, spans2().as_mut_ptr(), 0) as i64),
            ("ring_borrow spans", ffi::ring_borrow(cc, 0, 1, std::ptr::null_mut(), 0) as i64),
            ("ring_release", ffi::ring_release(std::ptr::null_mut(), 0) as i64),
        ];
        for (what, rc) in checks {
            assert_eq!(rc, einval as i64, "{what} with NULL");
        }
        assert!(out.is_null(), "out written on failure");
        assert!(!last_error().is_empty());
        // NULL arguments did not corrupt the handles or the ring.
        assert_eq!(ffi::ring_available_put_space(pp), SMALL_D - 1);
        assert_eq!(ffi::ring_available_data(cc), 0);
        assert_eq!(ffi::ring_available_data(std::ptr::null()), 0);
        assert_eq!(ffi::ring_available_put_space(std::ptr::null()), 0);
        // Free/detach accept NULL.
        assert_eq!(ffi::ring_detach(std::ptr::null_mut()), 0);
        ffi::ring_list_free(std::ptr::null_mut(), 0);
        // Zero-length put with a NULL pointer is a no-op, not a crash.
        assert_eq!(ffi::ring_put(pp, std::ptr::null(), 0, 0), 0);

        // Out-params untouched on failure.
        let missing = CString::new(format!("t-cnull-missing-{}", std::process::id())).unwrap();
        let sentinel = 0xdead_0000usize as *mut ffi::ring_client;
        let mut o = sentinel;
        assert_eq!(ffi::ring_attach_consumer(missing.as_ptr(), &mut o), -libc::ENOENT);
        assert_eq!(o, sentinel);
        let msg = last_error();
        assert!(msg.contains("t-cnull-missing"), "message should name the ring: {msg}");
        let mut info: ffi::ring_usage_info = std::mem::zeroed();
        info.data_bytes = 42;
        info.n_consumers = 42;
        let mut entry = ffi::ring_consumer_info { pid: 42, slot: 42, backlog: 42 };
        assert_eq!(ffi::ring_usage(missing.as_ptr(), &mut info, &mut entry, 1), -libc::ENOENT);
        assert_eq!((info.data_bytes, info.n_consumers), (42, 42));
        assert_eq!((entry.pid, entry.slot, entry.backlog), (42, 42, 42));
        // A failed get leaves the buffer alone.
        buf = [0x5a; 16];
        assert_eq!(ffi::ring_get(cc, buf.as_mut_ptr().cast(), 1, 16, 0), -(libc::ETIMEDOUT as isize));
        assert_eq!(buf, [0x5a; 16]);
        assert!(last_error().contains(r.s()) || last_error().contains("timed out"), "{}", last_error());

        // Negated errno values on the usual failures, and matching messages.
        assert_eq!(ffi::ring_put(pp, buf.as_ptr().cast(), 100_000, 0), -libc::EMSGSIZE);
        assert!(!last_error().is_empty());
        assert_eq!(ffi::ring_detach(pp), 0);
        assert_eq!(ffi::ring_detach(cc), 0);
    }
}

#[test]
fn last_error_is_per_thread() {
    let fresh = std::thread::spawn(last_error).join().unwrap();
    assert_eq!(fresh, "", "daqflow_last_error must be an empty string before any failure");
    let missing = CString::new(format!("t-lasterr-{}", std::process::id())).unwrap();
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_remove(missing.as_ptr()) }, -libc::ENOENT);
    let here = last_error();
    assert!(here.contains("t-lasterr"), "{here}");
    // Another thread's failure does not change ours.
    std::thread::spawn(|| {
        let bad = CString::new("a/b").unwrap();
        // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
        // locals (or NULL): what the C ABI accepts.
        assert_eq!(unsafe { ffi::ring_create(bad.as_ptr(), 0, 0) }, -libc::EINVAL);
        assert!(last_error().contains("a/b"));
    })
    .join()
    .unwrap();
    assert_eq!(last_error(), here);
}

// ---------------------------------------------------------------------------------
// 64-bit sizes

#[test]
fn five_gib_ring() {
    let r = RingName::new("5gib");
    let req: u64 = 5 << 30;
    ring::create(r.s(), opts(req, 1)).unwrap();
    let size = (req + 80 + 32).div_ceil(4096) * 4096;
    let d = size - 112;
    assert_eq!(std::fs::metadata(r.path()).unwrap().len(), size);
    let u = ring::usage(r.s()).unwrap();
    assert_eq!((u.data_bytes, u.put_space), (d, d - 1));
    assert!(u.data_bytes > u32::MAX as u64 && u.put_space > u32::MAX as u64);
    assert_eq!(read_u64(r.s(), 40), d);
    assert_eq!(read_u64(r.s(), 72), size - 1);
    // SAFETY: ring_usage_info is plain integers: all-zero bits are a valid value.
    let mut info: ffi::ring_usage_info = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated name; `info` points to a live local, and `consumers` is NULL with capacity 0 or a
    // local array of that capacity.
    assert_eq!(unsafe { ffi::ring_usage(r.c().as_ptr(), &mut info, std::ptr::null_mut(), 0) }, 0);
    assert_eq!((info.data_bytes, info.put_space), (d, d - 1));

    let mut p = Producer::attach(r.s()).unwrap();
    assert_eq!(p.available_space().unwrap(), d - 1);
    // 1 MiB records up to the 4 GiB offset and past it. Writing 4 GiB into tmpfs costs
    // a page fault per 4 KiB (tens of seconds here), so the records far below 4 GiB are
    // zero-copy ones (reserve/commit, pages untouched); the last 16 MiB below 4 GiB and
    // everything above are copied with put.
    let rec = vec![0xA5u8; 1 << 20];
    let t = Instant::now();
    let mut puts = 0u64;
    let mut pos = 112u64;
    while pos <= (4u64 << 30) + (4 << 20) {
        if pos + (16 << 20) < (4u64 << 30) {
            let spans = p.reserve(1 << 20, Some(Duration::ZERO)).unwrap();
            assert_eq!((spans[0].len, spans[1].len), (1 << 20, 0));
            p.commit(1 << 20).unwrap();
        } else {
            p.put(&rec, Some(Duration::ZERO)).unwrap();
        }
        puts += 1;
        pos += 1 << 20;
        assert!(puts < 5000, "put pointer never passed 4 GiB");
    }
    assert_eq!(put_ptr(r.s()), pos, "put pointer above 4 GiB stored in full");
    assert!(pos > 4u64 << 30);
    assert_eq!(p.available_space().unwrap(), d - 1, "no consumer: nothing outstanding");
    // The copied records landed at their 64-bit offsets.
    let f = File::open(r.path()).unwrap();
    let mut probe = vec![0u8; 4096];
    f.read_exact_at(&mut probe, (4u64 << 30) + 4096).unwrap();
    assert!(probe.iter().all(|&b| b == 0xA5), "data at offset 4 GiB is not what was put");
    eprintln!("five_gib_ring: {puts} records of 1 MiB in {:?}", t.elapsed());

    let mut c = Consumer::attach(r.s()).unwrap();
    assert_eq!(read_u64(r.s(), 96), put_ptr(r.s()), "consumer joins at a put pointer above 4 GiB");
    for i in 0..4 {
        let data = pattern(3 << 20, i);
        p.put(&data, Some(Duration::ZERO)).unwrap();
        assert_eq!(c.available().unwrap(), 3 << 20);
        let mut back = vec![0u8; data.len()];
        assert_eq!(c.get(&mut back, data.len() as u64, Some(Duration::ZERO)).unwrap(), data.len());
        assert!(back == data, "data above 4 GiB corrupted");
    }
    // Advance without touching pages (reserve/commit) to 512 KiB below the top, then
    // put real data across the top of a 5 GiB ring and read it back.
    let pos = put_ptr(r.s());
    let adv = size - (512 << 10) - pos;
    let _ = p.reserve(adv, Some(Duration::ZERO)).unwrap();
    p.commit(adv).unwrap();
    c.skip(adv).unwrap();
    assert_eq!(put_ptr(r.s()), size - (512 << 10));
    let data = pattern(1 << 20, 99);
    p.put(&data, Some(Duration::ZERO)).unwrap();
    assert_eq!(put_ptr(r.s()), 112 + (512 << 10), "wrapped at the top of a 5 GiB ring");
    let mut back = vec![0u8; data.len()];
    assert_eq!(c.get(&mut back, data.len() as u64, Some(Duration::ZERO)).unwrap(), data.len());
    assert!(back == data, "data across the top of a 5 GiB ring corrupted");
    // A backlog above 4 GiB (zero copy, no page touched): usage and the free-space rule.
    let big = d - 1 - 1000;
    let _ = p.reserve(big, Some(Duration::ZERO)).unwrap();
    p.commit(big).unwrap();
    let u = ring::usage(r.s()).unwrap();
    assert_eq!((u.max_get, u.min_get, u.put_space), (big, big, 1000));
    assert_eq!(c.available().unwrap(), big);
    assert_eq!(p.available_space().unwrap(), 1000);
    assert_eq!(errno(p.put(&[0u8; 1001], Some(Duration::ZERO))), libc::ETIMEDOUT);
    p.put(&[0u8; 1000], Some(Duration::ZERO)).unwrap();
    assert_eq!(c.available().unwrap(), d - 1);
    drop((p, c));
    ring::remove(r.s()).unwrap();
    assert!(!r.path().exists());
    assert!(t.elapsed() < Duration::from_secs(60), "5 GiB ring test took {:?}", t.elapsed());
}
