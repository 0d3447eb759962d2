//! The Rust client (`portmgr::Client`) against the real daemon and against fake servers.

mod portmgr_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use daqflow::portmgr::client::calling_user;
use daqflow::portmgr::{Allocation, Client};
use portmgr_support::Daemon;

#[test]
fn allocate_list_find_and_release_on_drop() {
    let daemon = Daemon::start("29000-29009", &[]);
    let me = calling_user();
    let mut holder = Client::connect(Some("localhost"), Some(daemon.port)).unwrap();
    assert_eq!(holder.allocate("RingMaster").unwrap(), 29009);
    assert_eq!(holder.allocate("RingMaster").unwrap(), 29008);
    assert_eq!(holder.allocate("name with {braces} and \"quotes\"").unwrap(), 29007);
    let mut viewer = Client::connect(Some("127.0.0.1"), Some(daemon.port)).unwrap();
    let user = me.clone();
    assert_eq!(
        viewer.list().unwrap(),
        [
            Allocation { port: 29008, application: "RingMaster".into(), user: user.clone() },
            Allocation { port: 29009, application: "RingMaster_1".into(), user: user.clone() },
            Allocation { port: 29007, application: "name with {braces} and \"quotes\"".into(), user },
        ]
    );
    assert_eq!(viewer.find_server("RingMaster_1", Some(&me)).unwrap(), 29009);
    let missing = viewer.find_server("RingMaster", Some("somebody-else")).unwrap_err();
    assert_eq!(missing.errno(), libc::ENOENT);
    // Root may claim any user (then tests/portmgr_users.rs refuses other users' lies).
    if !nix::unistd::geteuid().is_root() {
        let refused = viewer.allocate_as("x", "somebody-else").unwrap_err();
        assert_eq!(refused.errno(), libc::EACCES, "{refused}");
    }
    assert_eq!(viewer.allocate("x\ny").unwrap_err().errno(), libc::EINVAL);
    // Any control character: the daemon would refuse it (it breaks LIST and ports.txt).
    assert_eq!(viewer.allocate("x\ty").unwrap_err().errno(), libc::EINVAL);
    assert_eq!(viewer.allocate_as("x", "me\u{7f}").unwrap_err().errno(), libc::EINVAL);
    drop(holder);
    daemon.eventually("release on drop", || viewer.list().unwrap().is_empty());
}

#[test]
fn a_request_too_long_for_the_server_is_refused_before_it_costs_the_ports() {
    // The daemon answers a line over its limit by hanging up, which releases every port
    // the connection holds: such a name must never be sent.
    let daemon = Daemon::start("29100-29109", &[]);
    let mut holder = Client::connect(Some("localhost"), Some(daemon.port)).unwrap();
    let kept = holder.allocate("kept").unwrap();
    let err = holder.allocate(&"x".repeat(5000)).unwrap_err();
    assert_eq!(err.errno(), libc::EINVAL, "{err}");
    // A name the server refuses (longer than its 255 bytes) costs nothing either; the
    // longest it takes works.
    assert!(holder.allocate(&"y".repeat(256)).is_err());
    let port = holder.allocate(&"y".repeat(255)).unwrap();
    let mut viewer = Client::connect(Some("localhost"), Some(daemon.port)).unwrap();
    let listed: Vec<_> = viewer.list().unwrap().into_iter().map(|a| a.port).collect();
    assert!(listed.contains(&kept) && listed.contains(&port), "{listed:?}");
}

/// A server that answers every line with `reply`.
fn fake_server(reply: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut writer = stream;
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                let _ = writer.write_all(reply.as_bytes());
                line.clear();
            }
        }
    });
    port
}

#[test]
fn failures_are_errno_codes_with_the_servers_text() {
    let no_ports = fake_server("FAIL {no free ports}\r\n");
    let err = Client::connect(Some("127.0.0.1"), Some(no_ports)).unwrap().allocate("a").unwrap_err();
    assert_eq!(err.errno(), libc::EADDRNOTAVAIL);
    assert!(err.message().contains("the server refused: no free ports"), "{err}");

    let garbage = fake_server("\u{1}\u{2} binary\r\n");
    let err = Client::connect(Some("127.0.0.1"), Some(garbage)).unwrap().list().unwrap_err();
    assert_eq!(err.errno(), libc::EPROTO, "{err}");

    // Accepted by the kernel, never answered.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut client = Client::connect_timeout(Some("127.0.0.1"), Some(port), Some(Duration::from_millis(200))).unwrap();
    let start = Instant::now();
    let err = client.allocate("a").unwrap_err();
    assert_eq!(err.errno(), libc::ETIMEDOUT);
    assert!(start.elapsed() < Duration::from_secs(5));
    drop(silent);

    let err = Client::connect(Some("127.0.0.1"), Some(port)).unwrap_err();
    assert_eq!(err.errno(), libc::ECONNREFUSED, "{err}");
}

/// A server that answers each request line only after `delay`, with `OK 1001`, `OK
/// 1002`, ...; reports through the channel when the client's side reaches end of file.
fn slow_server(delay: Duration) -> (u16, std::sync::mpsc::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (eof, eof_seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else { return };
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        let mut line = String::new();
        let mut next = 1001;
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            std::thread::sleep(delay);
            let _ = writer.write_all(format!("OK {next}\r\n").as_bytes());
            next += 1;
            line.clear();
        }
        let _ = eof.send(());
    });
    (port, eof_seen)
}

#[test]
fn a_timed_out_handle_never_returns_a_late_reply() {
    let (port, eof_seen) = slow_server(Duration::from_millis(300));
    let mut client = Client::connect_timeout(Some("127.0.0.1"), Some(port), Some(Duration::from_millis(100))).unwrap();
    assert_eq!(client.allocate("a").unwrap_err().errno(), libc::ETIMEDOUT);
    // The late `OK 1001` (the first request's port) has arrived by now.
    std::thread::sleep(Duration::from_millis(400));
    client.set_timeout(Some(Duration::from_secs(5)));
    let err = client.allocate("b").unwrap_err();
    assert_eq!(err.errno(), libc::EPIPE, "{err}");
    assert!(err.message().contains("open a new one"), "{err}");
    assert_eq!(client.list().unwrap_err().errno(), libc::EPIPE);
    assert_eq!(client.find_server("a", None).unwrap_err().errno(), libc::EPIPE);
    // The connection was shut down, so a real server releases what it held.
    eof_seen.recv_timeout(Duration::from_secs(5)).expect("the client's connection was not shut down");
}

#[test]
fn a_protocol_error_mid_list_breaks_the_handle() {
    // `OK 2` promises two lines; the first is not an allocation.
    let bad = fake_server("OK 2\r\nnot a list {\r\n");
    let mut client = Client::connect(Some("127.0.0.1"), Some(bad)).unwrap();
    assert_eq!(client.list().unwrap_err().errno(), libc::EPROTO);
    // Without the shutdown, the rest of that reply would answer the next request.
    assert_eq!(client.allocate("x").unwrap_err().errno(), libc::EPIPE);
}
