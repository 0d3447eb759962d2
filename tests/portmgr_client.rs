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
    let daemon = Daemon::start("40000-40009", &[]);
    let me = calling_user();
    let mut holder = Client::connect(Some("localhost"), Some(daemon.port)).unwrap();
    assert_eq!(holder.allocate("RingMaster").unwrap(), 40009);
    assert_eq!(holder.allocate("RingMaster").unwrap(), 40008);
    assert_eq!(holder.allocate("name with {braces} and \"quotes\"").unwrap(), 40007);
    let mut viewer = Client::connect(Some("127.0.0.1"), Some(daemon.port)).unwrap();
    let user = me.clone();
    assert_eq!(
        viewer.list().unwrap(),
        [
            Allocation { port: 40008, application: "RingMaster".into(), user: user.clone() },
            Allocation { port: 40009, application: "RingMaster_1".into(), user: user.clone() },
            Allocation { port: 40007, application: "name with {braces} and \"quotes\"".into(), user },
        ]
    );
    assert_eq!(viewer.find_server("RingMaster_1", Some(&me)).unwrap(), 40009);
    let missing = viewer.find_server("RingMaster", Some("somebody-else")).unwrap_err();
    assert_eq!(missing.errno(), libc::ENOENT);
    let refused = viewer.allocate_as("x", "somebody-else").unwrap_err();
    assert_eq!(refused.errno(), libc::EACCES, "{refused}");
    assert_eq!(viewer.allocate("x\ny").unwrap_err().errno(), libc::EINVAL);
    // Any control character: the daemon would refuse it (it breaks LIST and ports.txt).
    assert_eq!(viewer.allocate("x\ty").unwrap_err().errno(), libc::EINVAL);
    assert_eq!(viewer.allocate_as("x", "me\u{7f}").unwrap_err().errno(), libc::EINVAL);
    drop(holder);
    daemon.eventually("release on drop", || viewer.list().unwrap().is_empty());
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
