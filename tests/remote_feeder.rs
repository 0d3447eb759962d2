//! The feeder against a ring master that speaks the legacy REMOTE protocol byte for byte
//! (as NSCLDAQ's does: `OK BINARY FOLLOWS` CR LF, then the raw ring bytes, no framing):
//! only whole items ever reach the proxy, whatever pieces the stream arrives in; swapped
//! headers are framed; a broken stream is reconnected at an item boundary; a second
//! feeder for the same proxy stands down; the starter is left with no zombie.

mod common;
mod portmgr_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use daqflow::remote::feeder::Plan;
use daqflow::remote::spawn::{Started, start_feeder};
use daqflow::ring::{self, Consumer, CreateOptions};
use portmgr_support::Daemon;

fn item(size: usize, seq: u8, swapped: bool) -> Vec<u8> {
    let mut v = if swapped {
        [(size as u32).to_be_bytes(), 30u32.to_be_bytes()].concat()
    } else {
        [(size as u32).to_le_bytes(), 30u32.to_le_bytes()].concat()
    };
    v.extend((8..size).map(|i| seq.wrapping_add(i as u8)));
    v
}

/// A legacy-speaking ring master: each accepted REMOTE connection gets the reply and
/// then whatever chunks the test sends; `None` closes that connection.
fn fake_ring_master(listener: TcpListener, ring: String) -> mpsc::Sender<Option<Vec<u8>>> {
    let (tx, rx) = mpsc::channel::<Option<Vec<u8>>>();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut request = String::new();
            if BufReader::new(&conn).read_line(&mut request).is_err() || request != format!("REMOTE {ring}\n") {
                continue;
            }
            let mut first = true;
            while let Ok(Some(chunk)) = rx.recv() {
                // The first data travels in the same segment as the reply line.
                let bytes = if first { [b"OK BINARY FOLLOWS\r\n".to_vec(), chunk].concat() } else { chunk };
                first = false;
                if conn.write_all(&bytes).is_err() {
                    break;
                }
            }
        }
    });
    tx
}

/// Waits until the consumer has exactly `want` bytes; it must never see more (a partial item).
fn settle(c: &Consumer, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let have = c.available().expect("available");
        assert!(have <= want, "the proxy shows {have} bytes, more than the {want} of whole items sent");
        if have == want {
            // And it stays there: the partial rest is not published later either.
            std::thread::sleep(Duration::from_millis(150));
            assert_eq!(c.available().expect("available"), want);
            return;
        }
        assert!(Instant::now() < deadline, "the proxy has {have} of {want} bytes");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn whole_items_from_a_legacy_stream() {
    let pm = Daemon::start("47300-47399", &[]);
    let (_manager, listener) = portmgr_support::listen_as(&pm, "RingMaster");
    let source = format!("src{}", std::process::id());
    let guard = common::RingName::new("feeder");
    let proxy = guard.s().to_string();
    ring::create(&proxy, CreateOptions::default()).expect("proxy");
    let mut c = Consumer::attach(&proxy).expect("consumer");
    let tx = fake_ring_master(listener, source.clone());

    let plan =
        Plan { host: "127.0.0.1".into(), portmgr_port: Some(pm.port), ring: source.clone(), proxy: proxy.clone() };
    // The fake answers REMOTE only with the first chunk: queue it before the feeder asks.
    let items: Vec<Vec<u8>> =
        vec![item(100, 1, false), item(3 << 20, 2, false), item(40, 3, true), item(65536, 4, false), item(8, 5, true)];
    let stream: Vec<u8> = items.concat();
    let ends: Vec<usize> = items
        .iter()
        .scan(0, |end, i| {
            *end += i.len();
            Some(*end)
        })
        .collect();
    // Cut the stream inside headers, inside bodies and right on boundaries.
    let cuts =
        [3, 50, 100, 105, 200_000, 1 << 20, (3 << 20) + 100, (3 << 20) + 104, ends[2] + 5, ends[3], stream.len() - 3];
    tx.send(Some(stream[..cuts[0]].to_vec())).expect("queue");
    // A descriptor a careless host program leaves inheritable must not reach the feeder.
    let marker = std::env::temp_dir().join(format!("daqflow-feeder-marker-{}", std::process::id()));
    std::fs::write(&marker, b"").expect("marker");
    let c_marker = std::ffi::CString::new(marker.to_string_lossy().as_bytes()).expect("path");
    // SAFETY: a valid path; the descriptor is closed below.
    let inheritable = unsafe { libc::open(c_marker.as_ptr(), libc::O_RDONLY) };
    assert!(inheritable >= 0);
    assert_eq!(start_feeder(&plan).expect("feeder starts"), Started::Feeding);
    // SAFETY: the descriptor opened above, owned by nothing else and closed once.
    unsafe { libc::close(inheritable) };
    assert_eq!(common::lasting_zombie_children(), 0, "starting the feeder left a zombie in the starting process");
    let feeder = ring::usage(&proxy).expect("usage").producer_pid;
    assert!(feeder > 0);
    let open: Vec<_> = std::fs::read_dir(format!("/proc/{feeder}/fd"))
        .expect("feeder fds")
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .collect();
    assert!(!open.contains(&marker), "the feeder inherited a descriptor of the starting process: {open:?}");
    let _ = std::fs::remove_file(&marker);
    // A second start finds the proxy fed.
    assert_eq!(start_feeder(&plan).expect("second start"), Started::AlreadyFed);

    let whole_at = |n: usize| ends.iter().copied().filter(|&e| e <= n).max().unwrap_or(0) as u64;
    settle(&c, 0);
    for pair in cuts.windows(2) {
        tx.send(Some(stream[pair[0]..pair[1]].to_vec())).expect("send");
        settle(&c, whole_at(pair[1]));
    }
    // The connection breaks with 3 bytes of the last item unsent: its head is dropped,
    // and the feeder's next connection starts on an item boundary.
    tx.send(None).expect("close");
    let after = item(500, 9, false);
    tx.send(Some(after.clone())).expect("queue for the reconnection");
    let mut got = vec![0u8; ends[3] + after.len()];
    let want = got.len();
    let n = c.get(&mut got, want as u64, Some(Duration::from_secs(20))).expect("items after reconnecting");
    assert_eq!(n, want);
    assert_eq!(&got[..ends[3]], &stream[..ends[3]], "the items before the break, byte for byte");
    assert_eq!(&got[ends[3]..], &after[..], "the first item of the new connection, whole");

    // Removing the proxy stops the feeder.
    drop(c);
    ring::remove(&proxy).expect("remove proxy");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(format!("/proc/{feeder}/stat")).is_ok_and(|s| !s.contains(") Z")) {
        assert!(Instant::now() < deadline, "the feeder kept running after its proxy was removed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn unreachable_host_is_an_error_not_a_hang() {
    let pm = Daemon::start("47400-47409", &[]);
    let guard = common::RingName::new("feeder-none");
    let proxy = guard.s().to_string();
    // A port manager without a ring master, then no port manager at all.
    let started = Instant::now();
    let plan = Plan { host: "127.0.0.1".into(), portmgr_port: Some(pm.port), ring: "r".into(), proxy: proxy.clone() };
    let err = start_feeder(&plan).expect_err("no ring master");
    assert_eq!(err.errno(), libc::ECONNREFUSED, "{}", err.message());
    drop(pm);
    let gone = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let plan = Plan { portmgr_port: Some(gone), ..plan };
    let err = start_feeder(&plan).expect_err("no port manager");
    assert_eq!(err.errno(), libc::ECONNREFUSED, "{}", err.message());
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(ring::usage(&proxy).expect("usage").producer_pid, -1, "a failed feeder gives its slot back");
    assert_eq!(common::lasting_zombie_children(), 0);
    ring::remove(&proxy).expect("remove");
}

/// CPU seconds a process has used (user + system).
fn cpu_seconds(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    // After the command: state is field 0, utime 11, stime 12 (in clock ticks).
    let ticks: f64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<f64>().ok()).sum();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// A proxy that nobody reads fills up; the feeder then waits without burning CPU, the
/// stream backs up into TCP, and when the consumer catches up every item is there.
#[test]
fn back_pressure_without_spinning() {
    let pm = Daemon::start("47410-47419", &[]);
    let (_manager, listener) = portmgr_support::listen_as(&pm, "RingMaster");
    let source = format!("bp{}", std::process::id());
    let guard = common::RingName::new("feeder-bp");
    let proxy = guard.s().to_string();
    ring::create(&proxy, CreateOptions { data_bytes: 1 << 20, max_consumers: 4, ..Default::default() }).expect("proxy");
    let mut c = Consumer::attach(&proxy).expect("consumer");
    let tx = fake_ring_master(listener, source.clone());
    // 24 MiB of 60000-byte items: many times the proxy, more than TCP buffers hold.
    let items: Vec<Vec<u8>> = (0..420).map(|i| item(60_000, i as u8, i % 5 == 0)).collect();
    tx.send(Some(items[0].clone())).expect("queue");
    let plan = Plan { host: "127.0.0.1".into(), portmgr_port: Some(pm.port), ring: source, proxy: proxy.clone() };
    assert_eq!(start_feeder(&plan).expect("feeder"), Started::Feeding);
    let feeder = ring::usage(&proxy).expect("usage").producer_pid;
    let sender = std::thread::spawn(move || {
        for it in &items[1..] {
            tx.send(Some(it.clone())).expect("send");
        }
        tx
    });
    // Full: the feeder is held back from here on.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let full = c.available().expect("available");
        if full > 900_000 {
            break;
        }
        assert!(Instant::now() < deadline, "the proxy never filled up ({full} bytes)");
        std::thread::sleep(Duration::from_millis(10));
    }
    let before = cpu_seconds(feeder);
    std::thread::sleep(Duration::from_secs(3));
    let used = cpu_seconds(feeder) - before;
    assert!(used < 0.3, "a blocked feeder used {used:.2} s of CPU in 3 s");
    let mut buf = vec![0u8; 60_000];
    for i in 0..420u32 {
        c.get(&mut buf, 60_000, Some(Duration::from_secs(20))).unwrap_or_else(|e| panic!("item {i}: {e}"));
        assert_eq!(buf, item(60_000, i as u8, i % 5 == 0), "item {i}");
    }
    drop(sender.join());
    drop(c);
    ring::remove(&proxy).expect("remove");
}

/// A ring master whose every REMOTE stream is garbage (no ring items, or an item larger
/// than the proxy): the feeder reconnects with growing pauses, not five times a second
/// for ever, and the proxy receives nothing.
#[test]
fn a_garbage_stream_is_retried_with_growing_pauses() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let pm = Daemon::start("47420-47429", &[]);
    let (_manager, listener) = portmgr_support::listen_as(&pm, "RingMaster");
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let n = counted.fetch_add(1, Ordering::SeqCst);
            let mut request = String::new();
            let _ = BufReader::new(&conn).read_line(&mut request);
            // Alternately bytes that are no item, and the header of a 1 GiB item.
            let garbage: Vec<u8> = if n % 2 == 0 {
                vec![1, 0, 0, 0, 7, 0, 0, 0]
            } else {
                [(1u32 << 30).to_le_bytes(), 30u32.to_le_bytes()].concat()
            };
            let _ = conn.write_all(&[b"OK BINARY FOLLOWS\r\n".to_vec(), garbage].concat());
            // Held open: the feeder is the one to give up on it.
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(30));
                drop(conn);
            });
        }
    });
    let guard = common::RingName::new("feeder-garbage");
    let proxy = guard.s().to_string();
    ring::create(&proxy, CreateOptions::default()).expect("proxy");
    let c = Consumer::attach(&proxy).expect("consumer");
    let plan = Plan { host: "127.0.0.1".into(), portmgr_port: Some(pm.port), ring: "g".into(), proxy: proxy.clone() };
    assert_eq!(start_feeder(&plan).expect("feeder"), Started::Feeding);
    let feeder = ring::usage(&proxy).expect("usage").producer_pid;
    std::thread::sleep(Duration::from_secs(7));
    let made = connections.load(Ordering::SeqCst);
    // 0.2 + 0.4 + 0.8 + 1.6 + 3.2 s of pauses: about 5 connections, not 35.
    assert!((2..=7).contains(&made), "{made} connections in 7 s");
    assert_eq!(c.available().expect("available"), 0, "garbage reached the proxy");
    // Every abandoned connection was closed: stdio, the proxy, one stream at most.
    let fds = std::fs::read_dir(format!("/proc/{feeder}/fd")).map(|d| d.count()).unwrap_or(0);
    assert!(fds <= 8, "the feeder holds {fds} descriptors after {made} connections");
    let threads = std::fs::read_dir(format!("/proc/{feeder}/task")).map(|d| d.count()).unwrap_or(0);
    assert!(threads <= 2, "the feeder runs {threads} threads");
    assert!(
        std::fs::read_to_string(format!("/proc/{feeder}/stat")).is_ok_and(|s| !s.contains(") Z")),
        "the feeder died"
    );
    drop(c);
    ring::remove(&proxy).expect("remove");
}

/// The host, ring and proxy reach the feeder after `--`: a host name that looks like a
/// switch (the library passes whatever the URL and the resolver gave) is a host.
#[test]
fn a_host_that_looks_like_a_switch_is_a_host() {
    let feeder =
        std::env::current_exe().expect("exe").parent().and_then(|d| d.parent()).expect("dir").join("daqflow-feeder");
    let guard = common::RingName::new("feeder-switch");
    let proxy = guard.s().to_string();
    let out = std::process::Command::new(feeder)
        .args(["--portmgr-port", "1", "--", "--help", "ring", &proxy])
        .env("DAQFLOW_RINGMASTER", "off")
        .output()
        .expect("run feeder");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && !String::from_utf8_lossy(&out.stdout).contains("Usage"), "{said}");
    assert!(said.contains("--help"), "{said}");
}

/// A proxy truncated under its feeder (rings are 0666): the feeder reads the stream
/// straight into ring memory, and read(2) gets EFAULT on pages that are gone, not
/// SIGBUS. The feeder must stop, as for a proxy that failed, not reconnect for ever.
#[test]
fn a_truncated_proxy_stops_its_feeder() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let pm = Daemon::start("47430-47439", &[]);
    let (_manager, listener) = portmgr_support::listen_as(&pm, "RingMaster");
    // Every connection gets the reply; the first one then the chunks queued, the others
    // nothing (held open).
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut rx = Some(rx);
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            counted.fetch_add(1, Ordering::SeqCst);
            let chunks = rx.take();
            std::thread::spawn(move || {
                let mut request = String::new();
                let _ = BufReader::new(&conn).read_line(&mut request);
                if conn.write_all(b"OK BINARY FOLLOWS\r\n").is_err() {
                    return;
                }
                match chunks {
                    Some(rx) => {
                        while let Ok(chunk) = rx.recv_timeout(Duration::from_secs(20)) {
                            if conn.write_all(&chunk).is_err() {
                                break;
                            }
                        }
                    }
                    None => std::thread::sleep(Duration::from_secs(20)),
                }
            });
        }
    });
    let guard = common::RingName::new("feeder-shrunk");
    let proxy = guard.s().to_string();
    ring::create(&proxy, CreateOptions::default()).expect("proxy");
    let mut c = Consumer::attach(&proxy).expect("consumer");
    let plan = Plan { host: "127.0.0.1".into(), portmgr_port: Some(pm.port), ring: "s".into(), proxy: proxy.clone() };
    assert_eq!(start_feeder(&plan).expect("feeder"), Started::Feeding);
    let feeder = ring::usage(&proxy).expect("usage").producer_pid;
    // 200 KB of items, read: the feeder's next reservation lies far past the first pages.
    let first: Vec<u8> = (0..20).flat_map(|i| item(10_000, i, false)).collect();
    tx.send(first.clone()).expect("send");
    let mut got = vec![0u8; first.len()];
    assert_eq!(c.get(&mut got, first.len() as u64, Some(Duration::from_secs(20))).expect("first items"), first.len());
    assert_eq!(got, first);
    // Let the feeder block in its read, then take all but the first two pages away and
    // send more: the kernel's copy into the reservation fails.
    std::thread::sleep(Duration::from_millis(300));
    std::fs::OpenOptions::new().write(true).open(guard.path()).expect("proxy file").set_len(8192).expect("truncate");
    tx.send(item(1000, 99, false)).expect("send");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(format!("/proc/{feeder}/stat")).is_ok_and(|s| !s.contains(") Z")) {
        assert!(
            Instant::now() < deadline,
            "the feeder kept running on a truncated proxy ({} connections)",
            connections.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(connections.load(Ordering::SeqCst), 1, "the feeder reconnected instead of stopping");
    drop(c);
}
