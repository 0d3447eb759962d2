//! One client connection of the daemon and the answers to its requests.
//!
//! The event loop (`server`) owns the sockets and decides when to write; this module reads
//! a connection's bytes, answers each request into the connection's output buffer, and
//! keeps the pool, the log and the LIST cache in step.

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;
use std::time::Instant;

use mio::net::TcpStream;

use super::listing;
use super::outbox::{Budget, Outbox, Snapshot};
use super::peercred::{Owner, SocketId, Verdict};
use super::pool::Pool;
use super::probe::Probe;
use super::ratelimit::RateLimit;
use super::scanner::{Busy, Done, Scanner};
use crate::log::{Level, Log, printable};
use daqflow::portmgr::lines::{LineBuffer, MAX_LINE};
use daqflow::portmgr::protocol::{self, CONTROL_CHARACTER, MAX_NAME, NO_FREE_PORTS, ONLY_LOCAL, Request};

/// Replies a client has not read yet, beyond which its requests wait: a client that
/// pipelines LISTs without reading cannot make the daemon buffer without bound.
pub const OUTPUT_HIGH_WATER: usize = 64 * 1024;
const READ_CHUNK: usize = 16 * 1024;

/// How much one client may hold (docs/portmanager.md, "Limits").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Ports one connection may hold.
    pub per_connection: usize,
    /// Ports held by one user, over all connections: by the uid the user check accepted
    /// (a user's login name and its uid in decimal are one user), by name without it.
    pub per_user: usize,
}

impl Limits {
    pub const DEFAULT: Limits = Limits { per_connection: 64, per_user: 256 };
}

/// Lines about connections (accepted, illegal request) logged at once, then per second.
const CONNECTION_LOG_BURST: u32 = 200;
const CONNECTION_LOG_RATE: u32 = 20;

pub use super::Key;

#[derive(Debug)]
pub struct Conn {
    pub stream: TcpStream,
    peer: SocketAddr,
    input: LineBuffer,
    output: Outbox,
    /// Held ports in allocation order (released in that order, as the legacy server did,
    /// so the last one allocated is the next one handed out), with whose limit each counts.
    ports: Vec<(u16, Holder)>,
    /// The client's socket as the kernel described it when the connection was accepted
    /// (`None` without user verification), or why it could not be: looked up then, while
    /// the socket is certainly still the client's (see `peercred::OwnerLookup`).
    socket: Option<Result<SocketId, String>>,
    /// Who owns the client's socket, with names looked up at its first GIMME.
    owner: Option<Owner>,
    /// A GIMME (application, user) waiting for the search of the socket's holders; the
    /// connection's later requests wait behind it.
    waiting: Option<(Vec<u8>, Vec<u8>)>,
    eof: bool,
    /// The peer has shut down its sending side or hung up (epoll's RDHUP/HUP), seen
    /// even while its requests wait unread.
    pub peer_closed: bool,
    /// The connection has ended or been refused: its ports are released, it reads no
    /// more, and it closes once its output is written.
    pub closing: bool,
    /// Requests are waiting for the client to read its replies.
    pub throttled: bool,
    /// Queued for the write phase of the current loop turn.
    pub queued: bool,
    /// When the client stopped taking its replies (a loop-turn count, for dropping the
    /// longest-stalled first when the daemon holds too much).
    pub stalled_since: Option<u64>,
}

impl Conn {
    pub fn new(stream: TcpStream, peer: SocketAddr, socket: Option<Result<SocketId, String>>, budget: &Budget) -> Conn {
        Conn {
            stream,
            peer,
            input: LineBuffer::new(MAX_LINE),
            output: Outbox::new(budget),
            ports: Vec::new(),
            socket,
            owner: None,
            waiting: None,
            eof: false,
            peer_closed: false,
            closing: false,
            throttled: false,
            queued: false,
            stalled_since: None,
        }
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The uid owning the client's socket, as learnt at accept (local clients only).
    pub fn socket_owner(&self) -> Option<u32> {
        match &self.socket {
            Some(Ok(id)) => Some(id.uid),
            _ => None,
        }
    }

    fn unsent(&self) -> usize {
        self.output.unsent()
    }

    /// Writes what the socket takes. `Ok(true)` when everything queued is written.
    pub fn flush(&mut self) -> io::Result<bool> {
        self.output.flush(&mut self.stream)
    }

    /// The connection is gone (reset, broken pipe): nothing more can be sent.
    pub fn discard_output(&mut self) {
        self.output.discard();
    }
}

/// "Local" exactly as the protocol defines it.
pub fn is_local(ip: IpAddr) -> bool {
    const DEBIAN_HOSTNAME: Ipv4Addr = Ipv4Addr::new(127, 0, 1, 1);
    match ip {
        IpAddr::V4(v4) => v4 == Ipv4Addr::LOCALHOST || v4 == DEBIAN_HOSTNAME,
        IpAddr::V6(v6) => v6 == Ipv6Addr::LOCALHOST,
    }
}

/// Whose per-user limit a port counts against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Holder {
    /// The uid the user check accepted.
    Uid(u32),
    /// The name sent, when users are not checked (`-no-user-check`).
    Name(Vec<u8>),
}

/// Why a GIMME is not answered yet.
enum Unverified {
    Refused(String),
    /// Its search was queued: the GIMME is answered when it is done.
    Waiting,
}

/// What the requests of all connections share.
#[derive(Debug)]
pub struct Core {
    pub pool: Pool<Key>,
    pub log: Log,
    pub limits: Limits,
    /// Every byte held in unsent replies.
    pub budget: Budget,
    /// Ports held per user.
    per_user: HashMap<Holder, usize>,
    /// Searches for the processes holding a socket (`None` without user verification).
    pub scanner: Option<Scanner>,
    /// Whether the user a GIMME names must be the client's (off: `-no-user-check`).
    pub verify_users: bool,
    /// The allocations changed since ports.txt was last written.
    pub dirty: bool,
    /// The last LIST reply, valid until the allocations change, shared by every client
    /// that asks before then.
    list_cache: Option<Rc<Snapshot>>,
    /// Kept between allocations: it remembers the host's listening ports for a moment.
    probe: Probe,
    /// Lines any host can cause by connecting.
    connection_lines: RateLimit,
}

impl Core {
    pub fn new(pool: Pool<Key>, log: Log, limits: Limits) -> Core {
        Core {
            pool,
            log,
            limits,
            budget: Budget::default(),
            per_user: HashMap::new(),
            scanner: None,
            verify_users: true,
            dirty: false,
            list_cache: None,
            probe: Probe::default(),
            connection_lines: RateLimit::new(CONNECTION_LOG_BURST, CONNECTION_LOG_RATE),
        }
    }

    /// Logs a line about a connection (accepted, refused, illegal request), unless such
    /// lines come too fast: anyone on the network can cause them.
    pub fn log_connection(&mut self, level: Level, message: std::fmt::Arguments<'_>) {
        if let Some(missed) = self.connection_lines.admit(Instant::now()) {
            if missed > 0 {
                self.log.entry(Level::Notice, format_args!("{missed} lines about connections not logged (too many)"));
            }
            self.log.entry(level, message);
        }
    }

    /// Reads and answers everything `conn` has sent, until its socket has no more, the
    /// client must first read its replies, or the connection ends.
    pub fn service(&mut self, key: Key, conn: &mut Conn) {
        let mut chunk = [0u8; READ_CHUNK];
        conn.throttled = false;
        while !conn.closing && conn.waiting.is_none() {
            while !conn.closing && conn.waiting.is_none() && conn.unsent() < OUTPUT_HIGH_WATER {
                match conn.input.next_line() {
                    None => break,
                    Some(Ok(line)) => {
                        let line = line.to_vec();
                        self.request(key, conn, &line);
                    }
                    Some(Err(_)) => {
                        let reason = format!("Invalid request: longer than {MAX_LINE} bytes");
                        let ip = conn.peer.ip();
                        self.log_connection(Level::Alert, format_args!("{ip} issued an illegal request: {reason}"));
                        conn.output.push(|out| protocol::fail_reply(reason.as_bytes(), out));
                        self.end(conn);
                    }
                }
            }
            if conn.closing || conn.waiting.is_some() {
                break;
            }
            if conn.unsent() >= OUTPUT_HIGH_WATER {
                if conn.peer_closed {
                    // The client stopped reading and then ended its side: its EOF sits
                    // behind requests that would wait for it to read, perhaps forever.
                    // A half-close ends a connection, so its ports go now, as they would
                    // have if it had read its replies; what is queued is still written.
                    self.log.entry(
                        Level::Notice,
                        format_args!("{} closed its side with replies unread; releasing its ports", conn.peer.ip()),
                    );
                    self.end(conn);
                    break;
                }
                conn.throttled = true;
                break;
            }
            if conn.eof {
                // Like Tcl's gets, an unterminated last line still counts.
                if let Some(last) = conn.input.take_partial() {
                    self.request(key, conn, &last);
                    if conn.waiting.is_some() {
                        break; // answered, and the connection ended, once its search is done
                    }
                }
                self.end(conn);
                break;
            }
            match conn.stream.read(&mut chunk) {
                Ok(0) => conn.eof = true,
                Ok(n) => conn.input.extend(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // Reset: the client is gone and will read nothing.
                    conn.discard_output();
                    self.end(conn);
                }
            }
        }
    }

    /// Releases the connection's ports (it has ended or been refused).
    pub fn end(&mut self, conn: &mut Conn) {
        conn.closing = true;
        conn.waiting = None;
        for (port, holder) in conn.ports.drain(..) {
            if let Some(held) = self.pool.release(port) {
                if let Some(count) = self.per_user.get_mut(&holder) {
                    *count -= 1;
                    if *count == 0 {
                        self.per_user.remove(&holder);
                    }
                }
                self.log.info(format_args!(
                    "Port {port} was released by {} run by {}",
                    printable(&held.application),
                    printable(&held.user)
                ));
                self.dirty = true;
                self.list_cache = None;
            }
        }
    }

    fn request(&mut self, key: Key, conn: &mut Conn, line: &[u8]) {
        match Request::parse(line) {
            Request::Gimme { application, user } => self.gimme(key, conn, &application, &user),
            Request::List => {
                let budget = &self.budget;
                let pool = &self.pool;
                let reply = self.list_cache.get_or_insert_with(|| {
                    let mut reply = Vec::new();
                    listing::list_reply(
                        pool.allocations().map(|a| (a.port, a.application.as_slice(), a.user.as_slice())),
                        &mut reply,
                    );
                    Snapshot::new(reply, budget)
                });
                conn.output.push_shared(Rc::clone(reply));
            }
            Request::Invalid => {
                let ip = conn.peer.ip();
                self.log_connection(Level::Alert, format_args!("{ip} issued an illegal request: {}", printable(line)));
                conn.output.push(|out| protocol::invalid_reply(line, out));
                self.end(conn);
            }
        }
    }

    fn gimme(&mut self, key: Key, conn: &mut Conn, application: &[u8], user: &[u8]) {
        if !is_local(conn.peer.ip()) {
            // No reverse DNS here: it would stall every client behind a slow resolver.
            let ip = conn.peer.ip();
            let reason = format!("{ip} ({ip}) : {ONLY_LOCAL}");
            self.refuse(conn, application, user, &reason);
            self.end(conn);
            return;
        }
        // Refused like an exhausted pool (the connection and its ports stay): a client
        // may simply have sent a bad name, and the reason says which one.
        for (what, name) in [("application name", application), ("user name", user)] {
            if protocol::has_control(name) {
                self.refuse(conn, application, user, &format!("the {what} {CONTROL_CHARACTER}"));
                return;
            }
        }
        for (what, name) in [("application name", application), ("user name", user)] {
            if name.len() > MAX_NAME {
                self.refuse(conn, application, user, &format!("the {what} is longer than {MAX_NAME} bytes"));
                return;
            }
        }
        let holder = match self.verify_user(key, conn, user) {
            Ok(holder) => holder,
            Err(Unverified::Refused(reason)) => {
                self.refuse(conn, application, user, &reason);
                return;
            }
            Err(Unverified::Waiting) => {
                conn.waiting = Some((application.to_vec(), user.to_vec()));
                return;
            }
        };
        if conn.ports.len() >= self.limits.per_connection {
            let reason = format!("this connection already holds {} ports, the most one may", conn.ports.len());
            self.refuse(conn, application, user, &reason);
            return;
        }
        let held = self.per_user.get(&holder).copied().unwrap_or(0);
        if held >= self.limits.per_user {
            let reason = format!("user {} already holds {held} ports, the most one may", printable(user));
            self.refuse(conn, application, user, &reason);
            return;
        }
        let probe = &mut self.probe;
        match self.pool.allocate(application, user, key, |port| !probe.in_use(port)) {
            Some(port) => {
                *self.per_user.entry(holder.clone()).or_default() += 1;
                conn.ports.push((port, holder));
                self.dirty = true;
                self.list_cache = None;
                self.log.info(format_args!(
                    "Port {port} was allocated to {} run by {}",
                    printable(application),
                    printable(user)
                ));
                conn.output.push(|out| protocol::ok_reply(port, out));
            }
            None => self.refuse(conn, application, user, NO_FREE_PORTS),
        }
    }

    /// Any host can be refused (a GIMME from another host is), as fast as it connects: the
    /// line is under the connection lines' rate limit, and quotes only the start of each
    /// name (escaping makes a byte up to four).
    fn refuse(&mut self, conn: &mut Conn, application: &[u8], user: &[u8], reason: &str) {
        self.log_connection(
            Level::Alert,
            format_args!(
                "Unable to allocate a port for {} run by {} because: {}",
                quoted_start(application, 64),
                quoted_start(user, 64),
                // The daemon's own words, quoting names it already bounded.
                quoted_start(reason.as_bytes(), 1024)
            ),
        );
        conn.output.push(|out| protocol::fail_reply(reason.as_bytes(), out));
    }

    /// The user named in a GIMME must be the client's (see `Owner::verify`): whose limit
    /// its port counts against, or why it is not answered now.
    fn verify_user(&mut self, key: Key, conn: &mut Conn, user: &[u8]) -> Result<Holder, Unverified> {
        if !self.verify_users {
            // Any name goes, but its ports count against the socket's owner where the
            // kernel said who that is: else one user holds the whole pool under many names.
            return Ok(match &conn.socket {
                Some(Ok(socket)) => Holder::Uid(socket.uid),
                _ => Holder::Name(user.to_vec()),
            });
        }
        let Some(socket) = &conn.socket else {
            return Ok(Holder::Name(user.to_vec()));
        };
        let owner = match &conn.owner {
            Some(owner) => owner,
            None => {
                let socket = socket.as_ref().map_err(|e| {
                    Unverified::Refused(format!(
                        "cannot verify user {}: the owner of this connection is unknown ({e})",
                        printable(user)
                    ))
                })?;
                conn.owner.insert(Owner::lookup(*socket))
            }
        };
        match owner.verify(user) {
            Verdict::Accepted(uid) => Ok(Holder::Uid(uid)),
            Verdict::Refused(reason) => Err(Unverified::Refused(reason)),
            Verdict::Unchecked(search) => {
                let Some(scanner) = &self.scanner else {
                    return Err(Unverified::Refused("cannot search for the processes holding its socket".into()));
                };
                match scanner.submit(key, search) {
                    Ok(()) => Err(Unverified::Waiting),
                    Err(Busy) => Err(Unverified::Refused(format!(
                        "user {} is not the owner of this connection, and too many checks of processes are \
                         waiting; try again",
                        printable(user)
                    ))),
                }
            }
        }
    }

    /// A search for the processes holding a connection's socket is done: the GIMME that
    /// waited for it is answered, and the requests behind it read on (`service`).
    pub fn searched(&mut self, key: Key, conn: &mut Conn, done: Done) {
        if let Some(owner) = conn.owner.as_mut() {
            owner.learn(done.real);
        }
        if let Some((application, user)) = conn.waiting.take()
            && !conn.closing
        {
            self.gimme(key, conn, &application, &user);
        }
    }
}

/// A client-supplied field for a log line: escaped, and cut to its first `shown` bytes.
fn quoted_start(field: &[u8], shown: usize) -> String {
    if field.len() <= shown {
        printable(field)
    } else {
        format!("{}... ({} bytes)", printable(&field[..shown]), field.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_addresses() {
        for local in ["127.0.0.1", "127.0.1.1", "::1"] {
            assert!(is_local(local.parse().unwrap()), "{local}");
        }
        for remote in ["127.0.0.2", "10.0.0.1", "::ffff:127.0.0.1", "0.0.0.0", "::"] {
            assert!(!is_local(remote.parse().unwrap()), "{remote}");
        }
    }

    #[test]
    fn log_lines_stay_one_line() {
        assert_eq!(printable(b"a\nb\x00c\xff"), "a\\nb\\u{0}c\\xff");
    }
}
