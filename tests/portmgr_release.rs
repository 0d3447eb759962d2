//! A port is released the moment the connection holding it ends, however it ends.

mod portmgr_support;

use std::os::fd::AsFd;

use daqflow::portmgr::client::calling_user;
use nix::sys::socket::{setsockopt, sockopt};
use portmgr_support::Daemon;

fn held_ports(daemon: &Daemon) -> usize {
    daemon.read("ports.txt").lines().count()
}

#[test]
fn release_on_close() {
    let daemon = Daemon::start("29000-29009", &[]);
    let mut c = daemon.connect();
    c.gimme("a", &calling_user());
    c.gimme("b", &calling_user());
    assert_eq!(held_ports(&daemon), 2, "ports.txt is written before the reply");
    drop(c);
    daemon.eventually("release on close", || held_ports(&daemon) == 0);
    daemon.eventually("release logged", || {
        daemon.read("log").contains(&format!("Port 29008 was released by b run by {}", calling_user()))
    });
}

#[test]
fn release_on_reset() {
    let daemon = Daemon::start("29000-29009", &[]);
    let mut c = daemon.connect();
    c.gimme("a", &calling_user());
    // Linger 0: close sends RST instead of FIN.
    setsockopt(&c.stream.as_fd(), sockopt::Linger, &libc::linger { l_onoff: 1, l_linger: 0 }).unwrap();
    drop(c);
    daemon.eventually("release on reset", || held_ports(&daemon) == 0);
    assert_eq!(daemon.connect().gimme("again", &calling_user()), 29009);
}

#[test]
fn release_on_half_close_after_answering() {
    let daemon = Daemon::start("29000-29009", &[]);
    let me = calling_user();
    let mut c = daemon.connect();
    c.gimme("a", &me);
    // Requests sent before the half-close are still answered, then the server hangs up.
    c.send(b"LIST\n");
    c.half_close();
    c.expect(format!("OK 1\r\n29009 a {me}\r\n").as_bytes());
    c.expect_closed();
    daemon.eventually("release on half-close", || held_ports(&daemon) == 0);
}

#[test]
fn unterminated_last_request_is_answered_at_half_close() {
    let daemon = Daemon::start("29000-29009", &[]);
    let mut c = daemon.connect();
    c.send(b"LIST");
    c.half_close();
    c.expect(b"OK 0\r\n");
    c.expect_closed();
}

#[test]
fn other_connections_keep_their_ports() {
    let daemon = Daemon::start("29000-29009", &[]);
    let me = calling_user();
    let mut keep = daemon.connect();
    let mut gone = daemon.connect();
    keep.gimme("keep", &me);
    gone.gimme("gone", &me);
    drop(gone);
    daemon.eventually("release", || held_ports(&daemon) == 1);
    assert_eq!(keep.list(), [format!("29009 keep {me}")]);
}

#[test]
fn release_on_half_close_while_replies_wait_unread() {
    let daemon = Daemon::start("29000-29009", &[]);
    let me = calling_user();
    // A small receive window, so the daemon's output backs up soon.
    let socket = std::net::TcpStream::connect(daemon.addr()).unwrap();
    setsockopt(&socket.as_fd(), sockopt::RcvBuf, &4096).unwrap();
    let mut c = portmgr_support::Raw::new(socket);
    for i in 0..8 {
        c.gimme(&format!("{}-{i}", "long-name-for-large-list-replies-".repeat(6)), &me);
    }
    // Pipeline LISTs without reading: their replies (about 36 MB) back up past the socket
    // buffers (at most 4 MB here) and the daemon's 64 KiB limit, so it holds back the rest
    // unanswered. The requests themselves (100 KB) fit in its receive buffer: a FIN cannot
    // overtake data the daemon has not taken in, so only then can it see the half-close.
    c.send(&b"LIST\n".repeat(20_000));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(held_ports(&daemon), 8);
    // The client ends its side without reading: its ports must not stay allocated.
    c.half_close();
    daemon.eventually("release on half-close while throttled", || held_ports(&daemon) == 0);
    // Released in allocation order: the last one allocated is the next handed out.
    assert_eq!(daemon.connect().gimme("again", &me), 29002);
}
