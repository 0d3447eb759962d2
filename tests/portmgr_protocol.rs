//! The wire protocol against the real daemon, byte for byte (spec/portmanager.md).

mod portmgr_support;

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use daqflow::portmgr::client::calling_user;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn};
use portmgr_support::{Daemon, Raw};

fn me() -> String {
    calling_user()
}

#[test]
fn gimme_list_and_no_free_ports_replies() {
    let daemon = Daemon::start("29000-29001", &[]);
    let me = me();
    let mut c = daemon.connect();
    c.ask(&format!("GIMME app1 {me}\n"), "OK 29001\r\n");
    c.ask("LIST\n", &format!("OK 1\r\n29001 app1 {me}\r\n"));
    c.ask(&format!("GIMME app1 {me}\r\n"), "OK 29000\r\n");
    c.ask(&format!("GIMME app1 {me}\n"), "FAIL {no free ports}\r\n");
    // The connection stays open and keeps its ports.
    c.ask("LIST\n", &format!("OK 2\r\n29000 app1 {me}\r\n29001 app1_1 {me}\r\n"));
    // Extra words are ignored; missing ones are empty.
    let mut other = daemon.connect();
    other.ask("LIST please\n", "OK 2\r\n");
    other.line();
    other.line();
}

#[test]
fn invalid_requests_are_answered_then_closed_and_release() {
    let daemon = Daemon::start("29000-29009", &[]);
    let me = me();
    let cases: [(&[u8], &[u8]); 6] = [
        (b"HELLO there\n", b"FAIL {Invalid request HELLO there}\r\n"),
        (b"\n", b"FAIL {Invalid request }\r\n"),
        (b"gimme a b\n", b"FAIL {Invalid request gimme a b}\r\n"),
        // Not a Tcl list: the legacy server went silent and leaked the ports.
        (b"GIMME {a\n", b"FAIL Invalid\\ request\\ GIMME\\ \\{a\r\n"),
        (b"GIMME \"a\n", b"FAIL {Invalid request GIMME \"a}\r\n"),
        (b"\x00\x01\xff{\n", b"FAIL Invalid\\ request\\ \x00\x01\xff\\{\r\n"),
    ];
    for (request, reply) in cases {
        let mut c = daemon.connect();
        let port = c.gimme("held", &me);
        c.send(request);
        c.expect(reply);
        c.expect_closed();
        let mut lister = daemon.connect();
        daemon.eventually("release after an invalid request", || {
            !lister.list().iter().any(|l| l.starts_with(&port.to_string()))
        });
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let daemon = Daemon::start("29000-29009", &[]);
    let me = me();
    let mut c = daemon.connect();
    c.send(format!("GIMME a {me}\nLIST\r\nGIMME b {me}\rLIST\nBAD\nLIST\n").as_bytes());
    c.expect(
        format!(
            "OK 29009\r\nOK 1\r\n29009 a {me}\r\nOK 29008\r\nOK 2\r\n29009 a {me}\r\n29008 b {me}\r\n\
             FAIL {{Invalid request BAD}}\r\n"
        )
        .as_bytes(),
    );
    // The LIST after the invalid request is never answered: the server hung up.
    c.expect_closed();
}

#[test]
fn requests_split_across_segments() {
    let daemon = Daemon::start("29000-29099", &[]);
    let me = me();
    let mut c = daemon.connect();
    c.stream.set_nodelay(true).unwrap();
    let request = format!("GIMME {{my app}} {me}\r\nLIST\r\n");
    // Every split point, including between a CR and its LF.
    for split in 1..request.len() {
        c.send(&request.as_bytes()[..split]);
        std::thread::sleep(Duration::from_millis(2));
        c.send(&request.as_bytes()[split..]);
        assert_eq!(c.line(), format!("OK {}\r\n", 29099 - split + 1), "at split {split}");
        assert_eq!(c.line(), format!("OK {split}\r\n"), "at split {split}");
        for _ in 0..split {
            c.line();
        }
    }
}

#[test]
fn names_with_spaces_braces_and_quotes_round_trip() {
    let daemon = Daemon::start("29000-29009", &[]);
    let me = me();
    let mut c = daemon.connect();
    // Requests quoted as Tcl lists; replies quoted as Tcl's `list` quotes them (checked
    // against tclsh 8.6).
    let cases = [
        ("{my app}", "{my app}"),
        ("a\\{b", "a\\{b"),
        ("\"q\\\"x\"", "q\\\"x"),
        ("{br{ace}s}", "br{ace}s"),
        ("ORDERER:fox:evb1", "ORDERER:fox:evb1"),
        ("VMUSBReadout:1", "VMUSBReadout:1"),
        ("{}", "{}"),
    ];
    let mut expected = Vec::new();
    for (request, listed) in cases {
        let port = c.gimme(request, &me);
        expected.push((port, listed));
    }
    let lines = c.list();
    for (port, listed) in expected {
        assert!(lines.contains(&format!("{port} {listed} {me}")), "{port} {listed} not in {lines:?}");
    }
    // And the client library finds them by their real names.
    let mut client = daqflow::portmgr::Client::connect(Some("127.0.0.1"), Some(daemon.port)).unwrap();
    assert_eq!(client.find_server("my app", None).unwrap(), 29009);
    assert_eq!(client.find_server("q\"x", None).unwrap(), 29007);
    assert_eq!(client.find_server("", None).unwrap(), 29003);
}

#[test]
fn highest_first_and_lifo_reuse() {
    let daemon = Daemon::start("29000-29004", &[]);
    let me = me();
    let mut a = daemon.connect();
    let mut b = daemon.connect();
    assert_eq!([a.gimme("a", &me), a.gimme("a", &me), a.gimme("a", &me)], [29004, 29003, 29002]);
    assert_eq!(b.gimme("b", &me), 29001);
    drop(a);
    daemon.eventually("release of a's ports", || b.list().len() == 1);
    // Released in allocation order, so the last allocated comes back first.
    let again: Vec<u16> = (0..4).map(|_| b.gimme("b", &me)).collect();
    assert_eq!(again, [29002, 29003, 29004, 29000]);
}

#[test]
fn list_order_and_suffixes_are_the_legacy_ones() {
    // Other users' names need the legacy (unchecked) mode.
    let daemon = Daemon::start("29016-29020", &["-no-user-check"]);
    let mut c = daemon.connect();
    for (app, user, port) in [
        ("app1", "alice", 29020),
        ("app2", "alice", 29019),
        ("app1", "alice", 29018),
        ("app1", "bob", 29017),
        ("{my app}", "alice", 29016),
    ] {
        assert_eq!(c.gimme(app, user), port);
    }
    c.ask(
        "LIST\n",
        "OK 5\r\n29018 app1 alice\r\n29020 app1_1 alice\r\n29019 app2 alice\r\n29016 {my app} alice\r\n29017 app1 bob\r\n",
    );
    assert_eq!(
        daemon.read("ports.txt"),
        "29016\tmy app\talice\n29017\tapp1\tbob\n29018\tapp1\talice\n29019\tapp2\talice\n29020\tapp1\talice\n"
    );
}

/// A connection from 127.0.0.2: loopback, but not one of the local addresses.
fn connect_from_127_0_0_2(daemon: &Daemon) -> Raw {
    let fd = socket::socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).unwrap();
    socket::bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::new(127, 0, 0, 2, 0)).unwrap();
    let stream = TcpStream::from(fd);
    let target = SocketAddr::from(([127, 0, 0, 1], daemon.port));
    socket::connect(std::os::fd::AsRawFd::as_raw_fd(&stream), &socket::SockaddrStorage::from(target)).unwrap();
    Raw::new(stream)
}

#[test]
fn non_local_peers_may_list_but_not_allocate() {
    let daemon = Daemon::start("29000-29009", &[]);
    let me = me();
    let mut local = daemon.connect();
    local.gimme("mine", &me);
    let mut remote = connect_from_127_0_0_2(&daemon);
    remote.ask("LIST\n", &format!("OK 1\r\n29009 mine {me}\r\n"));
    remote.ask(&format!("GIMME app {me}\n"), "FAIL {127.0.0.2 (127.0.0.2) : Only local applications get ports}\r\n");
    remote.expect_closed();
    assert!(daemon.read("log").contains("because: 127.0.0.2 (127.0.0.2) : Only local applications get ports"));
    assert_eq!(local.list().len(), 1);
}

#[test]
fn ipv6_loopback_is_local() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback on this host; skipping");
        return;
    }
    let daemon = Daemon::start("29000-29009", &[]);
    let stream = TcpStream::connect(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, daemon.port))).unwrap();
    let mut c = Raw::new(stream);
    assert_eq!(c.gimme("v6", &me()), 29009);
    let mut client = daqflow::portmgr::Client::connect(Some("::1"), Some(daemon.port)).unwrap();
    assert_eq!(client.find_server("v6", None).unwrap(), 29009);
}

#[test]
fn garbage_silence_and_vanishing_clients_leave_no_trace() {
    let daemon = Daemon::start("29000-29009", &[]);
    let me = me();
    // Connects and sends nothing, for the whole test.
    let _silent = daemon.connect();
    // A line far beyond any real request, without an end.
    let mut long = daemon.connect();
    long.gimme("held", &me);
    long.send(&vec![b'x'; 10_000]);
    long.expect(b"FAIL {Invalid request: longer than 4096 bytes}\r\n");
    long.expect_closed();
    // Binary noise with line ends in it.
    let mut noise = daemon.connect();
    noise.gimme("held", &me);
    let bytes: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    noise.send(&bytes);
    let reply = noise.line();
    assert!(reply.starts_with("FAIL "), "{reply:?}");
    // Vanishes in the middle of a request.
    let mut vanishing = daemon.connect();
    vanishing.gimme("held", &me);
    vanishing.send(b"GIMME half");
    drop(vanishing);
    let mut lister = daemon.connect();
    daemon.eventually("every port released", || lister.list().is_empty());
    assert_eq!(daemon.read("ports.txt"), "");
    // And the daemon still serves, the last port released first: the half request is
    // answered at the end of input like a whole one, and root may claim the empty user
    // it names, so as root it held 29008, released after 29009.
    let last_released = if nix::unistd::geteuid().is_root() { 29008 } else { 29009 };
    assert_eq!(lister.gimme("after", &me), last_released, "{}", daemon.read("log"));
}

#[test]
fn names_with_control_characters_are_refused_and_logged_safely() {
    // A Tcl escape in a quoted word puts a raw line break into a name: it would split
    // LIST lines for every client and ports.txt lines, and forge log lines.
    let refused = |what: &str| format!("FAIL {{the {what} name contains a control character}}\r\n");
    for verification in [&[][..], &["-no-user-check"][..]] {
        let daemon = Daemon::start("29000-29009", verification);
        let me = calling_user();
        let mut c = daemon.connect();
        c.ask(&format!("GIMME \"evil\\napp\" {me}\n"), &refused("application"));
        c.ask(
            &format!("GIMME app \"{me}\\nMay 01, 2025 00:00:00 host Port 1 was allocated to forged\"\n"),
            &refused("user"),
        );
        for escape in ["\\t", "\\r", "\\x7f", "\\x01", "\\0"] {
            c.ask(&format!("GIMME \"a{escape}b\" {me}\n"), &refused("application"));
        }
        // The connection stays usable, and nothing was allocated.
        c.ask(&format!("GIMME fine {me}\n"), "OK 29009\r\n");
        assert_eq!(c.list(), [format!("29009 fine {me}")]);
        assert_eq!(daemon.read("ports.txt"), format!("29009\tfine\t{me}\n"));
        daemon.eventually("refusals logged", || daemon.read("log").matches("control character").count() == 7);
        let log = daemon.read("log");
        assert!(log.contains("Unable to allocate a port for evil\\napp run by"), "{log}");
        // Every log line is one of the daemon's: stamped, never a forged continuation.
        for line in log.lines() {
            assert!(!line.starts_with("May 01, 2025 00:00:00 host"), "forged log line {line:?} in\n{log}");
        }
    }
}
