//! The library's SIGBUS handler (src/ring/truncation.rs) in a Rust program, where std
//! has its own SIGSEGV/SIGBUS handler (the stack-overflow report) installed before it:
//! a stack overflow in a thread that uses a ring is still reported as one, and a SIGBUS
//! of the program's own still kills with SIGBUS. Each case runs in a child (this test
//! binary run again), since each ends the process.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use common::RingName;
use daqflow::ring::Consumer;

const CASE: &str = "DAQFLOW_SIGBUS_RUST_CASE";

fn recurse(depth: u64) -> u64 {
    let pad = std::hint::black_box([depth; 64]);
    if depth == u64::MAX { pad[0] } else { recurse(depth + 1) + pad[1] }
}

/// Runs `test` again in a child with `CASE=case`; its status and stderr.
fn child(test: &str, case: &str) -> (std::process::ExitStatus, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CASE, case)
        .output()
        .unwrap();
    (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn stack_overflow_in_a_ring_thread_is_reported() {
    if std::env::var(CASE).as_deref() == Ok("overflow") {
        let r = RingName::created("rust-overflow", 65536, 2);
        let c = Consumer::attach(r.s()).unwrap();
        // The process aborts without unwinding: the ring goes now (the mapping stays).
        let _ = std::fs::remove_file(r.path());
        let t = std::thread::spawn(move || {
            let _c = c;
            recurse(0)
        });
        let _ = t.join();
        return;
    }
    let (status, stderr) = child("stack_overflow_in_a_ring_thread_is_reported", "overflow");
    assert_eq!(status.signal(), Some(libc::SIGABRT), "{status:?}: {stderr}");
    assert!(stderr.contains("has overflowed its stack"), "{stderr}");
}

#[test]
fn a_foreign_sigbus_still_kills_a_rust_program() {
    if std::env::var(CASE).as_deref() == Ok("foreign") {
        let r = RingName::created("rust-foreign", 65536, 2);
        let _c = Consumer::attach(r.s()).unwrap();
        let path = std::env::temp_dir().join(format!("daqflow-foreign-{}", std::process::id()));
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        file.set_len(8192).unwrap();
        // SAFETY: a fresh shared mapping of our own file; the fault is the point.
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                8192,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                std::os::fd::AsRawFd::as_raw_fd(&file),
                0,
            )
        };
        assert_ne!(page, libc::MAP_FAILED);
        std::fs::remove_file(&path).unwrap();
        file.set_len(0).unwrap();
        // The ring is removed by hand: the process does not get to unwind.
        let _ = std::fs::remove_file(r.path());
        // A handler that returned from the fault without giving it the default action
        // would make it repeat for ever: that ends here.
        // SAFETY: alarm has no preconditions.
        unsafe { libc::alarm(10) };
        // SAFETY: inside the mapping; past the end of the file now, so SIGBUS.
        unsafe { std::ptr::write_volatile(page.cast::<u8>().add(4096), 1) };
        return;
    }
    let (status, stderr) = child("a_foreign_sigbus_still_kills_a_rust_program", "foreign");
    assert_eq!(status.signal(), Some(libc::SIGBUS), "{status:?}: {stderr}");
}
