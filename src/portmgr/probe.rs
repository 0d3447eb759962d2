//! Whether something on this host already listens on a TCP port. The daemon hands out
//! only ports it knows are free in its own books; another port manager (a second demo,
//! a test) or any other program may hold the same ones, and a server told to use such a
//! port fails to bind. A probe binds without listening, so nothing can connect to it.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use nix::errno::Errno;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, SockaddrIn6, bind, setsockopt, socket, sockopt};

/// True when binding `port` on every address fails with EADDRINUSE for IPv4 or IPv6.
/// SO_REUSEADDR (as servers set it) makes a port that only has connections in TIME_WAIT
/// count as free; any other failure (no IPv6, no descriptor left) counts as free, so a
/// probe never refuses what the books allow.
pub fn in_use(port: u16) -> bool {
    let v4 = SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port));
    let v6 = SockaddrIn6::from(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0));
    taken(AddressFamily::Inet, &v4) || taken(AddressFamily::Inet6, &v6)
}

fn taken(family: AddressFamily, address: &dyn nix::sys::socket::SockaddrLike) -> bool {
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
    use std::os::fd::AsRawFd;
    matches!(bind(fd.as_raw_fd(), address), Err(Errno::EADDRINUSE))
}

#[cfg(test)]
mod tests {
    use super::in_use;
    use std::net::TcpListener;

    #[test]
    fn a_listening_port_is_in_use_and_a_closed_one_is_not() {
        for address in ["127.0.0.1:0", "0.0.0.0:0", "[::1]:0"] {
            let Ok(listener) = TcpListener::bind(address) else {
                continue; // no IPv6 here
            };
            let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
            assert!(in_use(port), "{address} listening on {port}");
            drop(listener);
            assert!(!in_use(port), "{port} closed");
        }
    }
}
