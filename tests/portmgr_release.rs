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
    let daemon = Daemon::start("40000-40009", &[]);
    let mut c = daemon.connect();
    c.gimme("a", &calling_user());
    c.gimme("b", &calling_user());
    assert_eq!(held_ports(&daemon), 2, "ports.txt is written before the reply");
    drop(c);
    daemon.eventually("release on close", || held_ports(&daemon) == 0);
    daemon.eventually("release logged", || daemon.read("log").contains(&format!("Port 40008 was released by b run by {}", calling_user())));
}

#[test]
fn release_on_reset() {
    let daemon = Daemon::start("40000-40009", &[]);
    let mut c = daemon.connect();
    c.gimme("a", &calling_user());
    // Linger 0: close sends RST instead of FIN.
    setsockopt(&c.stream.as_fd(), sockopt::Linger, &libc::linger { l_onoff: 1, l_linger: 0 }).unwrap();
    drop(c);
    daemon.eventually("release on reset", || held_ports(&daemon) == 0);
    assert_eq!(daemon.connect().gimme("again", &calling_user()), 40009);
}

#[test]
fn release_on_half_close_after_answering() {
    let daemon = Daemon::start("40000-40009", &[]);
    let me = calling_user();
    let mut c = daemon.connect();
    c.gimme("a", &me);
    // Requests sent before the half-close are still answered, then the server hangs up.
    c.send(b"LIST\n");
    c.half_close();
    c.expect(format!("OK 1\r\n40009 a {me}\r\n").as_bytes());
    c.expect_closed();
    daemon.eventually("release on half-close", || held_ports(&daemon) == 0);
}

#[test]
fn unterminated_last_request_is_answered_at_half_close() {
    let daemon = Daemon::start("40000-40009", &[]);
    let mut c = daemon.connect();
    c.send(b"LIST");
    c.half_close();
    c.expect(b"OK 0\r\n");
    c.expect_closed();
}

#[test]
fn other_connections_keep_their_ports() {
    let daemon = Daemon::start("40000-40009", &[]);
    let me = calling_user();
    let mut keep = daemon.connect();
    let mut gone = daemon.connect();
    keep.gimme("keep", &me);
    gone.gimme("gone", &me);
    drop(gone);
    daemon.eventually("release", || held_ports(&daemon) == 1);
    assert_eq!(keep.list(), [format!("40009 keep {me}")]);
}
