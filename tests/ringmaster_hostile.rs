//! A hostile ring master (the one any host in `tcp://host/...` or `ringbuffer --host`
//! lists) must not inflate its clients: its LIST line and what it holds are bounded, and
//! every exchange has a deadline (issue 12.8).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

mod hostile_support;

use daqflow::ringmaster::Client;
use daqflow::ringmaster::client::MAX_REPLY_LINE;

/// What the kernel may hold in socket buffers on top of what the client read.
const IN_FLIGHT: usize = 16 * 1024 * 1024;
/// Most a flooding server sends: far past the client's limit.
const FLOOD_CAP: usize = 256 * 1024 * 1024;

/// A ring master that answers its first request with `OK` and then `body` repeated up
/// to `FLOOD_CAP` bytes (then `tail`); reports the bytes it got rid of.
fn fake_master(body: &'static [u8], tail: &'static [u8]) -> (SocketAddr, Receiver<usize>) {
    hostile_support::flooding_server(b"OK\r\n", body.to_vec(), tail, FLOOD_CAP)
}

#[test]
fn an_endless_list_line_is_refused_at_the_limit() {
    let (addr, sent) = fake_master(b"{ring {1 1 1 -1 0 0 {{1 1} {1 1} {1 1}}}} ", b"\r\n");
    let mut client = Client::connect_addr(addr, Duration::from_secs(60)).unwrap();
    let err = client.list().unwrap_err();
    drop(client);
    assert_eq!(err.errno(), libc::EPROTO, "{err}");
    let message = err.message();
    assert!(message.contains(&addr.to_string()), "the error names the ring master: {message}");
    assert!(message.contains(&MAX_REPLY_LINE.to_string()), "the error names the limit: {message}");
    let sent = sent.recv_timeout(Duration::from_secs(60)).unwrap();
    assert!(sent <= MAX_REPLY_LINE + IN_FLIGHT, "the client read {sent} bytes of a hostile listing");
}

#[test]
fn a_ring_listing_more_consumers_than_it_has_slots_is_not_the_protocol() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else { return };
        let _ = stream.write_all(b"OK\r\n{ring {1 1 2 -1 0 0 {{1 1} {2 1} {3 1}}}}\r\n");
        std::thread::sleep(Duration::from_secs(5));
    });
    let err = Client::connect_addr(addr, Duration::from_secs(5)).unwrap().list().unwrap_err();
    assert_eq!(err.errno(), libc::EPROTO, "{err}");
}

#[test]
fn a_ring_master_that_trickles_its_listing_is_given_up_in_time() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else { return };
        let _ = stream.write_all(b"OK\r\n");
        while stream.write_all(b"{").is_ok() {
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let mut client = Client::connect_addr(addr, Duration::from_millis(500)).unwrap();
    let start = Instant::now();
    let err = client.list().unwrap_err();
    assert_eq!(err.errno(), libc::ETIMEDOUT, "{err}");
    assert!(start.elapsed() < Duration::from_secs(3), "took {:?}", start.elapsed());
}

/// The largest resident set of any child this process has waited for, in bytes.
fn children_peak_rss() -> u64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_CHILDREN is a valid selector.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) }, 0);
    u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024
}

/// A port manager that lists a ring master run by root at `master`.
fn fake_portmgr(master: u16) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut request = String::new();
            let _ = BufReader::new(stream.try_clone().unwrap()).read_line(&mut request);
            let _ = (&stream).write_all(format!("OK 1\r\n{master} RingMaster root\r\n").as_bytes());
        }
    });
    port
}

#[test]
fn ringbuffer_host_against_a_hostile_ring_master_stays_small() {
    // The densest listing the line limit lets through: empty-named rings would not
    // parse, so many tiny consumers in one ring, just under the limit.
    let pairs = (MAX_REPLY_LINE - 64) / 6;
    let line: &'static [u8] =
        format!("{{r {{1 1 1048576 -1 0 0 {{{}}}}}}}\r\n", "{1 1} ".repeat(pairs)).leak().as_bytes();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut request = String::new();
            let _ = BufReader::new(stream.try_clone().unwrap()).read_line(&mut request);
            let _ = (&stream).write_all(b"OK\r\n");
            let _ = (&stream).write_all(line);
        }
    });
    let portmgr = fake_portmgr(addr.port());
    let dir = std::env::temp_dir().join(format!("daqflow-hostile-ringbuffer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port_file = dir.join("listen.port");
    std::fs::write(&port_file, portmgr.to_string()).unwrap();
    let out = Command::new(concat!(env!("DAQFLOW_PROGRAMS"), "/ringbuffer"))
        .args(["list", "--host=127.0.0.1"])
        .env("DAQPORTMGR_PORTFILE", &port_file)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let peak = children_peak_rss();
    eprintln!("ringbuffer list --host: {:?}, peak {} MiB", out.status, peak >> 20);
    assert!(peak < 96 * 1024 * 1024, "ringbuffer peaked at {} MiB", peak >> 20);
}
