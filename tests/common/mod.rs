//! What the ring test files share: names that clean up after themselves, and the
//! multi-process helper program.
#![allow(dead_code)] // each test file uses its own subset

use std::ffi::CString;
use std::fmt::Display;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use daqflow::ring::{self, CreateOptions};

pub fn shm_path(name: &str) -> PathBuf {
    PathBuf::from(format!("/dev/shm/{name}"))
}

/// A ring name owned by one test (`t-<test>-<pid>`); whatever sits at /dev/shm/NAME
/// (a ring, or the junk a test planted there) is removed on drop, even when it fails.
pub struct RingName {
    name: String,
}

impl RingName {
    pub fn new(test: &str) -> RingName {
        let name = format!("t-{test}-{}", std::process::id());
        let _ = std::fs::remove_file(shm_path(&name));
        RingName { name }
    }

    /// Takes charge of an exact name (for tests of unusual names).
    pub fn exact(name: &str) -> RingName {
        RingName { name: name.to_string() }
    }

    /// The name, with a ring of `data` bytes and `consumers` slots created under it.
    pub fn created(test: &str, data: u64, consumers: u32) -> RingName {
        let ring = RingName::new(test);
        ring::create(ring.s(), CreateOptions { data_bytes: data, max_consumers: consumers, ..Default::default() })
            .expect("create ring");
        ring
    }

    pub fn s(&self) -> &str {
        &self.name
    }

    pub fn c(&self) -> CString {
        CString::new(self.name.clone()).expect("ring names have no NUL")
    }

    pub fn path(&self) -> PathBuf {
        shm_path(&self.name)
    }
}

impl Drop for RingName {
    fn drop(&mut self) {
        if std::fs::remove_file(shm_path(&self.name)).is_err() {
            let _ = std::fs::remove_dir(shm_path(&self.name));
        }
    }
}

/// examples/ring_role, which `cargo test` builds next to the test binaries.
pub fn role_exe() -> PathBuf {
    let me = std::env::current_exe().expect("test executable path");
    me.parent().and_then(|deps| deps.parent()).expect("target dir").join("examples").join("ring_role")
}

/// Runs `f` on another thread; fails the test if it does not return within `limit`
/// (a hang must fail, not stall the suite).
pub fn within<T: Send + 'static>(limit: Duration, what: impl Display, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(_) => panic!("{what}: did not return within {limit:?} (hang)"),
    }
}

/// Zombie children of this process that stay zombies. A child of a test running beside
/// this one is a zombie for the moment between its exit and its parent's wait (up to a
/// polling interval), and must not count; a zombie nobody will reap is still one after
/// two seconds.
pub fn lasting_zombie_children() -> usize {
    let me = std::process::id();
    let mut zombies = zombie_children(me);
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while !zombies.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        let now = zombie_children(me);
        zombies.retain(|pid| now.contains(pid));
    }
    zombies.len()
}

fn zombie_children(parent: u32) -> Vec<u32> {
    let parent = parent.to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // "pid (comm) S ppid ...": comm may itself contain spaces and parentheses.
            let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            (rest.first() == Some(&"Z") && rest.get(1) == Some(&parent.as_str())).then_some(pid)
        })
        .collect()
}
