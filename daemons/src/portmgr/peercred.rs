//! Who owns the client's end of a loopback TCP connection, and does the name it sent
//! belong to that user.
//!
//! TCP carries no credentials and the legacy protocol sends the user as plain text, so
//! the daemon asks the kernel instead: a `sock_diag` netlink query for the exact socket
//! `peer -> local` returns its owner's uid (what `ss -e` shows). It costs one system call
//! round trip, independent of how many sockets the host has, which scanning
//! `/proc/net/tcp` is not.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, recv, send, setsockopt, socket, sockopt,
};
use nix::sys::time::TimeVal;
use nix::unistd::{Uid, User};

use super::holders::{SEARCH_LIMIT, holders_of};
use crate::log::printable;

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

/// A user as the daemon knows it: a uid and its passwd name, looked up by uid once.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Account {
    uid: u32,
    /// The passwd name of `uid`, when it has one.
    name: Option<Vec<u8>>,
}

impl Account {
    fn lookup(uid: u32) -> Account {
        let name = User::from_uid(Uid::from_raw(uid)).ok().flatten().map(|u| u.name.into_bytes());
        Account { uid, name }
    }

    /// `user` names this account: its login name or its uid in decimal, byte for byte, or
    /// nothing at all when it has no name (Tcl's `$tcl_platform(user)` is then empty).
    fn is(&self, user: &[u8]) -> bool {
        match &self.name {
            Some(name) => name == user || user == self.uid.to_string().as_bytes(),
            None => user.is_empty() || user == self.uid.to_string().as_bytes(),
        }
    }

    fn shown(&self) -> String {
        format!("uid {}{}", self.uid, self.name.as_ref().map(|n| format!(", {}", printable(n))).unwrap_or_default())
    }
}

/// Who a connection's client is: the owner of its socket, with its login name looked up
/// once (per connection, at its first GIMME) by uid, and, when a GIMME names someone
/// else, the real user of the processes holding the socket. No name a client sends is
/// ever resolved, so a slow directory service (LDAP) costs the event loop at most two
/// lookups per client, and a client cannot make the daemon look up names of its choosing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    owner: Account,
    inode: u32,
    /// The real user every process holding the socket shares, found at the first GIMME
    /// that does not name the owner: `Ok(None)` when there is none to accept, `Err` why
    /// the processes could not be checked.
    real: Option<Result<Option<Account>, String>>,
}

impl Owner {
    pub fn lookup(socket: SocketId) -> Owner {
        Owner { owner: Account::lookup(socket.uid), inode: socket.inode, real: None }
    }

    /// Checks that `user` is not a lie (docs/portmanager.md, "User verification"): the
    /// socket's owner (by name, decimal uid, or an empty name when it has no passwd
    /// entry); anyone when the owner is root; else the real user of the processes that
    /// hold the socket, when they all share one and each has the owner among its ids, and
    /// anyone when that real user is root. The refusal reason otherwise.
    pub fn verify(&mut self, user: &[u8], proc_root: &Path) -> Result<(), String> {
        if self.owner.uid == 0 || self.owner.is(user) {
            return Ok(());
        }
        let (owner, inode) = (self.owner.uid, self.inode);
        let real = self.real.get_or_insert_with(|| real_user(owner, inode, proc_root));
        let why_not = match real {
            Ok(Some(real)) if real.uid == 0 || real.is(user) => return Ok(()),
            Ok(Some(real)) if real.uid != owner => format!(" nor the real user of its process ({})", real.shown()),
            Ok(_) => String::new(),
            Err(why) => format!("; its processes could not be checked: {why}"),
        };
        Err(format!("user {} is not the owner of this connection ({}){why_not}", printable(user), self.owner.shown()))
    }
}

/// The real user shared by every process holding the socket `inode` owned by `owner`.
/// Each must have `owner` among its ids: a socket handed to another user's process (over
/// a unix socket) is not theirs to speak for.
fn real_user(owner: u32, inode: u32, proc_root: &Path) -> Result<Option<Account>, String> {
    let holders = holders_of(inode, proc_root, SEARCH_LIMIT).map_err(|e| e.to_string())?;
    let Some(first) = holders.first() else {
        return Ok(None);
    };
    if holders.iter().any(|h| !h.has(owner) || h.real != first.real) {
        return Ok(None);
    }
    Ok(Some(Account::lookup(first.real)))
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

    /// A stand-in for /proc: processes (pid, "real effective saved fs") holding socket 777.
    struct FakeProc(std::path::PathBuf);

    impl FakeProc {
        fn new(holders: &[(u32, &str)]) -> FakeProc {
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let root = std::env::temp_dir().join(format!("daqflow-fakeproc-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            for (pid, uids) in holders {
                let dir = root.join(pid.to_string());
                std::fs::create_dir_all(dir.join("fd")).unwrap();
                std::os::unix::fs::symlink("socket:[777]", dir.join("fd/3")).unwrap();
                std::os::unix::fs::symlink("/dev/null", dir.join("fd/0")).unwrap();
                std::fs::write(dir.join("status"), format!("Name:\tx\nUid:\t{}\n", uids.replace(' ', "\t"))).unwrap();
            }
            // A process holding something else, and an entry that is not a process.
            std::fs::create_dir_all(root.join("99/fd")).unwrap();
            std::os::unix::fs::symlink("socket:[7777]", root.join("99/fd/4")).unwrap();
            std::fs::write(root.join("99/status"), "Uid:\t0\t0\t0\t0\n").unwrap();
            std::fs::create_dir_all(root.join("self")).unwrap();
            FakeProc(root)
        }

        fn verify(&self, owner: u32, user: &str) -> Result<(), String> {
            Owner::lookup(SocketId { uid: owner, inode: 777 }).verify(user.as_bytes(), &self.0)
        }
    }

    impl Drop for FakeProc {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const NAMELESS: u32 = 3_999_999_999;

    #[test]
    fn names_and_uids_match_byte_for_byte() {
        let daemon = Account::lookup(1);
        let name = String::from_utf8(daemon.name.clone().expect("uid 1 has a name")).unwrap();
        assert!(daemon.is(name.as_bytes()));
        assert!(daemon.is(b"1"));
        // Only the exact decimal form and the exact name: no parsing, no other lookup.
        for other in
            [&b"01"[..], b"+1", b" 1", name.to_uppercase().as_bytes(), format!("{name} ").as_bytes(), b"", b"root"]
        {
            assert!(!daemon.is(other), "{:?}", String::from_utf8_lossy(other));
        }
        let none = FakeProc::new(&[]);
        let refusal = none.verify(1, "nobody").unwrap_err();
        assert_eq!(refusal, format!("user nobody is not the owner of this connection (uid 1, {name})"));
        assert!(!none.verify(1, "x\ny").unwrap_err().contains('\n'));
        // A uid without a passwd entry is known by its number, or by no name at all.
        assert!(none.verify(NAMELESS, "3999999999").is_ok());
        assert!(none.verify(NAMELESS, "").is_ok());
        assert_eq!(
            none.verify(NAMELESS, "x").unwrap_err(),
            "user x is not the owner of this connection (uid 3999999999)"
        );
        // Root may claim anyone.
        assert!(none.verify(0, "anyone").is_ok());
    }

    #[test]
    fn the_real_user_of_the_holding_processes_is_accepted() {
        // A setuid program: made by its effective user, holding its real one.
        let setuid = FakeProc::new(&[(10, "3999999998 3999999999 3999999999 3999999999")]);
        assert!(setuid.verify(NAMELESS, "3999999998").is_ok());
        assert!(setuid.verify(NAMELESS, "").is_ok(), "an unnamed real user may send no name");
        assert!(setuid.verify(NAMELESS, "root").is_err());
        // A root process that made the socket under another effective uid is root.
        assert!(FakeProc::new(&[(10, "0 3999999999 3999999999 3999999999")]).verify(NAMELESS, "anyone").is_ok());
    }

    #[test]
    fn ids_a_process_gains_after_writing_are_not_accepted() {
        // The client wrote "GIMME x root" and then exec'd a setuid-root program (su,
        // waiting for a password) that inherited the socket: effective and saved uids
        // are root's now, but the real uid, and the socket's owner, are still the
        // client's.
        let su = FakeProc::new(&[(10, "3999999999 0 0 0")]);
        let refusal = su.verify(NAMELESS, "root").unwrap_err();
        assert!(refusal.starts_with("user root is not the owner of this connection (uid 3999999999)"), "{refusal}");
        assert!(su.verify(NAMELESS, "3999999999").is_ok());
        // A socket handed to another user's process (root's, here) over a unix socket.
        let handed = FakeProc::new(&[(10, "0 0 0 0")]);
        assert!(handed.verify(NAMELESS, "root").is_err());
        assert!(handed.verify(NAMELESS, "anyone").is_err());
        // Holders that disagree on their real user: only the owner is accepted.
        let mixed = FakeProc::new(&[
            (10, "3999999998 3999999999 3999999999 3999999999"),
            (11, "3999999999 3999999999 3999999999 3999999999"),
        ]);
        assert!(mixed.verify(NAMELESS, "3999999998").is_err());
        assert!(mixed.verify(NAMELESS, "3999999999").is_ok());
    }

    #[test]
    fn unreadable_processes_are_no_answer() {
        // Not root: /proc of other users' processes cannot be read, so a holder could be
        // missed; only the owner is accepted, and the refusal says why.
        let root = FakeProc::new(&[]);
        std::fs::write(root.0.join("12"), "").unwrap(); // "12/fd" is not a directory
        let refusal = root.verify(NAMELESS, "someone").unwrap_err();
        assert!(refusal.contains("could not be checked"), "{refusal}");
    }
}
