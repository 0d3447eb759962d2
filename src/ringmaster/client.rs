//! The blocking RingMaster client: what the library uses to tell a ring master (ours or
//! NSCLDAQ's) about its clients, and what a feeder uses to ask for a remote ring's data.
//!
//! Plain blocking sockets, no runtime. Every exchange has a deadline: a daemon that dies,
//! stalls or answers garbage costs an error, never a hang or a spin. After an exchange
//! fails half way the connection is shut down and every later call fails with `EPIPE`,
//! so a late reply can never be taken for the answer to the next request.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::protocol::{
    self, BINARY_FOLLOWS, DATA_FORBIDDEN, INVALID_FORMAT, NO_SUCH_RING, NOT_A_RING, NOT_READABLE,
    REGISTRATION_FORBIDDEN, REMOTE_FORBIDDEN, RingUsage, Role, SERVICE, TOO_MANY_STREAMS,
};
use crate::error::{Error, Result};
use crate::portmgr::lines::LineBuffer;
use crate::ring::validate_name;
use crate::trust::Trust;

/// The port manager lists a service the moment it hands out the port, a little before
/// the server listens on it: a ring master that is starting refuses for a few
/// milliseconds, so refusals from a listed one are retried for this long.
pub const STARTING: Duration = Duration::from_millis(500);
const REFUSED_PAUSE: Duration = Duration::from_millis(10);

/// Longest reply line accepted: a LIST line, about 80 bytes per ring and 20 per consumer,
/// so hundreds of rings with a hundred consumers each fit. What a line this long costs a
/// client to parse is about 16 times its size (tests/ringmaster_hostile.rs).
pub const MAX_REPLY_LINE: usize = 4 * 1024 * 1024;
/// Longest reply to REMOTE (read a byte at a time so no ring data is swallowed).
const MAX_REMOTE_REPLY: usize = 4096;

#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    input: LineBuffer,
    server: SocketAddr,
    timeout: Duration,
    /// Why the connection can no longer be used, once an exchange failed half way.
    broken: Option<String>,
    /// The reply line of the last exchange when it was not the one expected.
    refusal: Option<String>,
}

/// Time left before `deadline`, or a timeout error.
fn left(deadline: Instant, context: &dyn Fn() -> String) -> Result<Duration> {
    match deadline.checked_duration_since(Instant::now()) {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err(Error::new(libc::ETIMEDOUT, format!("{}: no answer in time", context()))),
    }
}

/// The port the ring master on `host` listens on: the first `RingMaster` entry in the
/// LIST of the port manager on `host` (at `portmgr_port`, default as the port manager
/// client finds it) run by a user this process trusts (see [`crate::trust`]). None:
/// `ECONNREFUSED`, as NSCLDAQ's client says; only untrusted ones: `EPERM`, saying whose.
/// `timeout` bounds the whole search, resolving `host` included.
pub fn find_port(host: &str, portmgr_port: Option<u16>, timeout: Duration) -> Result<u16> {
    lookup(host, portmgr_port, timeout)?.port(host)
}

/// What the port manager of a host lists as its ring master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listed {
    /// The port of the first one run by a trusted user.
    Trusted(u16),
    /// No `RingMaster` at all.
    None,
    /// Only ones run by users this process does not trust: "alice (port 30005), ...".
    Untrusted(String),
}

impl Listed {
    /// The trusted port, or the error that says why there is none.
    pub fn port(self, host: &str) -> Result<u16> {
        match self {
            Listed::Trusted(port) => Ok(port),
            Listed::None => Err(Error::new(
                libc::ECONNREFUSED,
                format!("no {SERVICE} is registered with the port manager on {host}"),
            )),
            Listed::Untrusted(whose) => Err(Error::new(
                libc::EPERM,
                format!(
                    "the port manager on {host} lists a {SERVICE} run only by {whose}, which this process does \
                     not trust (it trusts {}); {}",
                    Trust::load().describe(),
                    crate::trust::how_to_configure()
                ),
            )),
        }
    }
}

/// Which `RingMaster` the port manager on `host` lists, as [`find_port`] without the error.
pub fn lookup(host: &str, portmgr_port: Option<u16>, timeout: Duration) -> Result<Listed> {
    let deadline = Instant::now() + timeout;
    let addresses = resolve_within(host, deadline)?;
    lookup_at(host, &addresses, portmgr_port, deadline)
}

fn lookup_at(host: &str, addresses: &[IpAddr], portmgr_port: Option<u16>, deadline: Instant) -> Result<Listed> {
    let context = || format!("asking the port manager on {host} for the {SERVICE}");
    let mut last = Error::new(libc::EHOSTUNREACH, format!("{}: {host} has no address", context()));
    for ip in addresses {
        // An address, so the port manager client resolves nothing.
        let attempt = crate::portmgr::Client::connect_timeout(
            Some(&ip.to_string()),
            portmgr_port,
            Some(left(deadline, &context)?),
        );
        let mut portmgr = match attempt {
            Ok(portmgr) => portmgr,
            // Someone untrusted on the port here: said as such, not hidden behind the next address's failure.
            Err(e) if e.errno() == libc::EPERM => return Err(e),
            Err(e) => {
                last = e;
                continue;
            }
        };
        portmgr.set_timeout(Some(left(deadline, &context)?));
        let listing = portmgr.list()?;
        // LIST sorts by user: anyone can register the service, and a name sorting before
        // root's would be first. Only the trusted count.
        let trust = Trust::load();
        let masters: Vec<_> = listing.iter().filter(|a| a.application == SERVICE).collect();
        if let Some(found) = masters.iter().find(|a| trust.listed_user(&a.user, ip.is_loopback())) {
            return Ok(Listed::Trusted(found.port));
        }
        if masters.is_empty() {
            return Ok(Listed::None);
        }
        let whose: Vec<String> = masters.iter().take(8).map(|a| format!("{:?} (port {})", a.user, a.port)).collect();
        return Ok(Listed::Untrusted(whose.join(", ")));
    }
    Err(last)
}

/// `host`'s addresses, IPv4 first (NSCLDAQ's client only ever uses IPv4, as a legacy
/// daemon expects), resolved before `deadline` (see `crate::hosts::bounded`).
fn resolve_within(host: &str, deadline: Instant) -> Result<Vec<IpAddr>> {
    let trimmed = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if let Ok(ip) = trimmed.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    // What every attach asks for when it looks for the local ring master: no resolver.
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(vec![IpAddr::from([127, 0, 0, 1]), IpAddr::from(std::net::Ipv6Addr::LOCALHOST)]);
    }
    let context = || format!("resolving {host}");
    let wait = left(deadline, &context)?;
    let name = host.to_string();
    let mut addresses = crate::hosts::bounded(&context(), wait, move || {
        (name.as_str(), 0)
            .to_socket_addrs()
            .map(|a| a.map(|a| a.ip()).collect::<Vec<_>>())
            .map_err(|e| Error::new(libc::EHOSTUNREACH, format!("cannot resolve {name}: {e}")))
    })?;
    addresses.dedup();
    addresses.sort_by_key(|a| a.is_ipv6());
    Ok(addresses)
}

/// Maps an `ERROR ...` (or FRIB's `FAIL ...`) reply to an errno.
fn refusal(line: &str) -> i32 {
    if line.starts_with(REMOTE_FORBIDDEN) || line.starts_with(REGISTRATION_FORBIDDEN) || line.contains(DATA_FORBIDDEN) {
        libc::EPERM
    } else if line.ends_with(NO_SUCH_RING) || line.ends_with(NOT_A_RING) {
        libc::ENOENT
    } else if line == INVALID_FORMAT {
        libc::EINVAL
    } else if line.contains(TOO_MANY_STREAMS) {
        libc::EBUSY
    } else if line.contains(NOT_READABLE) {
        libc::EACCES
    } else {
        libc::EIO
    }
}

impl Client {
    /// Finds the ring master of `host` through its port manager and connects to it.
    /// `timeout` bounds all of it (resolving `host`, the port manager connection and
    /// LIST, the ring master connection), and later each exchange.
    pub fn locate(host: &str, portmgr_port: Option<u16>, timeout: Duration) -> Result<Client> {
        let deadline = Instant::now() + timeout;
        let addresses = resolve_within(host, deadline)?;
        let port = lookup_at(host, &addresses, portmgr_port, deadline)?.port(host)?;
        let addresses: Vec<SocketAddr> = addresses.into_iter().map(|ip| SocketAddr::new(ip, port)).collect();
        Client::open_listed(&addresses, deadline, timeout, &|| {
            format!("connecting to the {SERVICE} of {host} (port {port})")
        })
    }

    /// Connects to a ring master at a known address; `timeout` bounds the connection and
    /// each later exchange.
    pub fn connect_addr(addr: SocketAddr, timeout: Duration) -> Result<Client> {
        Client::open(addr, timeout, timeout)
    }

    /// As `connect_addr`, for a ring master the port manager lists at `addr`, which may
    /// be starting (see `STARTING`).
    pub fn connect_listed(addr: SocketAddr, timeout: Duration) -> Result<Client> {
        Client::open_listed(&[addr], Instant::now() + timeout, timeout, &|| {
            format!("connecting to the {SERVICE} at {addr}")
        })
    }

    /// Tries each address in turn; when all refuse, tries them all again until
    /// `STARTING` has passed (or the deadline).
    fn open_listed(
        addresses: &[SocketAddr],
        deadline: Instant,
        timeout: Duration,
        context: &dyn Fn() -> String,
    ) -> Result<Client> {
        let started = Instant::now();
        loop {
            let mut last = None;
            let mut all_refused = true;
            for &addr in addresses {
                match Client::open(addr, left(deadline, context)?, timeout) {
                    Ok(client) => return Ok(client),
                    Err(e) if e.errno() == libc::EPERM => return Err(e),
                    Err(e) => {
                        all_refused &= e.errno() == libc::ECONNREFUSED;
                        last = Some(e);
                    }
                }
            }
            let Some(last) = last else {
                return Err(Error::new(libc::EHOSTUNREACH, format!("{}: no address", context())));
            };
            if !all_refused || started.elapsed() >= STARTING {
                return Err(last);
            }
            std::thread::sleep(REFUSED_PAUSE.min(left(deadline, context)?));
        }
    }

    fn open(addr: SocketAddr, connect_timeout: Duration, timeout: Duration) -> Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, connect_timeout)
            .map_err(|e| Error::new(Error::errno_of(&e), format!("cannot connect to the {SERVICE} at {addr}: {e}")))?;
        // Whatever the port manager listed, the port on this host may now be anyone's.
        crate::server_owner::check(&stream, &format!("the {SERVICE}"))?;
        let _ = stream.set_nodelay(true);
        Ok(Client {
            stream,
            input: LineBuffer::new(MAX_REPLY_LINE),
            server: addr,
            timeout,
            broken: None,
            refusal: None,
        })
    }

    /// The ring master's address.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// How long each later exchange may take.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// `REGISTER ring`: tells the ring master a ring was created.
    pub fn register(&mut self, ring: &str) -> Result<()> {
        validate_name(ring)?;
        self.simple(&format!("REGISTER {ring}\n"), &format!("registering ring {ring}"))
    }

    /// `UNREGISTER ring`: tells the ring master a ring is about to be removed.
    pub fn unregister(&mut self, ring: &str) -> Result<()> {
        validate_name(ring)?;
        self.simple(&format!("UNREGISTER {ring}\n"), &format!("unregistering ring {ring}"))
    }

    /// `CONNECT`: process `pid` has claimed `role` in `ring`. The ring master frees the
    /// slot when this connection closes and the process is gone.
    pub fn connect(&mut self, ring: &str, role: Role, pid: i32, comment: &str) -> Result<()> {
        validate_name(ring)?;
        check_pid(pid)?;
        if let Some(c) = comment.chars().find(|&c| matches!(c, '{' | '}' | '\\') || c.is_control()) {
            return Err(Error::new(
                libc::EINVAL,
                format!("comment {comment:?} contains {c:?}: no braces, backslashes or control characters"),
            ));
        }
        let request = protocol::connect_request(ring, role, pid, comment);
        self.simple(&request, &format!("announcing {} of ring {ring} (pid {pid})", role.word()))
    }

    /// `DISCONNECT`: process `pid` is about to release `role` in `ring`.
    pub fn disconnect(&mut self, ring: &str, role: Role, pid: i32) -> Result<()> {
        validate_name(ring)?;
        check_pid(pid)?;
        let request = protocol::disconnect_request(ring, role, pid);
        self.simple(&request, &format!("announcing the release of {} of ring {ring} (pid {pid})", role.word()))
    }

    /// `LIST`: every ring the ring master knows, with its usage, sorted by name.
    pub fn list(&mut self) -> Result<Vec<(String, RingUsage)>> {
        self.list_with_text().map(|(rings, _)| rings)
    }

    /// `LIST`, with the listing line as the ring master sent it (a Tcl list, without
    /// its line end), for callers that hand it on as text.
    pub fn list_with_text(&mut self) -> Result<(Vec<(String, RingUsage)>, String)> {
        let context = "listing rings".to_string();
        let deadline = self.start(b"LIST\n", &context)?;
        let status = self.line(deadline, &context)?;
        if status != OK_LINE {
            return Err(self.refused_or_unexpected(&context, &status));
        }
        let line = self.line(deadline, &context)?;
        // A line that parses is ASCII-clean enough for Tcl, so it is kept as it came.
        match (protocol::parse_list_line(&line), String::from_utf8(line.clone())) {
            (Some(rings), Ok(text)) => Ok((rings, text)),
            _ => Err(self.unexpected(&context, &line)),
        }
    }

    /// Whether an earlier exchange shut the connection down (every later request fails
    /// with `EPIPE`), or it carries ring data after [`Client::ask_remote`].
    pub fn is_broken(&self) -> bool {
        self.broken.is_some()
    }

    /// The reply line of the last request when it was not the one expected (a refusal
    /// such as `ERROR ...`, or something that is not the protocol); `None` when that
    /// request succeeded or failed otherwise (no connection, no answer in time).
    pub fn refusal(&self) -> Option<&str> {
        self.refusal.as_deref()
    }

    /// `REMOTE ring`: asks for the ring's data. On `OK BINARY FOLLOWS` the connection
    /// becomes the data stream (returned with no timeouts set: the caller chooses its
    /// own); the bytes after the reply line are the ring's, from about now on.
    pub fn remote(mut self, ring: &str) -> Result<TcpStream> {
        self.ask_remote(ring)?;
        Ok(self.into_data_stream())
    }

    /// [`Client::remote`] in two steps, for a caller that keeps the client when the ring
    /// master refuses (to read [`Client::refusal`]). After `Ok`, the connection carries
    /// ring data: every later request fails with `EPIPE`; take it with
    /// [`Client::into_data_stream`].
    pub fn ask_remote(&mut self, ring: &str) -> Result<()> {
        validate_name(ring)?;
        let context = format!("asking for the data of ring {ring}");
        if self.input.pending() != 0 {
            return Err(self.break_off(Error::new(
                libc::EPROTO,
                format!("{}: {context}: unread bytes from an earlier reply", self.describe()),
            )));
        }
        let deadline = self.start(format!("REMOTE {ring}\n").as_bytes(), &context)?;
        // One byte at a time: anything read past the line end would be ring data lost.
        let mut line = Vec::new();
        loop {
            let wait = left(deadline, &|| format!("{}: {context}", self.describe())).map_err(|e| self.break_off(e))?;
            let _ = self.stream.set_read_timeout(Some(wait));
            let mut byte = [0u8; 1];
            match self.stream.read(&mut byte) {
                Ok(0) => {
                    let e = Error::new(
                        libc::ECONNRESET,
                        format!("{}: {context}: the server closed the connection", self.describe()),
                    );
                    return Err(self.break_off(e));
                }
                Ok(_) if byte[0] == b'\n' => break,
                Ok(_) if line.len() >= MAX_REMOTE_REPLY => {
                    let e = Error::new(
                        libc::EPROTO,
                        format!(
                            "{}: {context}: the reply line is longer than {MAX_REMOTE_REPLY} bytes, the most a client \
                             reads",
                            self.describe()
                        ),
                    );
                    return Err(self.break_off(e));
                }
                Ok(_) => line.push(byte[0]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let e = self.io_error(&context, &e);
                    return Err(self.break_off(e));
                }
            }
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line == BINARY_FOLLOWS.as_bytes() {
            self.broken = Some(format!("it carries the data of ring {ring} now"));
            return Ok(());
        }
        Err(self.refused_or_unexpected(&context, &line))
    }

    /// The connection, as the data stream after [`Client::ask_remote`] succeeded, with no
    /// timeouts set.
    pub fn into_data_stream(self) -> TcpStream {
        let _ = self.stream.set_read_timeout(None);
        let _ = self.stream.set_write_timeout(None);
        let _ = self.stream.set_nodelay(false);
        self.stream
    }

    fn describe(&self) -> String {
        format!("{SERVICE} at {}", self.server)
    }

    /// A request whose only good answer is `OK`.
    fn simple(&mut self, request: &str, context: &str) -> Result<()> {
        let deadline = self.start(request.as_bytes(), context)?;
        let line = self.line(deadline, context)?;
        if line == OK_LINE { Ok(()) } else { Err(self.refused_or_unexpected(context, &line)) }
    }

    fn refused_or_unexpected(&mut self, context: &str, line: &[u8]) -> Error {
        let text = String::from_utf8_lossy(line).into_owned();
        self.refusal = Some(text.clone());
        if text.starts_with("ERROR ") || text.starts_with("FAIL") {
            // A legacy daemon closes the connection after some refusals: start afresh.
            let e = Error::new(refusal(&text), format!("{}: {context}: refused: {}", self.describe(), quoted(line)));
            return self.break_off(e);
        }
        self.unexpected(context, line)
    }

    fn unexpected(&mut self, context: &str, line: &[u8]) -> Error {
        self.refusal = Some(String::from_utf8_lossy(line).into_owned());
        let e = Error::new(libc::EPROTO, format!("{}: {context}: unexpected reply {}", self.describe(), quoted(line)));
        self.break_off(e)
    }

    /// Sends a request; returns the deadline for its reply.
    fn start(&mut self, request: &[u8], context: &str) -> Result<Instant> {
        self.refusal = None;
        if let Some(why) = &self.broken {
            return Err(Error::new(
                libc::EPIPE,
                format!(
                    "{}: {context}: this connection was shut down after an earlier failure ({why}); open a new one",
                    self.describe()
                ),
            ));
        }
        let deadline = Instant::now() + self.timeout;
        let _ = self.stream.set_write_timeout(Some(self.timeout.max(Duration::from_millis(1))));
        if let Err(e) = self.stream.write_all(request) {
            let e = self.io_error(context, &e);
            return Err(self.break_off(e));
        }
        Ok(deadline)
    }

    /// The next reply line, without its line end.
    fn line(&mut self, deadline: Instant, context: &str) -> Result<Vec<u8>> {
        let mut chunk = [0u8; 8192];
        loop {
            match self.input.next_line() {
                Some(Ok(line)) => return Ok(line.to_vec()),
                Some(Err(_)) => {
                    let e = Error::new(
                        libc::EPROTO,
                        format!(
                            "{}: {context}: a reply line is longer than {MAX_REPLY_LINE} bytes, the most a client reads",
                            self.describe()
                        ),
                    );
                    return Err(self.break_off(e));
                }
                None => {}
            }
            let wait = left(deadline, &|| format!("{}: {context}", self.describe())).map_err(|e| self.break_off(e))?;
            let _ = self.stream.set_read_timeout(Some(wait));
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    let e = Error::new(
                        libc::ECONNRESET,
                        format!("{}: {context}: the server closed the connection", self.describe()),
                    );
                    return Err(self.break_off(e));
                }
                Ok(n) => self.input.extend(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let e = self.io_error(context, &e);
                    return Err(self.break_off(e));
                }
            }
        }
    }

    fn io_error(&self, context: &str, e: &io::Error) -> Error {
        if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) {
            return Error::new(
                libc::ETIMEDOUT,
                format!("{}: {context}: no answer within {} ms", self.describe(), self.timeout.as_millis()),
            );
        }
        Error::new(Error::errno_of(e), format!("{}: {context}: {e}", self.describe()))
    }

    /// An exchange failed half way: shut the connection down so nothing late is misread.
    fn break_off(&mut self, err: Error) -> Error {
        if self.broken.is_none() {
            let _ = self.stream.shutdown(Shutdown::Both);
            self.input = LineBuffer::new(MAX_REPLY_LINE);
            self.broken = Some(err.message().to_string());
        }
        err
    }
}

const OK_LINE: &[u8] = protocol::OK.as_bytes();

fn check_pid(pid: i32) -> Result<()> {
    if pid <= 0 {
        return Err(Error::new(libc::EINVAL, format!("{pid} is not a process id")));
    }
    Ok(())
}

/// A peer's line as an error message quotes it: whole when short, else its start and its
/// length (a hostile LIST line of megabytes must not become a message of megabytes).
fn quoted(line: &[u8]) -> String {
    const SHOWN: usize = 200;
    if line.len() <= SHOWN {
        format!("{:?}", String::from_utf8_lossy(line))
    } else {
        format!("{:?}... ({} bytes)", String::from_utf8_lossy(&line[..SHOWN]), line.len())
    }
}
