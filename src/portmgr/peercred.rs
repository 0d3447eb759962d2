//! Who owns the client's end of a loopback TCP connection, and does the name it sent
//! belong to that user.
//!
//! TCP carries no credentials and the legacy protocol sends the user as plain text, so
//! the daemon asks the kernel instead: a `sock_diag` netlink query for the exact socket
//! `peer -> local` returns its owner's uid (what `ss -e` shows). It costs one system call
//! round trip, independent of how many sockets the host has, which scanning
//! `/proc/net/tcp` is not.

use std::io;
use std::mem::size_of;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::unistd::{Uid, User};

use super::log::printable;

/// `linux/sock_diag.h` and `linux/inet_diag.h`; not all of them are in the libc crate.
const NETLINK_SOCK_DIAG: libc::c_int = 4;
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
/// rqueue, wqueue).
const MSG_UID_OFFSET: usize = 4 + SOCKID_LEN + 12;

/// A netlink socket for owner queries, opened once by the daemon.
#[derive(Debug)]
pub struct OwnerLookup {
    fd: OwnedFd,
    seq: u32,
}

impl OwnerLookup {
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, NETLINK_SOCK_DIAG) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // The kernel answers at once; the timeout only guards against a lost reply
        // stalling the daemon's event loop.
        let timeout = libc::timeval { tv_sec: 0, tv_usec: 200_000 };
        // SAFETY: valid fd, option value points at a timeval of the stated size.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnerLookup { fd, seq: 0 })
    }

    /// The uid owning the TCP socket whose local address is `peer` and whose remote
    /// address is `local` (the client's end of a connection this process accepted).
    pub fn tcp_owner(&mut self, peer: SocketAddr, local: SocketAddr) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let request = build_request(peer, local, self.seq)?;
        // SAFETY: valid fd; the buffer is initialised and its length is passed.
        let sent = unsafe { libc::send(self.fd.as_raw_fd(), request.as_ptr().cast(), request.len(), 0) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut reply = [0u8; 1024];
        loop {
            // SAFETY: valid fd; the kernel writes at most `reply.len()` bytes.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), reply.as_mut_ptr().cast(), reply.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            if let Some(answer) = parse_reply(&reply[..n as usize], self.seq) {
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

/// `None` when the message answers another query; otherwise the uid or the error.
fn parse_reply(msg: &[u8], seq: u32) -> Option<io::Result<u32>> {
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
        Some(SOCK_DIAG_BY_FAMILY) => word(NLMSG_HDR_LEN + MSG_UID_OFFSET).ok_or_else(malformed),
        _ => Err(malformed()),
    })
}

/// The owner of a connection's client socket, with its login name looked up once (per
/// connection, at its first GIMME) by uid: no name is ever resolved per request, so a
/// slow directory service (LDAP) costs the event loop at most one lookup per client, and
/// a client cannot make the daemon look up names of its choosing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    uid: u32,
    /// The passwd name of `uid`, when it has one.
    name: Option<Vec<u8>>,
}

impl Owner {
    pub fn lookup(uid: u32) -> Owner {
        let name = User::from_uid(Uid::from_raw(uid)).ok().flatten().map(|u| u.name.into_bytes());
        Owner { uid, name }
    }

    /// Checks that `user` names this owner: its login name or its uid in decimal (what a
    /// client without a passwd entry sends), byte for byte; the refusal reason otherwise.
    pub fn verify(&self, user: &[u8]) -> Result<(), String> {
        if self.name.as_deref() == Some(user) || user == self.uid.to_string().as_bytes() {
            return Ok(());
        }
        Err(format!(
            "user {} is not the owner of this connection (uid {}{})",
            printable(user),
            self.uid,
            self.name.as_ref().map(|n| format!(", {}", printable(n))).unwrap_or_default()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn finds_the_owner_of_a_loopback_client() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, peer) = listener.accept().unwrap();
        let mut lookup = OwnerLookup::new().unwrap();
        let uid = lookup.tcp_owner(peer, server.local_addr().unwrap()).unwrap();
        assert_eq!(uid, nix::unistd::geteuid().as_raw());
        // A connection that does not exist is an error, not some other socket's owner.
        let gone = SocketAddr::new(peer.ip(), 1);
        assert!(lookup.tcp_owner(gone, server.local_addr().unwrap()).is_err());
        drop(client);
    }

    #[test]
    fn names_and_uids_match_byte_for_byte() {
        let root = Owner::lookup(0);
        assert!(root.verify(b"root").is_ok());
        assert!(root.verify(b"0").is_ok());
        // Only the exact decimal form and the exact name: no parsing, no other lookup.
        for other in [&b"00"[..], b"+0", b" 0", b"Root", b"root ", b"", b"no-such-user-here"] {
            assert!(root.verify(other).is_err(), "{:?}", String::from_utf8_lossy(other));
        }
        let refusal = root.verify(b"nobody").unwrap_err();
        assert_eq!(refusal, "user nobody is not the owner of this connection (uid 0, root)");
        let refusal = root.verify(b"x\ny").unwrap_err();
        assert!(!refusal.contains('\n'), "{refusal}");
        // A uid without a passwd entry is known by its number only.
        let nameless = Owner::lookup(3_999_999_999);
        assert!(nameless.verify(b"3999999999").is_ok());
        assert_eq!(nameless.verify(b"x").unwrap_err(), "user x is not the owner of this connection (uid 3999999999)");
    }
}
