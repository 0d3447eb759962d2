//! Issue 12.6b: connections that send nothing cost the ring master no thread, and
//! connections are capped in total and per remote host.

mod portmgr_support;
mod ringmaster_support;

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ringmaster_support::Master;

fn threads(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map(|d| d.count()).unwrap_or(0)
}

/// The server closes `stream` without a word.
fn closed_at_once(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Err(e) => e.kind() == ErrorKind::ConnectionReset,
        Ok(_) => false,
    }
}

/// A LIST answered on a fresh connection: every connection made before it has been
/// accepted by then (one loop, in order).
fn answers(master: &Master) {
    master.connect().ask("LIST\n", "OK\r\n");
}

#[test]
fn idle_and_half_sent_connections_get_no_thread() {
    let master = Master::start(&[]);
    answers(&master);
    let before = threads(master.pid());
    let mut idle: Vec<TcpStream> = (0..300).map(|_| TcpStream::connect(master.addr()).expect("connect")).collect();
    for half in &mut idle[..100] {
        half.write_all(b"LI").expect("send half a request");
    }
    answers(&master);
    let during = threads(master.pid());
    eprintln!("ring master threads: {before} before, {during} with 300 silent connections");
    assert!(during < before + 10, "{during} threads for 300 silent connections ({before} before)");
    // They are served as soon as they finish a request.
    idle[0].write_all(b"ST\n").expect("finish the request");
    let mut reply = portmgr_support::Raw::new(idle.remove(0));
    reply.expect(b"OK\r\n");
    let mut silent = portmgr_support::Raw::new(idle.pop().expect("a silent one"));
    silent.ask("LIST\n", "OK\r\n");
}

#[test]
fn connections_past_the_total_are_closed() {
    let master = Master::start(&["--max-connections", "20"]);
    let mut open: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(master.addr()).expect("connect")).collect();
    let mut one_more = TcpStream::connect(master.addr()).expect("connect");
    assert!(closed_at_once(&mut one_more));
    // Those counted are served.
    let mut first = portmgr_support::Raw::new(open.remove(0));
    first.ask("LIST\n", "OK\r\n");
}

/// This host's first IPv4 address that is not loopback, to connect from as "another host".
fn other_address() -> Option<IpAddr> {
    nix::ifaddrs::getifaddrs().ok()?.find_map(|ifa| {
        let ip = IpAddr::V4(ifa.address?.as_sockaddr_in()?.ip());
        (!ip.is_loopback()).then_some(ip)
    })
}

#[test]
fn connections_per_remote_host_are_capped() {
    let Some(ip) = other_address() else {
        eprintln!("SKIPPED: no non-loopback IPv4 address to connect from");
        return;
    };
    let master = Master::start(&["--max-per-host", "5"]);
    let target = SocketAddr::new(ip, master.port);
    let mut open: Vec<TcpStream> = (0..5).map(|_| TcpStream::connect(target).expect("connect")).collect();
    let mut sixth = TcpStream::connect(target).expect("connect");
    assert!(closed_at_once(&mut sixth), "the sixth connection from {ip} was not closed");
    // Loopback clients (the host's own processes) are not that host's.
    answers(&master);
    drop(open.pop());
    let start = Instant::now();
    // Once the daemon has seen one go, the host may connect again.
    loop {
        let mut again = portmgr_support::Raw::new(TcpStream::connect(target).expect("connect"));
        again.send(b"LIST\n");
        let mut reply = [0u8; 4];
        if again.stream.read(&mut reply).is_ok_and(|n| n == 4) {
            assert_eq!(&reply, b"OK\r\n");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "the host's slot never came back");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Review of issue 12: with `--listen` naming only other addresses, any local user could
/// listen on 127.0.0.1 at the ring master's port, where every local client connects, and
/// receive their REGISTER/CONNECT (and answer them). The daemon holds it itself.
#[test]
fn loopback_at_our_port_is_ours_whatever_the_listen_list() {
    let Some(ip) = other_address() else {
        eprintln!("SKIPPED: no non-loopback IPv4 address to listen on");
        return;
    };
    let master = Master::start(&["--listen", &ip.to_string()]);
    let squat = std::net::TcpListener::bind(("127.0.0.1", master.port));
    assert!(squat.is_err(), "anyone could listen on 127.0.0.1:{} beside the ring master", master.port);
    answers(&master);
}
