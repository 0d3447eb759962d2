//! tcp:// URLs that need no second host: this host's own names mean the local ring (no
//! proxy, no feeder); a host that cannot serve the ring fails the attach in bounded time
//! and leaves neither a proxy ring nor a zombie; producers and malformed URLs are refused.

mod common;
mod remote_support;

use remote_support::Net;
use std::time::{Duration, Instant};

use daqflow::hosts::hostname;
use daqflow::ring::{self, Consumer, CreateOptions, Producer};

fn shm_names() -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

#[test]
fn own_names_mean_the_local_ring() {
    // `tcp://` names and ring master announcements are the client layer's.
    daqflow::client::install();
    let guard = common::RingName::new("rlocal");
    let name = guard.s().to_string();
    ring::create(&name, CreateOptions { data_bytes: 65536, max_consumers: 4, ..Default::default() }).expect("create");
    let me = hostname().expect("hostname");
    for host in ["localhost", "LOCALHOST", "127.0.0.1", "[::1]", me.as_str()] {
        let url = format!("tcp://{host}/{name}");
        let c = Consumer::attach(&url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(c.name(), name, "{url} is the local ring itself");
        let usage = ring::usage(&name).expect("usage");
        assert_eq!(usage.consumers.len(), 1, "{url}");
        drop(c);
    }
    let mine: Vec<String> = shm_names().into_iter().filter(|n| n.contains(&name)).collect();
    assert_eq!(mine, vec![name.clone()], "no proxy ring for a local URL");
    ring::remove(&name).expect("remove");
}

#[test]
fn refusals() {
    // `tcp://` names and ring master announcements are the client layer's.
    daqflow::client::install();
    for bad in ["tcp://", "tcp://host", "tcp://host/", "tcp://h/a/b", "tcp://host:99999/r"] {
        let err = Consumer::attach(bad).map(|_| ()).expect_err(bad);
        assert_eq!(err.errno(), libc::EINVAL, "{bad}: {}", err.message());
    }
    let err = Producer::attach("tcp://localhost/ring").map(|_| ()).expect_err("producer");
    assert_eq!(err.errno(), libc::EINVAL);
    assert!(err.message().contains("own host"), "{}", err.message());
}

#[test]
fn a_host_that_cannot_serve_fails_cleanly() {
    // `tcp://` names and ring master announcements are the client layer's.
    daqflow::client::install();
    // 198.51.100.0/24 is reserved for documentation: no port manager of ours is there
    // (CI hosts may live on 192.0.2.0/24, so not that one).
    let ring_name = format!("gone{}", std::process::id());
    let url = format!("tcp://198.51.100.1/{ring_name}");
    let start = Instant::now();
    let err = Consumer::attach(&url).map(|_| ()).expect_err("nothing serves it");
    assert!(start.elapsed() < Duration::from_secs(25), "took {:?}", start.elapsed());
    // Refused, unreachable, timed out, or (behind an intercepting proxy) garbage: any
    // error will do, as long as it says what failed.
    assert!(err.errno() > 0 && err.message().contains("feeder"), "{}: {}", err.errno(), err.message());
    assert!(!shm_names().iter().any(|n| n.ends_with(&ring_name)), "a proxy ring was left behind");
    assert_eq!(common::lasting_zombie_children(), 0, "the feeder start left a zombie");
}

/// Runs `what` on a host whose name server (on its own loopback) never answers, where
/// the system resolver would wait 30 s; returns (errno, seconds).
fn with_silent_dns(tag: &str, what: &[&str]) -> (i32, f64) {
    let Some(net) = Net::new(tag, 1) else { return (libc::ETIMEDOUT, 0.0) };
    std::fs::write(
        format!("/etc/netns/{}/resolv.conf", net.hosts[0].ns),
        "nameserver 127.0.0.1\noptions timeout:30 attempts:1\n",
    )
    .expect("resolv.conf");
    let args: Vec<&str> = ["silent-dns"].iter().chain(what).copied().collect();
    let out = net.run(0, &args, Duration::from_secs(90));
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(out.status.success(), "{line} {}", String::from_utf8_lossy(&out.stderr));
    let words: Vec<&str> = line.split(' ').collect();
    match words.as_slice() {
        ["errno", errno, "secs", secs] => (errno.parse().unwrap_or(-1), secs.parse().unwrap_or(f64::MAX)),
        _ => panic!("{line}"),
    }
}

#[test]
fn locating_a_ring_master_is_time_boxed_resolution_included() {
    let (errno, secs) = with_silent_dns("dnl", &["locate", "nowhere.dfnet.invalid", "1500"]);
    assert_eq!(errno, libc::ETIMEDOUT);
    assert!(secs < 3.0, "locate took {secs} s with a 1.5 s timeout");
}

#[test]
fn attaching_to_a_url_is_time_boxed_resolution_included() {
    // The attach resolves the host itself (proxy name, is it this host?) before any
    // feeder runs: 5 s at most.
    let (errno, secs) = with_silent_dns("dna", &["attach", "tcp://nowhere.dfnet.invalid/ring"]);
    assert_eq!(errno, libc::ETIMEDOUT);
    assert!(secs < 7.0, "the attach took {secs} s");
}
