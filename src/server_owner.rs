//! Who runs the server a client has just connected to on this host, and whether the
//! client trusts that user (see `crate::trust`).
//!
//! A client finds the port manager at a well-known port and the ring master at the
//! port the port manager lists. On this host anyone may listen on either port while the
//! real daemon is down, or on an address it does not bind (127.0.0.1 when it listens on
//! another one), and then list a "root" ring master of its own, or be one. TCP carries
//! no credentials, so the kernel is asked (`sock_diag`, as the daemons ask about their
//! clients) who owns the server's end of the connection: the user of the process that
//! accepted it (until it is accepted, whoever made the listening socket), so a root
//! daemon's is root's whatever the connecting user, and an impostor's is the
//! impostor's. It is asked before anything is sent, while our end is open:
//! no other socket can then have the connection's addresses, and the server's end is
//! ESTABLISHED (a server that has already closed its end leaves a socket the kernel
//! reports with uid 0, which is not taken as an answer).

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::MsgFlags;

use crate::error::{Error, Result};
use crate::hosts::is_this_hosts;
use crate::sockdiag::OwnerLookup;
use crate::trust::{self, Trust};

/// How long to wait for the kernel to finish setting up the server's end: over loopback,
/// `connect` can return before the server side has processed the handshake's last ACK,
/// and the socket found until then is a half-open request with no owner.
const SETTLING: Duration = Duration::from_millis(500);
const SETTLE_PAUSE: Duration = Duration::from_millis(1);

/// Refuses (`EPERM`, naming the owner) a connection `stream` to `what` ("the port
/// manager", "the RingMaster") on this host whose server end is not owned by a trusted
/// user; a server on another host is not this function's to judge (nothing tells its
/// users apart; the listing's user name is checked instead).
pub fn check(stream: &TcpStream, what: &str) -> Result<()> {
    let (Ok(server), Ok(client)) = (stream.peer_addr(), stream.local_addr()) else {
        return Err(Error::new(libc::ENOTCONN, format!("the connection to {what} closed at once")));
    };
    if !on_this_host(server.ip()) {
        return Ok(());
    }
    let uid = owner(server, client, &|| peer_closed(stream)).map_err(|e| match e.kind() {
        // Nothing was said, so nothing was believed: as any server that hangs up.
        io::ErrorKind::ConnectionReset => {
            Error::new(libc::ECONNRESET, format!("{what} at {server} closed the connection at once"))
        }
        _ => Error::new(
            libc::EPERM,
            format!(
                "cannot learn who runs {what} at {server} ({e}); a server on this host is used only once it is known"
            ),
        ),
    })?;
    let trust = Trust::load();
    if trust.uid(uid) {
        return Ok(());
    }
    Err(Error::new(
        libc::EPERM,
        format!(
            "{what} at {server} is run by {}, which this process does not trust (it trusts {}, and its own user); {}",
            trust::describe_uid(uid),
            trust.describe(),
            trust::how_to_configure()
        ),
    ))
}

/// Loopback, or one of this host's own addresses.
fn on_this_host(ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    ip.is_loopback() || is_this_hosts(ip)
}

/// Whether the server has closed its end (or reset the connection): its socket is then
/// no longer ESTABLISHED, and waiting will not make it so.
fn peer_closed(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    // MSG_PEEK leaves whatever is there for the client to read.
    let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT;
    match nix::sys::socket::recv(stream.as_raw_fd(), &mut byte, flags) {
        Ok(n) => n == 0,
        Err(e) => !matches!(e, Errno::EAGAIN | Errno::EINTR),
    }
}

/// The uid owning the ESTABLISHED socket `server -> client`; `ConnectionReset` when the
/// server has closed its end (`closed`) before it could be learnt.
fn owner(server: SocketAddr, client: SocketAddr, closed: &dyn Fn() -> bool) -> io::Result<u32> {
    let mut lookup = OwnerLookup::new()?;
    // An IPv6 client reaching an IPv4 server through mapped addresses: the server's
    // socket is an IPv4 one (or, from a dual-stack listener, an IPv6 one as we see it).
    let canonical = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
    let mapped = server.ip() != server.ip().to_canonical() && client.ip() != client.ip().to_canonical();
    let started = Instant::now();
    loop {
        let found = match lookup.tcp_owner(server, client) {
            Err(e) if mapped && e.kind() == io::ErrorKind::NotFound => {
                lookup.tcp_owner(canonical(server), canonical(client))
            }
            other => other,
        };
        match found {
            Ok(socket) => return Ok(socket.uid),
            Err(e) if matches!(e.kind(), io::ErrorKind::NotConnected | io::ErrorKind::NotFound) && closed() => {
                return Err(io::Error::new(io::ErrorKind::ConnectionReset, e));
            }
            // Still a half-open request (or not yet in the kernel's tables): wait for it.
            Err(e)
                if matches!(e.kind(), io::ErrorKind::NotConnected | io::ErrorKind::NotFound)
                    && started.elapsed() < SETTLING =>
            {
                std::thread::sleep(SETTLE_PAUSE);
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn our_own_server_is_trusted_and_its_owner_found() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        assert_eq!(
            owner(client.peer_addr().unwrap(), client.local_addr().unwrap(), &|| false).unwrap(),
            nix::unistd::geteuid().as_raw(),
            "found before it is accepted"
        );
        assert!(check(&client, "the test server").is_ok());
    }

    #[test]
    fn an_ipv4_server_reached_through_a_mapped_address_is_found() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let Ok(client) = TcpStream::connect(("::ffff:127.0.0.1", port)) else {
            return; // no IPv6 here
        };
        assert!(check(&client, "the test server").is_ok());
    }

    #[test]
    fn a_server_that_has_closed_is_nobodys() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        drop(listener.accept().unwrap());
        std::thread::sleep(Duration::from_millis(50));
        // Not believed however it is asked (the kernel reports such a socket as root's).
        let error = owner(client.peer_addr().unwrap(), client.local_addr().unwrap(), &|| false).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotConnected, "{error}");
        assert_eq!(check(&client, "the test server").unwrap_err().errno(), libc::ECONNRESET, "said at once");
    }
}
