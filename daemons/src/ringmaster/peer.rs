//! Who is at the other end of a connection, learnt once, as it is accepted.
//!
//! TCP carries no credentials, so for a client on this host the kernel is asked who owns
//! the client's socket (`sock_diag`, as the port manager does). The answer is taken only
//! at accept and only from a socket some process still holds (a non-zero inode): a
//! client that wrote its request and closed leaves an orphaned or TIME_WAIT socket,
//! reported with no inode and (TIME_WAIT) as uid 0, and a 4-tuple can only be reused
//! once both its ends are gone, so a held socket with this connection's addresses is
//! this connection's client. A client's identity never changes afterwards.

use std::net::{IpAddr, SocketAddr};

use crate::network::network_of;
use crate::portmgr::peercred::OwnerLookup;

/// The client of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// A process of this host run by this uid (the owner of its socket).
    User(u32),
    /// Something on this host whose owner could not be learnt.
    Unidentified(IpAddr),
    /// Another host.
    Host(IpAddr),
}

/// What counts and rate-limits a client: its user on this host, else its address
/// (for IPv6, its /64: one host can use a whole one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    User(u32),
    Address(IpAddr),
}

impl Who {
    pub fn key(&self) -> Key {
        match *self {
            Who::User(uid) => Key::User(uid),
            Who::Unidentified(ip) | Who::Host(ip) => Key::Address(network_of(ip)),
        }
    }

    pub fn on_this_host(&self) -> bool {
        !matches!(self, Who::Host(_))
    }
}

impl std::fmt::Display for Who {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Who::User(uid) => write!(f, "uid {uid}"),
            Who::Unidentified(ip) => write!(f, "an unidentified client at {ip}"),
            Who::Host(ip) => write!(f, "host {ip}"),
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::User(uid) => write!(f, "uid {uid}"),
            Key::Address(ip) => write!(f, "{ip}"),
        }
    }
}

/// Identifies the client of a connection just accepted (`peer` its address, `local`
/// ours). `lookup` is `None` when the daemon could not open its sock_diag socket: then
/// no client on this host is identified.
pub fn identify(lookup: Option<&mut OwnerLookup>, peer: SocketAddr, local: SocketAddr) -> Who {
    let ip = peer.ip().to_canonical();
    let peer = SocketAddr::new(ip, peer.port());
    let local = SocketAddr::new(local.ip().to_canonical(), local.port());
    if let Some(lookup) = lookup {
        if let Ok(socket) = lookup.tcp_owner(peer, local) {
            // Found: the client's end is on this host. Held by a process or not, it is
            // nobody else's.
            return if socket.inode != 0 { Who::User(socket.uid) } else { Who::Unidentified(ip) };
        }
    }
    if ip.is_loopback() || daqflow::hosts::is_this_hosts(ip) { Who::Unidentified(ip) } else { Who::Host(ip) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn a_loopback_client_is_its_user_while_it_holds_its_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let local = listener.local_addr().unwrap();
        let mut lookup = OwnerLookup::new().unwrap();
        let client = TcpStream::connect(local).unwrap();
        let (_server, peer) = listener.accept().unwrap();
        assert_eq!(identify(Some(&mut lookup), peer, local), Who::User(nix::unistd::geteuid().as_raw()));
        // Closed before the daemon looked: no owner to take.
        drop(client);
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(identify(Some(&mut lookup), peer, local), Who::Unidentified(peer.ip()));
        assert_eq!(identify(None, peer, local), Who::Unidentified(peer.ip()));
    }

    #[test]
    fn other_addresses_are_other_hosts() {
        let peer: SocketAddr = "203.0.113.9:4000".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:30001".parse().unwrap();
        assert_eq!(identify(None, peer, local), Who::Host(peer.ip()));
        let v6: IpAddr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        assert_eq!(Who::Host(v6).key(), Key::Address("2001:db8:1:2::".parse().unwrap()));
    }
}
