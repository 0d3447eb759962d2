//! What other users control reaches `ringbuffer`'s output: the names of processes
//! attached to a world-writable ring (/proc/PID/comm, anyone's to set) and the names of
//! objects in /dev/shm. Control characters among them never reach the terminal raw, and
//! the JSON carries them escaped. Its own test binary: it renames this process.

use std::process::{Command, Output};

use daqflow::ring::{self, Consumer, CreateOptions};

const RINGBUFFER: &str = env!("CARGO_BIN_EXE_ringbuffer");

fn rb(args: &[&str]) -> Output {
    Command::new(RINGBUFFER).args(args).output().expect("run ringbuffer")
}

fn assert_no_escapes(what: &str, out: &Output) {
    for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{what}: control characters on {stream}: {text:?}");
    }
}

struct Gone(Vec<String>);

impl Drop for Gone {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[test]
fn hostile_process_and_ring_names_are_printed_harmlessly() {
    let name = format!("t-hostile-{}", std::process::id());
    let planted = format!("{name}-\x1b[2J\x1b]2;pwned\x07");
    let _gone = Gone(vec![format!("/dev/shm/{name}"), format!("/dev/shm/{planted}")]);
    let opts = CreateOptions { data_bytes: 4096, max_consumers: 2, ..Default::default() };
    ring::create(&name, opts).expect("create");
    // A ring's bytes under a name no ring may have (what another user could plant).
    ring::create(&format!("{name}-x"), opts).expect("create");
    std::fs::rename(format!("/dev/shm/{name}-x"), format!("/dev/shm/{planted}")).expect("rename");
    let _consumer = Consumer::attach(&name).expect("consumer");
    // The consumer's pid is this process; its command name becomes an escape sequence.
    std::fs::write("/proc/self/comm", "\x1b[2J\x1b[31mevil").expect("rename this process");

    let out = rb(&["status", &name]);
    assert!(out.status.success(), "{out:?}");
    assert_no_escapes("status", &out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("?[2J?[31mevi"), "{out:?}");

    let out = rb(&["status", &format!("{name}*")]);
    assert_no_escapes("status of a planted name", &out);
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("{name}-?[2J?]2;pwned?")), "{out:?}");

    let out = rb(&["list"]);
    assert_no_escapes("list", &out);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{name}-?[2J")), "{out:?}");

    // JSON keeps the exact text, escaped.
    let out = rb(&["status", "--json", &name]);
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(json.contains("\"command\":\"\\u001b[2J\\u001b[31mevil\""), "{json}");
    let out = rb(&["list", "--json"]);
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(json.contains(&format!("\"{name}-\\u001b[2J\\u001b]2;pwned\\u0007\"")), "{json}");

    // A name that is not UTF-8 still shows, its bad bytes as U+FFFD.
    std::fs::write("/proc/self/comm", b"\xff\xfebad").expect("rename this process");
    let out = rb(&["status", &name]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\u{fffd}\u{fffd}bad"), "{out:?}");
    let out = rb(&["status", "--json", &name]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"command\":\"\u{fffd}\u{fffd}bad\""), "{out:?}");
}
