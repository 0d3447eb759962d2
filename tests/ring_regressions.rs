//! Defects found in review, each pinned by the scenario that exposed it.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{RingName, role_exe};
use daqflow::ring::{self, Consumer, Producer};

/// A consumer killed but not yet waited for (a zombie child of the producer's own
/// process) holds nothing: the blocked producer must free its slot within a second.
#[test]
fn a_zombie_consumer_is_reaped() {
    let ring = RingName::created("zombie", 4096, 2);
    let mut child = Command::new(role_exe())
        .args(["consume", ring.s(), "1"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start ring_role");
    let deadline = Instant::now() + Duration::from_secs(10);
    while ring::usage(ring.s()).expect("usage").consumers.is_empty() {
        assert!(Instant::now() < deadline, "child never attached");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut p = Producer::attach(ring.s()).expect("producer");
    p.put(&vec![1u8; 8000], Some(Duration::ZERO)).expect("first put fits");
    child.kill().expect("SIGKILL the consumer"); // and do not wait: it stays a zombie
    let start = Instant::now();
    p.put(&[2u8; 1000], Some(Duration::from_secs(5))).expect("the zombie's slot must be freed");
    assert!(start.elapsed() < Duration::from_millis(1500), "took {:?}", start.elapsed());
    let _ = child.wait();
}

/// A joiner that copied the put pointer and has not yet published its pid (pid 0) must
/// not be overrun by the producer.
#[test]
fn a_joiner_at_pid_zero_is_not_overrun() {
    let ring = RingName::created("joiner", 4096, 2); // D = 8064
    let mut p = Producer::attach(ring.s()).expect("producer");
    p.put(&[7u8; 100], Some(Duration::ZERO)).expect("put");
    let put = 128u64 + 100; // data offset 80 + 16 * 3, then the 100 bytes
    // What a joiner leaves half-way: its position copied from the put pointer, pid 0.
    let file = OpenOptions::new().read(true).write(true).open(format!("/dev/shm/{}", ring.s())).expect("open");
    file.write_all_at(&put.to_le_bytes(), 96).expect("position");
    file.write_all_at(&0i32.to_le_bytes(), 104).expect("pid 0");
    p.put(&[8u8; 8000], Some(Duration::ZERO)).expect("8000 bytes fit behind the joiner");
    let err = p.put(&[9u8; 8000], Some(Duration::from_millis(50))).expect_err("would overwrite the joiner's data");
    assert_eq!(err.errno(), libc::ETIMEDOUT, "{err}");
}

/// A put's timeout holds even while a legacy peer keeps the ring's lock (the producer
/// only tries the lock to reap dead consumers), and -1 never turns into a lock timeout.
#[test]
fn a_held_lock_does_not_stretch_a_timeout() {
    let ring = RingName::created("lock", 4096, 2);
    let mut c = Consumer::attach(ring.s()).expect("consumer");
    let mut p = Producer::attach(ring.s()).expect("producer");
    p.put(&vec![1u8; 8063], Some(Duration::ZERO)).expect("fill");
    let mut holder = Command::new(role_exe())
        .args(["join-and-die", ring.s(), "1"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start lock holder");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(holder.stdout.take().expect("piped")), &mut line)
        .expect("holder ready");
    let start = Instant::now();
    let err = p.put(&[1u8], Some(Duration::from_millis(500))).expect_err("ring is full");
    assert_eq!(err.errno(), libc::ETIMEDOUT);
    assert!(start.elapsed() < Duration::from_millis(1500), "500 ms timeout took {:?}", start.elapsed());
    let _ = holder.kill();
    let _ = holder.wait();
    let mut buf = vec![0u8; 8063];
    assert_eq!(c.get(&mut buf, 1, Some(Duration::ZERO)).expect("drain"), 8063);
}

/// Sizes no buffer can have (a -1 from a failed read() passed as size_t) are errors,
/// never undefined behaviour or an abort.
#[test]
fn impossible_lengths_through_the_c_abi_are_errors() {
    use daqflow::ffi::ring::*;
    let ring = RingName::created("huge", 4096, 2);
    let name = std::ffi::CString::new(ring.s().to_string()).expect("name");
    let (mut p, mut c) = (std::ptr::null_mut(), std::ptr::null_mut());
    // SAFETY: a NUL-terminated name, out-pointers to locals, handles attached here and
    // detached last; the impossible lengths are what is tested, and the C ABI refuses
    // them before touching a buffer.
    unsafe {
        assert_eq!(ring_attach_consumer(name.as_ptr(), &mut c), 0);
        assert_eq!(ring_attach_producer(name.as_ptr(), &mut p), 0);
        let buf = [0u8; 16];
        assert_eq!(ring_put(p, buf.as_ptr().cast(), usize::MAX, 0), -libc::EMSGSIZE);
        let mut out = [0u8; 16];
        assert_eq!(ring_get(c, out.as_mut_ptr().cast(), 1, usize::MAX, 0), -(libc::EINVAL as isize));
        assert_eq!(ring_peek(c, out.as_mut_ptr().cast(), usize::MAX), -(libc::EINVAL as isize));
        ring_detach(p);
        ring_detach(c);
    }
}
