//! The `ringbuffer` command as a script uses it: its output, its JSON and its exit
//! statuses, on rings made for each test (names with the test's pid, removed at the end).

use std::path::Path;
use std::process::{Command, Output};

use daqflow::ring::{self, Consumer, Producer};

const RINGBUFFER: &str = env!("CARGO_BIN_EXE_ringbuffer");

fn rb(args: &[&str]) -> Output {
    Command::new(RINGBUFFER).args(args).output().expect("run ringbuffer")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A ring name for one test; the ring (or junk planted under the name) goes on drop.
struct Name(String);

impl Name {
    fn new(test: &str) -> Name {
        let name = format!("t-rb-{test}-{}", std::process::id());
        let _ = std::fs::remove_file(format!("/dev/shm/{name}"));
        Name(name)
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(format!("/dev/shm/{}", self.0));
    }
}

/// Checks `text` is one valid JSON document with a real parser (python3's), when there
/// is one; the exact-text checks elsewhere pin the shape.
fn assert_json(text: &str) {
    use std::io::Write;
    let child = Command::new("python3")
        .args(["-c", "import json, sys; json.load(sys.stdin)"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("NOTE: no python3, so the JSON was not parsed");
        return;
    };
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "not JSON ({}):\n{text}", String::from_utf8_lossy(&out.stderr));
}

fn me() -> String {
    let uid = nix::unistd::geteuid();
    nix::unistd::User::from_uid(uid).ok().flatten().map_or_else(|| uid.to_string(), |u| u.name)
}

#[test]
fn create_delete_and_their_exit_statuses() {
    let name = Name::new("life");
    let n = name.0.as_str();
    let out = rb(&["create", "--datasize=64k", "--maxconsumers=4", n]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(ring::exists(n).unwrap());
    let usage = ring::usage(n).unwrap();
    assert_eq!((usage.data_bytes, usage.max_consumers), (69_472, 4), "NSCLDAQ's rounding of (64k, 4)");

    let out = rb(&["create", n]);
    assert_eq!(out.status.code(), Some(3), "create of an existing ring");
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));

    // Format is refused while a client is attached, then works.
    let consumer = Consumer::attach(n).unwrap();
    let out = rb(&["format", "--maxconsumers=2", n]);
    assert_eq!(out.status.code(), Some(4), "format of a ring in use: {}", stderr(&out));
    consumer.detach().unwrap();
    assert_eq!(rb(&["format", "--maxconsumers=2", n]).status.code(), Some(0));
    assert_eq!(ring::usage(n).unwrap().max_consumers, 2);

    assert_eq!(rb(&["delete", n]).status.code(), Some(0));
    assert!(!ring::exists(n).unwrap());
    let out = rb(&["delete", n]);
    assert_eq!(out.status.code(), Some(2), "delete of a missing ring");
    assert!(stderr(&out).contains(n));
    assert_eq!(rb(&["format", n]).status.code(), Some(2));
    // status of a plain name that is no ring: 2, but a pattern matching nothing is fine.
    let out = rb(&["status", n]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("no ring named {n}")), "{}", stderr(&out));
    assert_eq!(rb(&["status", &format!("{n}*")]).status.code(), Some(0));
}

#[test]
fn usage_errors_exit_255_with_the_usage() {
    for args in [
        &[][..],
        &["frobnicate"],
        &["create"],
        &["create", "--datasize=12q", "x"],
        &["create", "--maxconsumers=0", "x"],
        &["status", "--all", "--user=root"],
        &["list", "extra"],
        &["top", "--interval=1"],
    ] {
        let out = rb(args);
        assert_eq!(out.status.code(), Some(255), "{args:?}");
        assert!(stderr(&out).contains("Usage:"), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty());
    }
    let out = rb(&["help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("ringbuffer status ?--host=h? ?--all? ?--user=u1,u2?"));
    // A bad name is the library's refusal, not a usage error.
    let out = rb(&["create", "no/slash"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn status_shows_each_consumer_and_its_backlog() {
    let name = Name::new("status");
    let n = name.0.as_str();
    assert_eq!(rb(&["create", "--datasize=1m", "--maxconsumers=3", n]).status.code(), Some(0));
    let mut behind = Consumer::attach(n).unwrap();
    let mut current = Consumer::attach(n).unwrap();
    let mut producer = Producer::attach(n).unwrap();
    producer.put(&[1u8; 10 * 1024], None).unwrap();
    let mut buf = vec![0u8; 10 * 1024];
    current.get(&mut buf, 10 * 1024, None).unwrap();
    behind.get(&mut buf[..2048], 2048, None).unwrap();
    let pid = std::process::id().to_string();

    let out = rb(&["status", n]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0][..3], ["name", "size(k)", "free(k)"], "{text}");
    // data 1 052 528 bytes (1 MiB + 144 header bytes, rounded to pages, less the header) = 1027 KiB; free = data - 1 - 8 KiB backlog.
    assert_eq!(rows[2], [n, "1027", "1019", "3", pid.as_str(), "8", "0", "-", "-"], "{text}");
    assert_eq!(rows[3][7..9], [pid.as_str(), "8"], "{text}");
    assert_eq!(rows[4][7..9], [pid.as_str(), "0"], "{text}");
    assert_eq!(rows.len(), 5, "{text}");

    let json = stdout(&rb(&["status", "--json", n]));
    let expect = format!(
        "{{\"name\":\"{n}\",\"owner\":\"{}\",\"data_bytes\":1052528,\"free\":{},\"max_consumers\":3,\"producer_pid\":{pid},\"max_backlog\":8192,\"min_backlog\":0,\"consumers\":[{{\"slot\":0,\"pid\":{pid},\"backlog\":8192,",
        me(),
        1_052_527 - 8192
    );
    assert!(json.contains(&expect), "{json}\nwanted {expect}");
    assert!(json.contains(&format!("{{\"slot\":1,\"pid\":{pid},\"backlog\":0,")), "{json}");
    assert!(json.starts_with("{\"host\":\"localhost\",\"rings\":[") && json.ends_with("\"errors\":[]}\n"), "{json}");
    assert_json(&json);
    // localhost is this host: no ring master needed.
    assert_eq!(stdout(&rb(&["status", "--host=localhost", "--json", n])), json);

    producer.detach().unwrap();
    behind.detach().unwrap();
    current.detach().unwrap();
}

#[test]
fn status_selects_by_pattern_and_owner() {
    let a = Name::new("sel-a");
    let b = Name::new("sel-b");
    for n in [&a.0, &b.0] {
        assert_eq!(rb(&["create", "--datasize=16k", "--maxconsumers=1", n]).status.code(), Some(0));
    }
    let names = |args: &[&str]| -> Vec<String> {
        let out = rb(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        stdout(&out)
            .lines()
            .skip(2)
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with("t-rb-sel"))
            .map(String::from)
            .collect()
    };
    let pid = std::process::id();
    assert_eq!(names(&["status", &format!("t-rb-sel-?-{pid}")]), [a.0.clone(), b.0.clone()]);
    assert_eq!(names(&["status", &format!("*-b-{pid}")]), [b.0.as_str()]);
    assert_eq!(names(&["status", "--all", &a.0]), [a.0.as_str()]);
    assert_eq!(names(&["status", &format!("--user=nosuchuser,{}", me()), &a.0]), [a.0.as_str()]);
    assert!(names(&["status", "--user=nosuchuser", &a.0]).is_empty(), "another user's selection shows my ring");

    let list = stdout(&rb(&["list"]));
    assert!(list.lines().any(|l| l == a.0) && list.lines().any(|l| l == b.0), "{list}");
    let json = stdout(&rb(&["list", "--json"]));
    assert!(json.contains(&format!("\"{}\",\"{}\"", a.0, b.0)), "sorted, both present: {json}");
    assert_json(&json);
}

#[test]
fn a_corrupt_ring_is_reported_and_the_others_still_shown() {
    let good = Name::new("ok");
    let bad = Name::new("corrupt");
    assert_eq!(rb(&["create", "--datasize=16k", "--maxconsumers=1", &good.0]).status.code(), Some(0));
    // The magic, then a header whose offsets make no sense.
    let mut junk = vec![0xffu8; 8192];
    junk[..9].copy_from_slice(b"NSCLRing\0");
    std::fs::write(format!("/dev/shm/{}", bad.0), &junk).unwrap();
    let pattern = format!("t-rb-*-{}", std::process::id());

    let out = rb(&["status", &pattern]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains(&good.0), "{}", stdout(&out));
    assert!(stderr(&out).contains(&bad.0) && stderr(&out).contains("corrupt"), "{}", stderr(&out));

    let out = rb(&["status", "--json", &pattern]);
    assert_eq!(out.status.code(), Some(1));
    let json = stdout(&out);
    assert!(
        json.contains(&format!("\"errors\":[{{\"name\":\"{}\",\"errno\":{},\"error\":\"", bad.0, libc::EBADMSG)),
        "{json}"
    );
    assert!(json.contains(&format!("\"name\":\"{}\",\"owner\"", good.0)), "{json}");
    assert_json(&json);
}

#[test]
fn an_unreachable_host_is_exit_6() {
    let out = rb(&["list", "--host=no-such-host.invalid"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("no-such-host.invalid"), "{}", stderr(&out));
    let out = rb(&["status", "--host=no-such-host.invalid", "--user=ann"]);
    assert_ne!(out.status.code(), Some(0));
}

/// A daemon this test started, stopped with SIGTERM on drop.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

#[test]
fn another_hosts_rings_come_from_its_ring_master() {
    let name = Name::new("remote");
    let n = name.0.as_str();
    assert_eq!(rb(&["create", "--datasize=16k", "--maxconsumers=2", n]).status.code(), Some(0));
    let consumer = Consumer::attach(n).unwrap();
    let dir = std::env::temp_dir().join(format!("t-rb-remote-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port_file = dir.join("listen.port");
    let _portmgr = Daemon(
        Command::new(Path::new(RINGBUFFER).with_file_name("daqportmgr"))
            .args(["-listen", "0", "-log", "-", "-portfile"])
            .arg(&port_file)
            .arg("-pidfile")
            .arg(dir.join("pid"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = std::time::Instant::now();
    let port = loop {
        if let Some(p) = std::fs::read_to_string(&port_file).ok().and_then(|t| t.trim().parse::<u16>().ok()) {
            break p;
        }
        assert!(start.elapsed().as_secs() < 10, "daqportmgr did not start");
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let _ringmaster = Daemon(
        Command::new(Path::new(RINGBUFFER).with_file_name("ringmaster"))
            .args(["--portmgr-port", &port.to_string(), "--log", "-"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // 127.0.0.2 is this machine, but not a name ringbuffer takes for "here": it goes
    // through the port manager and the ring master as for any other host.
    let remote =
        |args: &[&str]| Command::new(RINGBUFFER).args(args).env("DAQPORTMGR_PORTFILE", &port_file).output().unwrap();
    let listed = loop {
        let out = remote(&["list", "--host=127.0.0.2"]);
        if out.status.success() {
            break stdout(&out);
        }
        assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
        assert!(start.elapsed().as_secs() < 20, "the ring master never answered: {}", stderr(&out));
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(listed.lines().any(|l| l == n), "{listed}");

    let out = remote(&["status", "--host=127.0.0.2", "--json", n]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let local = ring::usage(n).unwrap();
    let json = stdout(&out);
    let expect = format!(
        "{{\"host\":\"127.0.0.2\",\"rings\":[{{\"name\":\"{n}\",\"owner\":null,\"data_bytes\":{},\"free\":{},\"max_consumers\":2,\"producer_pid\":null,\"max_backlog\":0,\"min_backlog\":0,\"consumers\":[{{\"slot\":null,\"pid\":{},\"backlog\":0,\"command\":null}}],\"producer_may_lose_data\":false}}],\"errors\":[]}}\n",
        local.data_bytes,
        local.put_space,
        std::process::id()
    );
    assert_eq!(json, expect);
    let out = remote(&["status", "--host=127.0.0.2", "--user=root", n]);
    assert_eq!(out.status.code(), Some(1), "owners are unknown remotely: {}", stderr(&out));
    consumer.detach().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A ring larger than /dev/shm's free space is refused at create: tmpfs objects are
/// sparse, so it was made, and its producer died of SIGBUS once the ring filled up.
#[test]
fn a_ring_larger_than_dev_shm_is_refused() {
    let n = Name::new("huge");
    let fs = nix::sys::statvfs::statvfs("/dev/shm").expect("statvfs /dev/shm");
    let free = fs.blocks_available() * fs.fragment_size();
    let kib = (free * 2 / 1024).max(1).to_string() + "k";
    let out = rb(&["create", &format!("--datasize={kib}"), &n.0]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).contains("no room"), "{}", stderr(&out));
    assert!(!std::path::Path::new(&format!("/dev/shm/{}", n.0)).exists(), "a refused ring was left behind");
}
