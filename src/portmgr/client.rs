//! The blocking port manager client (what `portmgr_*` in the C ABI wraps).
//!
//! One TCP connection per client: the ports it allocates stay allocated until it is
//! dropped. Plain blocking sockets with timeouts, no runtime, so it can live inside any
//! host program.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::unistd::{User, geteuid};

use super::lines::{LineBuffer, MAX_LINE};
use super::protocol::{self, CONTROL_CHARACTER};
use super::protocol::{DEFAULT_LISTEN_PORT, DEFAULT_PORT_FILE};
pub use super::reply::Allocation;
use super::reply::{self, BadReply, Gimme, Listing, MAX_REPLY_LINE};
use crate::error::{Error, Result};

/// Environment variable naming the port file to read instead of the default one.
pub const PORT_FILE_ENV: &str = "DAQPORTMGR_PORTFILE";
/// How long to wait for a connection and for each reply unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    input: LineBuffer,
    server: String,
    timeout: Option<Duration>,
    /// Why the connection can no longer be used, once an exchange failed half way.
    broken: Option<String>,
    /// The reason of the FAIL reply the last allocation got, for callers (the Tcl
    /// package) that show the server's own words.
    refusal: Option<String>,
}

/// The port the local daemon listens on: the number in the port file
/// (`$DAQPORTMGR_PORTFILE`, else /var/tmp/daqportmgr/listen.port), or 30000 when there is
/// no such file.
pub fn default_port() -> Result<u16> {
    let path = crate::environ::var_os(PORT_FILE_ENV).map_or_else(|| PathBuf::from(DEFAULT_PORT_FILE), PathBuf::from);
    port_in_file(&path)
}

/// The longest port file read: a port number is a few bytes, and the path comes from the
/// environment, so it may name a device that never ends.
const PORT_FILE_MAX: u64 = 4096;

fn port_in_file(path: &std::path::Path) -> Result<u16> {
    let not_a_port = |shown: &str| {
        Error::new(libc::EINVAL, format!("port file {} does not hold a port number: {shown}", path.display()))
    };
    let mut text = String::new();
    let read = std::fs::File::open(path).and_then(|file| file.take(PORT_FILE_MAX + 1).read_to_string(&mut text));
    match read {
        Ok(n) if n as u64 > PORT_FILE_MAX => Err(not_a_port(&format!("more than {PORT_FILE_MAX} bytes"))),
        Ok(_) => match text.trim().parse::<u16>() {
            Ok(port) if port > 0 => Ok(port),
            _ => Err(not_a_port(&format!("{:?}", text.trim()))),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(DEFAULT_LISTEN_PORT),
        Err(e) => Err(Error::io(&e, format!("cannot read port file {}", path.display()))),
    }
}

/// The name the calling process allocates under: its effective user's login name, or
/// the decimal uid when the user has no passwd entry (the daemon accepts both).
pub fn calling_user() -> String {
    let uid = geteuid();
    User::from_uid(uid).ok().flatten().map_or_else(|| uid.to_string(), |u| u.name)
}

impl Client {
    /// Connects to the port manager on `host` (default "localhost") at `port` (default
    /// [`default_port`]), trying every address the host name has, with the default
    /// timeout.
    pub fn connect(host: Option<&str>, port: Option<u16>) -> Result<Client> {
        Client::connect_timeout(host, port, Some(DEFAULT_TIMEOUT))
    }

    /// As [`Client::connect`]; `timeout` (None = wait forever) bounds each connection
    /// attempt and, later, each reply.
    pub fn connect_timeout(host: Option<&str>, port: Option<u16>, timeout: Option<Duration>) -> Result<Client> {
        let host = host.unwrap_or("localhost");
        let port = match port {
            Some(port) => port,
            None => default_port()?,
        };
        let server = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        let addresses: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(|e| Error::new(libc::EHOSTUNREACH, format!("cannot resolve port manager host {host}: {e}")))?
            .collect();
        let mut last = Error::new(libc::EHOSTUNREACH, format!("port manager host {host} has no address"));
        for addr in addresses {
            let attempt = match timeout {
                Some(t) => TcpStream::connect_timeout(&addr, t),
                None => TcpStream::connect(addr),
            };
            match attempt {
                Ok(stream) => {
                    // Before anything is sent or believed: on this host, anyone may be listening.
                    crate::server_owner::check(&stream, "the port manager")?;
                    let _ = stream.set_nodelay(true);
                    return Ok(Client {
                        stream,
                        input: LineBuffer::new(MAX_REPLY_LINE),
                        server,
                        timeout,
                        broken: None,
                        refusal: None,
                    });
                }
                Err(e) => {
                    last = Error::new(Error::errno_of(&e), format!("cannot connect to the port manager at {addr}: {e}"))
                }
            }
        }
        Err(last)
    }

    /// How long to wait for each reply (None = forever).
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// Allocates a port for `application` under the calling user's name; it stays
    /// allocated until this client is dropped.
    pub fn allocate(&mut self, application: &str) -> Result<u16> {
        self.allocate_as(application, &calling_user())
    }

    /// The reason of the FAIL reply the last allocation on this connection got; None when
    /// it succeeded or failed for another reason.
    pub fn refusal(&self) -> Option<&str> {
        self.refusal.as_deref()
    }

    /// Allocates a port under an explicit user name (the daemon checks that it is ours).
    pub fn allocate_as(&mut self, application: &str, user: &str) -> Result<u16> {
        self.refusal = None;
        for (what, value) in [("application name", application), ("user name", user)] {
            // The daemon refuses such names (they would break LIST and ports.txt lines);
            // say so before sending anything.
            if protocol::has_control(value.as_bytes()) {
                return Err(Error::new(libc::EINVAL, format!("{what} {value:?} {CONTROL_CHARACTER}")));
            }
        }
        let request = protocol::gimme_request(application.as_bytes(), user.as_bytes());
        // The daemon hangs up on a longer line, and with the connection go its ports.
        if request.len() - 1 > MAX_LINE {
            return Err(Error::new(
                libc::EINVAL,
                format!(
                    "the request for an application name of {} bytes is longer than the port manager's limit of {MAX_LINE} bytes",
                    application.len()
                ),
            ));
        }
        let context = format!("allocating a port for {application} from the port manager at {}", self.server);
        self.usable(&context)?;
        self.send(&request, &context)?;
        let line = self.reply(&context)?;
        let answer = reply::gimme(&line);
        match answer.map_err(|bad| self.bad_reply(&context, bad))? {
            Gimme::Port(port) => Ok(port),
            Gimme::Refused(refusal) => {
                let error = Error::new(refusal.errno(), format!("{context}: the server refused: {}", refusal.reason));
                if refusal.hung_up {
                    // The ports went with the connection: later calls must say so rather than
                    // act on a handle that holds nothing.
                    self.break_off(Error::new(
                        error.errno(),
                        format!("the port manager refused ({}) and closed the connection", refusal.reason),
                    ));
                }
                self.refusal = Some(refusal.reason);
                Err(error)
            }
        }
    }

    /// Every allocation on the server, in the server's order and naming.
    pub fn list(&mut self) -> Result<Vec<Allocation>> {
        let context = format!("listing the ports of the port manager at {}", self.server);
        self.usable(&context)?;
        self.send(b"LIST\n", &context)?;
        // The timeout bounds the whole listing: a server that sends its lines slowly
        // enough, or promises endless ones, must not hold us for ever.
        let deadline = self.timeout.map(|t| Instant::now() + t);
        let header = self.reply_by(&context, deadline)?;
        let mut listing = Listing::start(&header).map_err(|bad| self.bad_reply(&context, bad))?;
        while !listing.is_complete() {
            let line = self.reply_by(&context, deadline)?;
            listing.line(&line).map_err(|bad| self.bad_reply(&context, bad))?;
        }
        Ok(listing.into_allocations())
    }

    /// The port of `service` run by `user` (default: the calling user), matching the
    /// LISTed name exactly as the legacy `findServer` did; `ENOENT` when none.
    pub fn find_server(&mut self, service: &str, user: Option<&str>) -> Result<u16> {
        let me;
        let user = match user {
            Some(user) => user,
            None => {
                me = calling_user();
                &me
            }
        };
        self.list()?.into_iter().find(|a| a.application == service && a.user == user).map(|a| a.port).ok_or_else(|| {
            Error::new(
                libc::ENOENT,
                format!("no service {service} run by {user} at the port manager at {}", self.server),
            )
        })
    }

    /// False once the connection is gone: shut down after a failure, or closed by the
    /// server after a refusal (FRIB's `portman` hangs up after every one). Its ports went
    /// with it; every later call fails with `EPIPE`.
    pub fn is_usable(&self) -> bool {
        self.broken.is_none()
    }

    /// Fails with `EPIPE` once an earlier exchange broke off (see [`Client::break_off`]).
    fn usable(&self, context: &str) -> Result<()> {
        match &self.broken {
            None => Ok(()),
            Some(why) => Err(Error::new(
                libc::EPIPE,
                format!(
                    "{context}: this connection was shut down after an earlier failure ({why}), and the ports it held \
                     were released; close it and open a new one"
                ),
            )),
        }
    }

    /// An exchange failed half way (no reply in time, a reply that is not the protocol,
    /// a broken stream): a late or partial reply may still arrive, and the next request
    /// would read it as its own (the previous request's port for a new allocation). The
    /// connection is shut down, so the server releases its ports at once rather than
    /// leaving them allocated to a handle that can no longer be trusted, and every later
    /// call fails with `EPIPE`.
    fn break_off(&mut self, err: Error) -> Error {
        if self.broken.is_none() {
            let _ = self.stream.shutdown(Shutdown::Both);
            self.input = LineBuffer::new(MAX_REPLY_LINE);
            self.broken = Some(err.message().to_string());
        }
        err
    }

    fn send(&mut self, request: &[u8], context: &str) -> Result<()> {
        let _ = self.stream.set_write_timeout(self.timeout);
        // A partial write leaves half a request on the wire: that breaks the stream too.
        let sent = self.stream.write_all(request);
        sent.map_err(|e| self.break_off(Error::new(Error::errno_of(&e), format!("{context}: {e}"))))
    }

    /// A reply that is not the protocol, or more than a client reads.
    fn bad_reply(&mut self, context: &str, bad: BadReply) -> Error {
        self.break_off(Error::new(libc::EPROTO, format!("{context}: the reply {}", bad.0)))
    }

    /// The next reply line.
    fn reply(&mut self, context: &str) -> Result<Vec<u8>> {
        let deadline = self.timeout.map(|t| Instant::now() + t);
        self.reply_by(context, deadline)
    }

    /// The next reply line, by `deadline` (None: no limit).
    fn reply_by(&mut self, context: &str, deadline: Option<Instant>) -> Result<Vec<u8>> {
        let line = self.read_reply(context, deadline);
        line.map_err(|e| self.break_off(e))
    }

    fn read_reply(&mut self, context: &str, deadline: Option<Instant>) -> Result<Vec<u8>> {
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(line) = self.input.next_line() {
                let line = line.map_err(|_| {
                    Error::new(
                        libc::EPROTO,
                        format!(
                            "{context}: a reply line is longer than {MAX_REPLY_LINE} bytes, the most a client reads"
                        ),
                    )
                })?;
                return Ok(line.to_vec());
            }
            let wait = match deadline {
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Err(self.timed_out(context)),
                },
                None => None,
            };
            let _ = self.stream.set_read_timeout(wait);
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(Error::new(libc::ECONNRESET, format!("{context}: the server closed the connection")));
                }
                Ok(n) => self.input.extend(&chunk[..n]),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Err(self.timed_out(context));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::new(Error::errno_of(&e), format!("{context}: {e}"))),
            }
        }
    }

    fn timed_out(&self, context: &str) -> Error {
        let ms = self.timeout.map_or(0, |t| t.as_millis());
        Error::new(libc::ETIMEDOUT, format!("{context}: no reply within {ms} ms"))
    }
}

#[cfg(test)]
mod port_file_tests {
    use super::*;

    #[test]
    fn an_endless_port_file_is_not_a_port_number() {
        let err = port_in_file(std::path::Path::new("/dev/zero")).unwrap_err();
        assert_eq!(err.errno(), libc::EINVAL, "{err}");
    }

    #[test]
    fn a_port_file_holds_a_decimal_port_or_is_missing() {
        let dir = std::env::temp_dir().join(format!("daqflow-portfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("listen.port");
        std::fs::write(&file, " 040123\n").unwrap();
        assert_eq!(port_in_file(&file).unwrap(), 40123);
        std::fs::write(&file, "0").unwrap();
        assert_eq!(port_in_file(&file).unwrap_err().errno(), libc::EINVAL);
        assert_eq!(port_in_file(&dir.join("missing")).unwrap(), DEFAULT_LISTEN_PORT);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
