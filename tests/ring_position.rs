//! ring_position (the C ABI behind CRingBuffer::getPointer/bytesToTop/wouldWrap) and
//! portmgr_default_port (behind CPortManager's default port).

mod common;

use std::ffi::c_void;
use std::ptr;

use common::RingName;
use daqflow::ffi::portmgr::portmgr_default_port;
use daqflow::ffi::ring::{self as ffi, ring_client, ring_span};

const D: usize = 8064; // data bytes of a (4096, 2) ring
const B: u64 = 128; // its data offset

fn attach(name: &RingName, producer: bool) -> *mut ring_client {
    let mut client = ptr::null_mut();
    // SAFETY: a NUL-terminated name that outlives the call; an out-pointer to a local.
    let rc = unsafe {
        if producer {
            ffi::ring_attach_producer(name.c().as_ptr(), &mut client)
        } else {
            ffi::ring_attach_consumer(name.c().as_ptr(), &mut client)
        }
    };
    assert_eq!(rc, 0);
    client
}

fn position(client: *mut ring_client) -> (*mut u8, usize) {
    let mut at: *mut c_void = ptr::null_mut();
    let mut to_top = 0usize;
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_position(client, &mut at, &mut to_top) }, 0);
    (at.cast(), to_top)
}

/// The stored pointer of record `off` (80: producer, 96: consumer 0).
fn stored(name: &RingName, off: u64) -> u64 {
    let bytes = std::fs::read(name.path()).expect("read ring");
    u64::from_le_bytes(bytes[off as usize..off as usize + 8].try_into().expect("8 bytes"))
}

#[test]
fn position_follows_the_pointers_and_names_bytes_in_place() {
    let name = RingName::created("position", 4096, 2);
    let producer = attach(&name, true);
    let consumer = attach(&name, false);

    let mut sent = 0usize;
    for round in 0..40u8 {
        let (p_at, p_top) = position(producer);
        let (c_at, c_top) = position(consumer);
        assert_eq!(p_top as u64, B + D as u64 - stored(&name, 80), "producer bytes to top");
        assert_eq!(c_top as u64, B + D as u64 - stored(&name, 96), "consumer bytes to top");
        assert_eq!(p_top, c_top, "caught-up consumer stands where the producer does");
        // Write a record in place (never across the top), then publish the bytes
        // already there with reserve/commit, as CRingBuffer's producer skip() does.
        let n = 700.min(p_top);
        // SAFETY: `n` bytes from the producer's position, at most what is left to the top
        // of its mapping, and free (the consumer has read everything): ring memory no
        // reader looks at until the commit below.
        unsafe { ptr::write_bytes(p_at, round, n) };
        let mut spans = [ring_span { data: ptr::null_mut(), len: 0 }, ring_span { data: ptr::null_mut(), len: 0 }];
        // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
        // locals (or NULL): what the C ABI accepts.
        assert_eq!(unsafe { ffi::ring_reserve(producer, n, spans.as_mut_ptr(), 0) }, 0);
        assert_eq!(spans[0].data.cast::<u8>(), p_at, "the reservation starts at the position");
        // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
        // locals (or NULL): what the C ABI accepts.
        assert_eq!(unsafe { ffi::ring_commit(producer, n) }, 0);
        // The consumer sees the same bytes at its own position (its own mapping).
        // SAFETY: the `n` bytes just committed, inside the consumer's mapping, which
        // nobody writes while they are unread (this thread is the producer).
        let seen = unsafe { std::slice::from_raw_parts(c_at, n) };
        assert!(seen.iter().all(|&b| b == round));
        // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
        // locals (or NULL): what the C ABI accepts.
        assert_eq!(unsafe { ffi::ring_skip(consumer, n) }, 0);
        sent += n;
        if n == p_top {
            assert_eq!(position(producer).1, D, "a write ending on the top leaves the pointer at the start");
        }
    }
    assert!(sent > 2 * D, "the test must go round the ring");

    // Not while a borrow or reservation is open; NULLs are refused.
    let mut spans = [ring_span { data: ptr::null_mut(), len: 0 }, ring_span { data: ptr::null_mut(), len: 0 }];
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_reserve(producer, 10, spans.as_mut_ptr(), 0) }, 0);
    let (mut at, mut to_top) = (ptr::null_mut(), 0usize);
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_position(producer, &mut at, &mut to_top) }, -libc::EBUSY);
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_commit(producer, 0) }, 0);
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_position(ptr::null_mut(), &mut at, &mut to_top) }, -libc::EINVAL);
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_position(consumer, ptr::null_mut(), &mut to_top) }, -libc::EINVAL);
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_position(consumer, &mut at, ptr::null_mut()) }, -libc::EINVAL);

    // A consumer whose slot was freed by someone else is told so.
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_disconnect_consumer(name.c().as_ptr(), 0) }, 0);
    // SAFETY: NUL-terminated names, handles from ring_attach_* still attached (or NULL), out-pointers to live
    // locals (or NULL): what the C ABI accepts.
    assert_eq!(unsafe { ffi::ring_position(consumer, &mut at, &mut to_top) }, -libc::ENOTCONN);

    // SAFETY: handles from ring_attach_*, not used after.
    unsafe {
        ffi::ring_detach(consumer);
        ffi::ring_detach(producer);
    }
}

#[test]
fn default_port_reads_the_port_file() {
    // The only test in this binary that touches the environment.
    let dir = std::env::temp_dir().join(format!("daqflow-default-port-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("listen.port");
    // SAFETY: std's own environment reads, which are all daqflow makes, hold the lock set_var takes; the other
    // test of this binary
    // makes no libc call that reads it (its rings are local: no name is resolved).
    unsafe { std::env::set_var("DAQPORTMGR_PORTFILE", &file) };
    assert_eq!(portmgr_default_port(), 30000, "no file: the legacy default");
    std::fs::write(&file, "41234\n").expect("write port file");
    assert_eq!(portmgr_default_port(), 41234);
    std::fs::write(&file, "junk\n").expect("write port file");
    assert_eq!(portmgr_default_port(), -libc::EINVAL);
    // SAFETY: daqflow_last_error returns a NUL-terminated string (never NULL) that stays valid until this thread
    // calls daqflow again.
    let message = unsafe { std::ffi::CStr::from_ptr(daqflow::ffi::daqflow_last_error()) };
    assert!(message.to_string_lossy().contains("listen.port"), "{message:?}");
    std::fs::remove_dir_all(&dir).expect("clean up");
}
