//! Whether something on this host already listens on a TCP port. The daemon hands out
//! only ports it knows are free in its own books; another port manager (a second demo,
//! a test) or any other program may hold the same ones, and a server told to use such a
//! port fails to bind.

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrIn, SockaddrIn6, SockaddrLike, bind, setsockopt, socket, sockopt,
};

/// Answers whether a socket listens on a port (IPv4 or IPv6, any address). A bind
/// without listening (nothing can connect to it) answers at once for a free port, the
/// common case; for a port it finds taken, the listening ports are read from
/// /proc/net/tcp and tcp6, so that only a listener counts: connections, and a closed
/// server's TIME_WAIT sockets, do not (they come and go, and clients expect the range's
/// ports in order). That read costs milliseconds on a host with thousands of sockets,
/// and when the pool lies in the kernel's ephemeral range many binds fail because of
/// connections, so one reading serves for `LISTENING_MAX_AGE`: a server that started
/// listening since may be missed, as it would be a moment later anyway. Any other
/// failure counts as free, so a probe never refuses what the books allow.
#[derive(Default, Debug)]
pub struct Probe {
    listening: Option<(HashSet<u16>, Instant)>,
}

const LISTENING_MAX_AGE: Duration = Duration::from_millis(200);

impl Probe {
    pub fn in_use(&mut self, port: u16) -> bool {
        let v4 = SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port));
        let v6 = SockaddrIn6::from(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0));
        (bind_refused(AddressFamily::Inet, &v4) || bind_refused(AddressFamily::Inet6, &v6))
            && self.listening().contains(&port)
    }

    fn listening(&mut self) -> &HashSet<u16> {
        if self.listening.as_ref().is_some_and(|(_, read_at)| read_at.elapsed() >= LISTENING_MAX_AGE) {
            self.listening = None;
        }
        &self.listening.get_or_insert_with(|| (listening_ports(), Instant::now())).0
    }
}

fn bind_refused(family: AddressFamily, address: &dyn SockaddrLike) -> bool {
    let Ok(fd) = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None) else {
        return false;
    };
    if setsockopt(&fd, sockopt::ReuseAddr, &true).is_err() {
        return false;
    }
    // An IPv6 socket bound to [::] also claims IPv4 unless V6ONLY; IPv4 is probed apart.
    if family == AddressFamily::Inet6 && setsockopt(&fd, sockopt::Ipv6V6Only, &true).is_err() {
        return false;
    }
    matches!(bind(fd.as_raw_fd(), address), Err(Errno::EADDRINUSE))
}

/// The local ports of the sockets /proc/net/tcp and tcp6 list in LISTEN state (0A).
fn listening_ports() -> HashSet<u16> {
    let mut ports = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1).unwrap_or_default();
            if fields.nth(1) == Some("0A") {
                if let Some(port) = local.rsplit(':').next().and_then(|hex| u16::from_str_radix(hex, 16).ok()) {
                    ports.insert(port);
                }
            }
        }
    }
    ports
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_listening_port_is_in_use_and_a_closed_one_is_not() {
        for address in ["127.0.0.1:0", "0.0.0.0:0", "[::1]:0"] {
            let Ok(listener) = TcpListener::bind(address) else {
                continue; // no IPv6 here
            };
            let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
            assert!(Probe::default().in_use(port), "{address} listening on {port}");
            drop(listener);
            assert!(!Probe::default().in_use(port), "{port} closed");
        }
    }

    #[test]
    fn one_reading_of_the_listeners_serves_a_moment_then_is_renewed() {
        let first = TcpListener::bind("0.0.0.0:0").expect("listen");
        let mut probe = Probe::default();
        assert!(probe.in_use(first.local_addr().map(|a| a.port()).unwrap_or(0)));
        let second = TcpListener::bind("0.0.0.0:0").expect("listen");
        let port = second.local_addr().map(|a| a.port()).unwrap_or(0);
        std::thread::sleep(LISTENING_MAX_AGE + Duration::from_millis(50));
        assert!(probe.in_use(port), "a listener that started after the last reading, {port}, is seen once it is old");
    }

    #[test]
    fn connections_and_time_wait_do_not_count() {
        use std::io::Read;
        // Without SO_REUSEADDR (std sets it), so that its TIME_WAIT blocks a bind.
        let fd = socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).expect("socket");
        let any = SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
        bind(fd.as_raw_fd(), &any).expect("bind");
        nix::sys::socket::listen(&fd, nix::sys::socket::Backlog::new(1).expect("backlog")).expect("listen");
        let server = TcpListener::from(fd);
        let port = server.local_addr().map(|a| a.port()).unwrap_or(0);
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let (mut accepted, _) = server.accept().expect("accept");
        drop(server);
        assert!(!Probe::default().in_use(port), "an established connection on {port} is not a listener");
        // The server side closes first: its socket on `port` goes to TIME_WAIT.
        drop(accepted.shutdown(std::net::Shutdown::Both));
        let mut rest = Vec::new();
        let _ = (&client).read_to_end(&mut rest);
        drop(client);
        let _ = accepted.read(&mut [0u8; 1]);
        drop(accepted);
        assert!(!Probe::default().in_use(port), "TIME_WAIT on {port} is not a listener");
    }
}
