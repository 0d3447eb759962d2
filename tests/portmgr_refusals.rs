//! Refused GIMMEs cost root's log a bounded amount, whoever sends them: found by the
//! review of the issue 12 port manager changes (16 KB of log per remote connection, 23
//! MB/s from one remote loop, before).

mod portmgr_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use portmgr_support::Daemon;

/// This host's first IPv4 address that is not loopback, to connect from as "another host".
fn other_address() -> Option<std::net::IpAddr> {
    nix::ifaddrs::getifaddrs().ok()?.find_map(|ifa| {
        let ip = std::net::IpAddr::V4(ifa.address?.as_sockaddr_in()?.ip());
        (!ip.is_loopback()).then_some(ip)
    })
}

/// Any host may GIMME: the refusal ("Only local applications get ports") is logged with
/// the application name quoted in full, escaped (up to 4 bytes per byte sent), and that
/// line is not under the rate limit of the other lines about connections. Measured: 16 KB
/// of root's log per remote connection, 23 MB/s from one remote loop.
#[test]
fn a_remote_host_cannot_fill_the_log_with_refused_gimmes() {
    let Some(ip) = other_address() else {
        eprintln!("SKIPPED: no non-loopback IPv4 address to connect from");
        return;
    };
    let daemon = Daemon::start("24001-24010", &[]);
    let target = SocketAddr::new(ip, daemon.port);
    let mut request = b"GIMME ".to_vec();
    request.extend(std::iter::repeat_n(0xffu8, 4000));
    request.extend_from_slice(b" x\n");
    let start = Instant::now();
    let connections = 300;
    for _ in 0..connections {
        let mut c = TcpStream::connect(target).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        c.write_all(&request).expect("send");
        let mut reply = Vec::new();
        let _ = c.read_to_end(&mut reply);
    }
    let elapsed = start.elapsed().as_secs() + 1;
    std::thread::sleep(Duration::from_millis(200));
    let log = daemon.read("log").len() as u64;
    eprintln!("{log} bytes logged for {connections} refused remote GIMMEs in {elapsed} s");
    // What the other lines about connections may cost: 200 at once, 20 a second, a few
    // hundred bytes each.
    assert!(
        log <= (200 + 20 * elapsed) * 600,
        "{log} bytes logged in {elapsed} s"
    );
}
