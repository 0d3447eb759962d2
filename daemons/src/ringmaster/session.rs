//! One client connection of the daemon, served by its own thread: its requests, its
//! announced slots, and their clean-up when it closes.
//!
//! A thread per connection keeps a slow request (a ring lock held by someone else, a
//! REMOTE stream) from stopping anyone else; an idle connection costs a sleeping thread
//! with a small stack.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::acl::Acl;
use super::peer::Who;
use super::readers;
use super::sender::{self, End};
use super::shared::Shared;
use super::streams::{MAX_STREAMS_PER_CLIENT, StreamTicket};
use crate::log::printable;
use crate::portmgr::session::is_local;
use daqflow::portmgr::lines::{LineBuffer, MAX_LINE};
use daqflow::ring::{self, SlotCheck};
use daqflow::ringmaster::protocol::{
    self, BINARY_FOLLOWS, Claim, DATA_FORBIDDEN, INVALID_FORMAT, NO_SUCH_RING, NOT_A_RING, NOT_READABLE, OK,
    REGISTRATION_FORBIDDEN, REMOTE_FORBIDDEN, Request, RingUsage, Role, TOO_MANY_STREAMS,
};

/// A client that does not read its replies for this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Slots one connection may announce (a real client holds a handful).
const MAX_CLAIMS: usize = 4096;
/// After a connection closes, how long a claimed slot's process is given to finish
/// exiting: its socket closes before it is a zombie, so a first look can find it alive.
const EXIT_GRACE: Duration = Duration::from_secs(3);

/// What to do after a request.
enum Next<'a> {
    Continue,
    Close,
    /// The connection now carries the ring's data (counted against its client).
    /// Boxed: a consumer is large, and the other variants are passed around per line.
    Stream(Box<ring::Consumer>, String, StreamTicket<'a>),
}

pub struct Session<'a> {
    /// Shared with the daemon, which shuts it down to wake this thread on a stop.
    stream: Arc<TcpStream>,
    peer: SocketAddr,
    /// Learnt at accept (see `peer`).
    who: Who,
    shared: &'a Shared,
    claims: Vec<Claim>,
    out: Vec<u8>,
}

impl<'a> Session<'a> {
    pub fn new(stream: Arc<TcpStream>, peer: SocketAddr, who: Who, shared: &'a Shared) -> Session<'a> {
        Session { stream, peer, who, shared, claims: Vec::new(), out: Vec::new() }
    }

    fn ip(&self) -> IpAddr {
        self.peer.ip()
    }

    /// Every line this connection causes, within its client's share (client-supplied
    /// fields through `printable`).
    fn log(&self, message: std::fmt::Arguments<'_>) {
        self.shared.log_from(self.who, message);
    }

    /// Serves the connection to its end, then frees what its client left behind.
    pub fn run(mut self) {
        let _ = self.stream.set_write_timeout(Some(WRITE_TIMEOUT));
        // This host's clients keep their connection open while they live (the legacy ring
        // master frees a client's slots when it closes), so only other hosts' are idle.
        if !self.who.on_this_host() {
            let _ = self.stream.set_read_timeout(self.shared.idle_timeout);
        }
        let next = self.requests();
        if let Next::Stream(consumer, ring, ticket) = next {
            self.log(format_args!("sending ring {ring} to {} ({})", self.ip(), self.who));
            sender::prepare(&self.stream);
            let (end, bytes) = sender::stream(*consumer, &self.stream, &self.shared.stop, self.shared.stall_timeout);
            drop(ticket);
            let why = match end {
                End::PeerClosed => "the peer closed".to_string(),
                End::Stopped => "the daemon is stopping".to_string(),
                End::Stalled(idle) => format!("it took nothing for {} s; its slot is freed", idle.as_secs()),
                End::Failed(e) => printable(e.as_bytes()),
            };
            self.log(format_args!("stopped sending ring {ring} to {} after {bytes} bytes: {why}", self.ip()));
        }
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        self.release_claims();
    }

    fn requests(&mut self) -> Next<'a> {
        let mut input = LineBuffer::new(MAX_LINE);
        let mut chunk = [0u8; 4096];
        loop {
            while let Some(line) = input.next_line() {
                let next = match line {
                    Ok(line) => {
                        let line = line.to_vec();
                        self.request(&line)
                    }
                    Err(_) => {
                        self.log(format_args!("{} sent a line longer than {MAX_LINE} bytes; closing", self.ip()));
                        Next::Close
                    }
                };
                let flushed = self.flush();
                match next {
                    Next::Continue if flushed => {}
                    Next::Continue | Next::Close => return Next::Close,
                    stream @ Next::Stream(..) => return if flushed { stream } else { Next::Close },
                }
            }
            match (&*self.stream).read(&mut chunk) {
                Ok(0) => {
                    if input.pending() > 0 {
                        self.log(format_args!("{} closed in the middle of a request", self.ip()));
                    } else {
                        self.log(format_args!("Socket connection lost from {}", self.ip()));
                    }
                    return Next::Close;
                }
                Ok(n) => input.extend(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    let idle = self.shared.idle_timeout.unwrap_or_default().as_secs_f64();
                    self.log(format_args!("connection from {} closed: idle for {idle} s", self.ip()));
                    return Next::Close;
                }
                Err(e) => {
                    self.log(format_args!("connection from {} failed: {e}", self.ip()));
                    return Next::Close;
                }
            }
        }
    }

    /// Writes queued replies; false when the client is gone or does not read them.
    fn flush(&mut self) -> bool {
        if self.out.is_empty() {
            return true;
        }
        let result = (&*self.stream).write_all(&self.out);
        self.out.clear();
        match result {
            Ok(()) => true,
            Err(e) => {
                self.log(format_args!("cannot reply to {}: {e}", self.ip()));
                false
            }
        }
    }

    fn reply(&mut self, text: impl AsRef<[u8]>) {
        protocol::reply(text, &mut self.out);
    }

    fn request(&mut self, line: &[u8]) -> Next<'a> {
        let local = is_local(self.ip());
        match Request::parse(line) {
            Request::Empty => Next::Continue,
            Request::Invalid => {
                self.log(format_args!("Invalid request \"{}\" from {}; closing", printable(line), self.ip()));
                Next::Close
            }
            Request::Connect(claim) => {
                if !local {
                    self.log(format_args!("CONNECT from remote host {} refused", self.ip()));
                    self.reply(REMOTE_FORBIDDEN);
                    return Next::Close;
                }
                let Some(claim) = claim else {
                    self.log(format_args!("\"{}\" from {} is not a valid CONNECT", printable(line), self.ip()));
                    self.reply(INVALID_FORMAT);
                    return Next::Close;
                };
                if self.claims.len() >= MAX_CLAIMS {
                    self.log(format_args!("{} announced more than {MAX_CLAIMS} slots; closing", self.ip()));
                    self.reply(INVALID_FORMAT);
                    return Next::Close;
                }
                self.log(format_args!(
                    "CONNECT: ring {} {} pid {} ({})",
                    printable(claim.ring.as_bytes()),
                    claim.role.word(),
                    claim.pid,
                    printable(claim.comment.as_bytes())
                ));
                self.claims.push(claim);
                self.reply(OK);
                Next::Continue
            }
            Request::Disconnect(claim) => {
                // The legacy daemon closes without a word on both of these.
                let Some(claim) = claim.filter(|_| local) else {
                    self.log(format_args!("\"{}\" from {} refused; closing", printable(line), self.ip()));
                    return Next::Close;
                };
                let known =
                    self.claims.iter().position(|c| c.ring == claim.ring && c.role == claim.role && c.pid == claim.pid);
                if let Some(i) = known {
                    self.claims.remove(i);
                }
                self.log(format_args!(
                    "DISCONNECT: ring {} {} pid {}{}",
                    printable(claim.ring.as_bytes()),
                    claim.role.word(),
                    claim.pid,
                    if known.is_some() { "" } else { " (not announced on this connection)" }
                ));
                // Answered OK even when unknown: NSCLDAQ's C++ client aborts otherwise.
                self.reply(OK);
                Next::Continue
            }
            Request::Register(ring) | Request::Unregister(ring) if !local => {
                let what = printable(ring.unwrap_or_default().as_bytes());
                self.log(format_args!("(UN)REGISTER {what} from remote host {} refused", self.ip()));
                self.reply(REGISTRATION_FORBIDDEN);
                Next::Close
            }
            Request::Register(None) | Request::Unregister(None) => {
                self.log(format_args!("\"{}\" from {} is not a valid message", printable(line), self.ip()));
                self.reply(INVALID_FORMAT);
                Next::Close
            }
            Request::Register(Some(ring)) => {
                match ring::validate_name(&ring).and_then(|()| ring::peek_usage(&ring)) {
                    Ok(_) => {
                        let again = if self.shared.known.register(&ring) { "" } else { " (known already)" };
                        self.log(format_args!("REGISTER: ring {}{again}", printable(ring.as_bytes())));
                        self.reply(OK);
                    }
                    Err(e) => {
                        self.log(format_args!(
                            "REGISTER {} refused: {}",
                            printable(ring.as_bytes()),
                            printable(e.to_string().as_bytes())
                        ));
                        // Not ours to put line breaks in the client's reply either.
                        self.reply(format!("ERROR {}{NOT_A_RING}", printable(ring.as_bytes())));
                    }
                }
                Next::Continue
            }
            Request::Unregister(Some(ring)) => {
                // Forgotten, and nothing killed: the legacy kill -9 of every pid in the
                // ring's slots is exactly what must not happen.
                let known = self.shared.known.unregister(&ring);
                self.log(format_args!(
                    "UNREGISTER: ring {}{}",
                    printable(ring.as_bytes()),
                    if known { "" } else { " (not known)" }
                ));
                self.reply(OK);
                Next::Continue
            }
            Request::Debug => {
                // NSCLDAQ's daemon switched its debug log and answered nothing; ours has no
                // debug log, and a client waits for no reply.
                self.log(format_args!("\"{}\" from {}: ignored", printable(line), self.ip()));
                Next::Continue
            }
            Request::List { exact: false } => {
                self.log(format_args!("\"{}\" from {} is not a valid LIST; closing", printable(line), self.ip()));
                Next::Close
            }
            Request::List { exact: true } => {
                // No listing at all (out of descriptors, say) is not an empty one: a
                // C++ client would take it for "no rings". Close; it may ask again.
                let Some(rings) = list_rings(self.shared) else {
                    return Next::Close;
                };
                self.reply(OK);
                let line = protocol::list_line(&rings);
                self.reply(line);
                Next::Continue
            }
            Request::Remote(None) => {
                self.log(format_args!("\"{}\" from {} is not a valid REMOTE", printable(line), self.ip()));
                self.reply(INVALID_FORMAT);
                Next::Close
            }
            Request::Remote(Some(ring)) => self.remote(ring),
        }
    }

    fn remote(&mut self, ring: String) -> Next<'a> {
        let ip = self.ip();
        let shown = printable(ring.as_bytes());
        if !self.shared.access.allows(ip) {
            self.log(format_args!("REMOTE {shown} from {ip} refused: not allowed by --allow-remote"));
            self.reply(format!("ERROR {ip} {DATA_FORBIDDEN}"));
            return Next::Close;
        }
        if let Err(e) = ring::validate_name(&ring) {
            self.log(format_args!("REMOTE {shown} from {ip} refused: {}", printable(e.to_string().as_bytes())));
            self.reply(format!("ERROR {shown}{NO_SUCH_RING}"));
            return Next::Continue;
        }
        // Looked at before taking a slot, so a client refused takes none even briefly;
        // decided on the object attached to, below.
        let path = format!("/dev/shm/{ring}");
        let acl = || Acl::of_path(std::path::Path::new(&path));
        if std::fs::symlink_metadata(&path).is_ok_and(|meta| !self.may_read(&meta, &acl())) {
            return self.refuse_unreadable(&ring);
        }
        let Some(ticket) = self.shared.streams.ticket(self.who.key(), &ring) else {
            self.log(format_args!(
                "REMOTE {shown} from {ip} ({}) refused: it already holds {MAX_STREAMS_PER_CLIENT} streams of that ring",
                self.who
            ));
            self.reply(format!("ERROR {ip}{TOO_MANY_STREAMS}{ring} {MAX_STREAMS_PER_CLIENT} times"));
            return Next::Continue;
        };
        match ring::Consumer::attach(&ring) {
            Ok(consumer) => {
                let acl = Acl::of_file(consumer.file());
                let readable = consumer.metadata().is_ok_and(|meta| self.may_read(&meta, &acl));
                if !readable {
                    drop(consumer);
                    return self.refuse_unreadable(&ring);
                }
                self.reply(BINARY_FOLLOWS);
                Next::Stream(Box::new(consumer), ring, ticket)
            }
            Err(e) => {
                self.log(format_args!("REMOTE {shown} from {ip} refused: {}", printable(e.to_string().as_bytes())));
                if matches!(e.errno(), libc::ENOENT | libc::EINVAL | libc::EBADMSG) {
                    self.reply(format!("ERROR {ring}{NO_SUCH_RING}"));
                } else {
                    self.reply(format!("ERROR cannot read ring {ring}: {}", e.message().replace(['\r', '\n'], " ")));
                }
                Next::Continue
            }
        }
    }

    fn may_read(&self, meta: &std::fs::Metadata, acl: &Acl) -> bool {
        readers::may_read(self.who, meta, acl, self.shared.remote_rings)
    }

    /// A ring the client could not read itself. The connection stays (it may ask for
    /// another ring).
    fn refuse_unreadable(&mut self, ring: &str) -> Next<'a> {
        let whom = if self.who.on_this_host() { self.who.to_string() } else { "other hosts".to_string() };
        self.log(format_args!(
            "REMOTE {} from {} refused: not readable by {whom}",
            printable(ring.as_bytes()),
            self.ip()
        ));
        self.reply(format!("ERROR ring {ring}{NOT_READABLE}{whom}"));
        Next::Continue
    }

    /// Frees the announced slots whose process is gone and which that process still
    /// holds. A process still running keeps its slot: only it may give it back.
    fn release_claims(&mut self) {
        let started = Instant::now();
        let mut pause = Duration::from_millis(10);
        let mut pending = std::mem::take(&mut self.claims);
        while !pending.is_empty() {
            pending.retain(|claim| {
                let slot = match claim.role {
                    Role::Producer => None,
                    Role::Consumer(slot) => Some(slot),
                };
                match ring::release_if_gone(&claim.ring, slot, claim.pid) {
                    Ok(SlotCheck::Freed) => {
                        self.log(format_args!(
                            "released {} of ring {} left by exited pid {}",
                            claim.role.word(),
                            printable(claim.ring.as_bytes()),
                            claim.pid
                        ));
                        false
                    }
                    Ok(SlotCheck::NotHeld) => {
                        self.log(format_args!(
                            "{} of ring {} is no longer pid {}'s: left alone",
                            claim.role.word(),
                            printable(claim.ring.as_bytes()),
                            claim.pid
                        ));
                        false
                    }
                    Ok(SlotCheck::StillRunning) => true,
                    Err(e) => {
                        self.log(format_args!(
                            "cannot release {} of ring {}: {}",
                            claim.role.word(),
                            printable(claim.ring.as_bytes()),
                            printable(e.to_string().as_bytes())
                        ));
                        false
                    }
                }
            });
            if pending.is_empty() {
                break;
            }
            if started.elapsed() >= EXIT_GRACE || self.shared.stop.load(Ordering::Relaxed) {
                for claim in &pending {
                    self.log(format_args!(
                        "pid {} still runs after closing its connection: it keeps {} of ring {}",
                        claim.pid,
                        claim.role.word(),
                        printable(claim.ring.as_bytes())
                    ));
                }
                break;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }
}

/// Runs `read` again while the process is out of descriptors, for up to two seconds:
/// the accept loop resumes as soon as one descriptor frees, so a request may arrive
/// before the connections that were closing have given theirs back. Failing at once
/// would drop the client or leave rings out of a LIST.
pub fn short_of_descriptors_retry<T>(read: impl Fn() -> daqflow::Result<T>) -> daqflow::Result<T> {
    const PATIENCE: Duration = Duration::from_secs(2);
    let start = Instant::now();
    loop {
        match read() {
            Err(e) if matches!(e.errno(), libc::EMFILE | libc::ENFILE) && start.elapsed() < PATIENCE => {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// Every known ring with its usage, sorted by name (rings that vanish or fail to read
/// in between are left out and logged). Read-only and lock-free: a ring whose lock is
/// held by a stuck client is still listed, at once. `None` when short of descriptors:
/// a listing with rings missing is not one, since a C++ client that does not find its
/// ring in it adopts the ring as new.
fn list_rings(shared: &Shared) -> Option<Vec<(String, RingUsage)>> {
    let mut rings = Vec::new();
    for name in shared.known.current() {
        match short_of_descriptors_retry(|| ring::peek_usage(&name)) {
            Ok(usage) => rings.push((name, RingUsage::from(&usage))),
            Err(e) if matches!(e.errno(), libc::EMFILE | libc::ENFILE) => {
                shared.log(format_args!("cannot list rings: {e}; closing the connection"));
                return None;
            }
            Err(e) if e.errno() == libc::ENOENT => {}
            Err(e) => shared.log(format_args!(
                "Failed while retrieving usage information for ring {}: {}",
                printable(name.as_bytes()),
                printable(e.to_string().as_bytes())
            )),
        }
    }
    Some(rings)
}
