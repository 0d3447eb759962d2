//! A hostile port manager (any host named in `tcp://host/...` or `lsservices host`)
//! must not inflate its clients: every line and count it sends is bounded, and every
//! exchange has a deadline (issue 12.8).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

mod hostile_support;

use daqflow::portmgr::Client;
use daqflow::portmgr::reply::{MAX_LIST_BYTES, MAX_REPLY_LINE};

/// Most a flooding server sends; far past every client limit, small enough that a client
/// without limits does not take the machine down with it.
const FLOOD_CAP: usize = 512 * 1024 * 1024;
/// What the kernel may hold in socket buffers on top of what the client read.
const IN_FLIGHT: usize = 16 * 1024 * 1024;

/// A server that answers LIST with `OK 65535` and then `line` over and over as fast as
/// the client reads; reports how many bytes it got rid of before the client hung up.
fn flooding_server(line: Vec<u8>) -> (u16, Receiver<usize>) {
    let (addr, sent) = hostile_support::flooding_server(b"OK 65535\r\n", line, b"", FLOOD_CAP);
    (addr.port(), sent)
}

/// A LIST line `port application user` of about `bytes` bytes.
fn list_line(bytes: usize) -> Vec<u8> {
    let name = "n".repeat(bytes / 2);
    format!("30000 {name} {name}\r\n").into_bytes()
}

fn list_against(line: Vec<u8>) -> (daqflow::Error, usize, u16) {
    let (port, sent) = flooding_server(line);
    let mut client = Client::connect_timeout(Some("127.0.0.1"), Some(port), Some(Duration::from_secs(60))).unwrap();
    let err = client.list().unwrap_err();
    drop(client);
    (err, sent.recv_timeout(Duration::from_secs(60)).expect("the flooding server never stopped"), port)
}

#[test]
fn a_listing_of_65535_long_lines_is_refused_after_the_byte_limit() {
    // Lines the client accepts one by one (8 KiB), 512 MiB of them in all.
    let (err, sent, port) = list_against(list_line(8 * 1024));
    assert_eq!(err.errno(), libc::EPROTO, "{err}");
    let message = err.message();
    assert!(message.contains(&format!("127.0.0.1:{port}")), "the error names the server: {message}");
    assert!(message.contains(&MAX_LIST_BYTES.to_string()), "the error names the limit: {message}");
    assert!(sent <= MAX_LIST_BYTES + IN_FLIGHT, "the client read {sent} bytes of a hostile listing");
}

#[test]
fn a_listing_of_names_that_are_not_utf8_is_bounded_by_what_it_becomes() {
    // Each byte 0xff becomes U+FFFD (3 bytes) in the client's strings: 32 MiB sent kept
    // 96 MiB, before.
    let name = vec![0xffu8; 4000];
    let mut line = b"30000 ".to_vec();
    line.extend_from_slice(&name);
    line.push(b' ');
    line.extend_from_slice(&name);
    line.extend_from_slice(b"\r\n");
    let (err, sent, _) = list_against(line);
    assert_eq!(err.errno(), libc::EPROTO, "{err}");
    assert!(err.message().contains(&MAX_LIST_BYTES.to_string()), "the error names the limit: {}", err.message());
    assert!(sent <= MAX_LIST_BYTES / 3 + IN_FLIGHT, "the client read {sent} bytes of a listing kept 3 times over");
}

#[test]
fn a_listing_of_huge_lines_is_refused_at_the_first() {
    let (err, sent, port) = list_against(list_line(60 * 1024));
    assert_eq!(err.errno(), libc::EPROTO, "{err}");
    let message = err.message();
    assert!(message.contains(&format!("127.0.0.1:{port}")), "the error names the server: {message}");
    assert!(message.contains(&MAX_REPLY_LINE.to_string()), "the error names the limit: {message}");
    assert!(sent <= IN_FLIGHT, "the client read {sent} bytes of a hostile listing");
}

#[test]
fn a_server_that_trickles_its_listing_is_given_up_in_time() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else { return };
        let _ = stream.write_all(b"OK 3\r\n");
        // A byte every 20 ms: every read succeeds, the listing never ends.
        while stream.write_all(b"3").is_ok() {
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let mut client = Client::connect_timeout(Some("127.0.0.1"), Some(port), Some(Duration::from_millis(500))).unwrap();
    let start = Instant::now();
    let err = client.list().unwrap_err();
    assert!(matches!(err.errno(), libc::ETIMEDOUT | libc::EPROTO), "{err}");
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

/// `lsservices 127.0.0.1` run against the server on `port` (through a port file of its
/// own, `tag` naming the scratch directory).
fn lsservices_of(port: u16, tag: &str) -> std::process::Output {
    let dir = std::env::temp_dir().join(format!("daqflow-hostile-lsservices-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port_file = dir.join("listen.port");
    std::fs::write(&port_file, port.to_string()).unwrap();
    let out = Command::new(concat!(env!("DAQFLOW_PROGRAMS"), "/lsservices"))
        .arg("127.0.0.1")
        .env("DAQPORTMGR_PORTFILE", &port_file)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    out
}

#[test]
fn lsservices_of_a_hostile_host_fails_in_bounded_memory() {
    let (port, sent) = flooding_server(list_line(8 * 1024));
    let out = lsservices_of(port, "flood");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "lsservices took a hostile listing: {stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")) && stderr.contains(&MAX_LIST_BYTES.to_string()), "{stderr}");
    let _ = sent.recv_timeout(Duration::from_secs(60));
    // What a listing of MAX_LIST_BYTES costs, with room for the program itself.
    let peak = children_peak_rss();
    assert!(peak < 160 * 1024 * 1024, "lsservices peaked at {} MiB", peak >> 20);
}

#[test]
fn lsservices_prints_no_control_characters_a_server_sends() {
    // The legacy server and FRIB's portman take any name; an escape sequence in one
    // would be written to the operator's terminal.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else { return };
        let mut request = String::new();
        let _ = BufReader::new(stream.try_clone().unwrap()).read_line(&mut request);
        let _ = stream.write_all(b"OK 1\r\n30000 \"x\\033\\[2J\\033\\]0;owned\\007\" \"u\\x1b\\[31m\"\r\n");
    });
    let out = lsservices_of(port, "esc");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("x?[2J?]0;owned?") && stdout.contains("u?[31m"), "{stdout}");
    assert!(!stdout.chars().any(|c| c.is_control() && c != '\n'), "{stdout:?}");
}
