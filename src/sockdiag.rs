//! Who owns a TCP socket of this host, as the kernel says: a `sock_diag` netlink query
//! for the exact socket `local -> remote` returns its owner's uid (what `ss -e` shows).
//! It costs one system call round trip, independent of how many sockets the host has,
//! which scanning `/proc/net/tcp` is not. The daemons ask it of their clients' sockets,
//! the clients of their servers' (`server_owner`).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, recv, send, setsockopt, socket, sockopt,
};
use nix::sys::time::TimeVal;

/// `linux/sock_diag.h` and `linux/inet_diag.h`; not all of them are in the libc crate.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const INET_DIAG_NOCOOKIE: u32 = !0;
const NLMSG_HDR_LEN: usize = 16;
/// `inet_diag_req_v2`: family, protocol, ext, pad, states, then `inet_diag_sockid`.
const REQ_LEN: usize = 8 + SOCKID_LEN;
/// `inet_diag_sockid`: sport, dport, src[4], dst[4], if, cookie[2].
const SOCKID_LEN: usize = 4 + 16 + 16 + 4 + 8;
/// Offset of `idiag_uid` in `inet_diag_msg` (4 bytes of header, the sockid, expires,
/// rqueue, wqueue); `idiag_inode` follows it.
const MSG_UID_OFFSET: usize = 4 + SOCKID_LEN + 12;
const MSG_INODE_OFFSET: usize = MSG_UID_OFFSET + 4;
/// Offset of `idiag_state` in `inet_diag_msg` (after `idiag_family`).
const MSG_STATE_OFFSET: usize = 1;
/// `TCP_ESTABLISHED` in the kernel's TCP states.
const TCP_ESTABLISHED: u8 = 1;

/// What the kernel says about a connection's client socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketId {
    /// Its owner: the effective (file system) uid of the process that created it, set
    /// by the kernel then and never changed.
    pub uid: u32,
    pub inode: u32,
}

/// A netlink socket for owner queries, opened once by the daemon.
#[derive(Debug)]
pub struct OwnerLookup {
    fd: OwnedFd,
    seq: u32,
}

impl OwnerLookup {
    pub fn new() -> io::Result<Self> {
        let fd =
            socket(AddressFamily::Netlink, SockType::Datagram, SockFlag::SOCK_CLOEXEC, SockProtocol::NetlinkSockDiag)?;
        // The kernel answers at once; the timeout only guards against a lost reply
        // stalling the daemon's event loop.
        setsockopt(&fd, sockopt::ReceiveTimeout, &TimeVal::new(0, 200_000))?;
        Ok(OwnerLookup { fd, seq: 0 })
    }

    /// The uid owning the TCP socket whose local address is `peer` and whose remote
    /// address is `local` (the client's end of a connection this process accepted).
    ///
    /// Only a socket still ESTABLISHED is an answer: once the client has closed, its
    /// end becomes a FIN_WAIT or TIME_WAIT socket that the kernel reports as root's, and
    /// whatever holds that 4-tuple is no longer the client. The daemon asks right after
    /// accepting, while its own end is open, so nobody else can hold the 4-tuple then.
    pub fn tcp_owner(&mut self, peer: SocketAddr, local: SocketAddr) -> io::Result<SocketId> {
        self.seq = self.seq.wrapping_add(1);
        let request = build_request(peer, local, self.seq)?;
        send(self.fd.as_raw_fd(), &request, MsgFlags::empty())?;
        let mut reply = [0u8; 1024];
        loop {
            let n = recv(self.fd.as_raw_fd(), &mut reply, MsgFlags::empty())?;
            if let Some(answer) = parse_reply(&reply[..n], self.seq) {
                return answer;
            }
            // A late answer to an earlier, timed-out query: skip it.
        }
    }
}

fn build_request(peer: SocketAddr, local: SocketAddr, seq: u32) -> io::Result<Vec<u8>> {
    let family = match (peer.ip(), local.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) => libc::AF_INET,
        (IpAddr::V6(_), IpAddr::V6(_)) => libc::AF_INET6,
        _ => return Err(io::Error::new(io::ErrorKind::InvalidInput, "mixed address families")),
    };
    let total = NLMSG_HDR_LEN + REQ_LEN;
    let mut buf = Vec::with_capacity(total);
    buf.extend_from_slice(&(total as u32).to_ne_bytes());
    buf.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    buf.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&[family as u8, libc::IPPROTO_TCP as u8, 0, 0]);
    buf.extend_from_slice(&u32::MAX.to_ne_bytes()); // every TCP state
    // The socket to find: its own (source) end is the peer, its destination is us.
    buf.extend_from_slice(&peer.port().to_be_bytes());
    buf.extend_from_slice(&local.port().to_be_bytes());
    buf.extend_from_slice(&address_bytes(peer.ip()));
    buf.extend_from_slice(&address_bytes(local.ip()));
    buf.extend_from_slice(&0u32.to_ne_bytes()); // any interface
    buf.extend_from_slice(&INET_DIAG_NOCOOKIE.to_ne_bytes());
    buf.extend_from_slice(&INET_DIAG_NOCOOKIE.to_ne_bytes());
    Ok(buf)
}

/// The address in network order, padded to the kernel's 16 bytes.
fn address_bytes(ip: IpAddr) -> [u8; 16] {
    let mut out = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => out[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out.copy_from_slice(&v6.octets()),
    }
    out
}

/// `None` when the message answers another query; otherwise the socket or the error.
fn parse_reply(msg: &[u8], seq: u32) -> Option<io::Result<SocketId>> {
    let word = |at: usize| msg.get(at..at + 4).and_then(|b| b.try_into().ok()).map(u32::from_ne_bytes);
    let kind = msg.get(4..6).and_then(|b| b.try_into().ok()).map(u16::from_ne_bytes);
    if word(8) != Some(seq) {
        return None;
    }
    let malformed = || io::Error::new(io::ErrorKind::InvalidData, "short sock_diag reply");
    Some(match kind {
        Some(NLMSG_ERROR) => match word(NLMSG_HDR_LEN) {
            Some(code) => Err(io::Error::from_raw_os_error(-(code as i32))),
            None => Err(malformed()),
        },
        Some(SOCK_DIAG_BY_FAMILY) => {
            let state = msg.get(NLMSG_HDR_LEN + MSG_STATE_OFFSET).copied();
            match (state, word(NLMSG_HDR_LEN + MSG_UID_OFFSET), word(NLMSG_HDR_LEN + MSG_INODE_OFFSET)) {
                (Some(TCP_ESTABLISHED), Some(uid), Some(inode)) => Ok(SocketId { uid, inode }),
                (Some(state), Some(_), Some(_)) => Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    format!("the client's socket is no longer connected (TCP state {state})"),
                )),
                _ => Err(malformed()),
            }
        }
        _ => Err(malformed()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn a_client_that_has_closed_is_nobodys() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, peer) = listener.accept().unwrap();
        drop(client);
        let mut lookup = OwnerLookup::new().unwrap();
        let started = std::time::Instant::now();
        // The client's end goes FIN_WAIT, then TIME_WAIT (reported as root's).
        let error = loop {
            match lookup.tcp_owner(peer, server.local_addr().unwrap()) {
                Err(e) => break e,
                Ok(_) => assert!(started.elapsed().as_secs() < 5, "still ESTABLISHED"),
            }
        };
        assert!(error.to_string().contains("no longer connected"), "{error}");
    }

    #[test]
    fn finds_the_owner_of_a_loopback_client() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, peer) = listener.accept().unwrap();
        let mut lookup = OwnerLookup::new().unwrap();
        let socket = lookup.tcp_owner(peer, server.local_addr().unwrap()).unwrap();
        assert_eq!(socket.uid, nix::unistd::geteuid().as_raw());
        let fd = std::fs::metadata(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&client))).unwrap();
        assert_eq!(u64::from(socket.inode), std::os::unix::fs::MetadataExt::ino(&fd));
        // A connection that does not exist is an error, not some other socket's owner.
        let gone = SocketAddr::new(peer.ip(), 1);
        assert!(lookup.tcp_owner(gone, server.local_addr().unwrap()).is_err());
        drop(client);
    }
}
