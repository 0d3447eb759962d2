//! The ringmaster daemon's life cycle: its port from the port manager, its listeners, a
//! thread per connection that has sent a request, and a clean stop on SIGTERM.
//!
//! A new connection waits in the event loop, costing only its socket, until its first
//! request line is complete (or it hangs up, or a deadline passes); only then does it get
//! a thread, which reads that line from the socket itself. Connections are capped in
//! total and per remote host, so neither idle connections nor slow talkers from any host
//! can make the daemon start threads without bound.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;
use nix::sys::socket::{MsgFlags, recv};

use super::access::Access;
use super::known::Known;
use super::noise::Noise;
use super::peer::{self, Key, Who};
use super::readers::RemoteRings;
use super::session::{Session, short_of_descriptors_retry};
use super::shared::{Counts, Shared, lock};
use super::streams::Streams;
use crate::daemon::{block_signals, listen_on, open_log, raise_fd_limit};
use crate::network::network_of;
use crate::portmgr::peercred::OwnerLookup;
use crate::portmgr::ratelimit::RateLimit;
use crate::portmgr::sdnotify;
use daqflow::error::{Error, Result};
use daqflow::portmgr;
use daqflow::portmgr::lines::MAX_LINE;
use daqflow::ringmaster::protocol::SERVICE;

pub const DEFAULT_LOG_FILE: &str = "/var/log/nscldaq/ringmaster.log";
/// Long enough for a reader's consumers to pause (a feeder stops reading while its
/// proxy is full), short enough that a reader that never reads cannot hold a producer.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct Config {
    /// Addresses to listen on; empty means every IPv4 and IPv6 address.
    pub listen: Vec<IpAddr>,
    /// The local port manager's port (`None`: found as its clients find it).
    pub portmgr_port: Option<u16>,
    /// Who may ask for ring data.
    pub access: Access,
    /// Which rings other hosts may read.
    pub remote_rings: RemoteRings,
    /// A REMOTE reader that takes nothing for this long is dropped.
    pub stall_timeout: Duration,
    /// `None` logs to stderr.
    pub log_file: Option<PathBuf>,
    /// Connections open at once, waiting for a first request or served.
    pub max_connections: usize,
    /// Connections open at once from one remote host (loopback clients are the host's own
    /// processes, each holding one connection while attached: only the total bounds them).
    pub max_per_host: usize,
    /// A connection from another host that has sent a request and then nothing for this
    /// long is closed (`None`: never). Streams are not idle: the stall timeout bounds them.
    pub idle_timeout: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: Vec::new(),
            portmgr_port: None,
            access: Access::default(),
            remote_rings: RemoteRings::default(),
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            log_file: Some(PathBuf::from(DEFAULT_LOG_FILE)),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_per_host: DEFAULT_MAX_PER_HOST,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
        }
    }
}

/// Far above a DAQ host's attached producers and consumers plus its remote feeders.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// A remote host needs one connection per ring it feeds from here, plus its LISTs.
pub const DEFAULT_MAX_PER_HOST: usize = 64;
/// Another host may only LIST (one exchange) or ask for a stream (its first request),
/// so a connection of its that says nothing for a minute holds a thread for no one.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Connections one user of this host other than root may hold: a quarter of the total
/// (each of its attached processes holds one), so no user can take them all.
fn max_per_user(max_connections: usize) -> usize {
    (max_connections / 4).max(1)
}

/// Connections all other hosts together may hold: half of the total, so that however
/// many hosts (or IPv6 /64s) join in, this host's own clients keep the other half.
fn max_remote(max_connections: usize) -> usize {
    (max_connections / 2).max(1)
}

/// What one connection may take of the table.
#[derive(Debug, Clone, Copy)]
struct Caps {
    per_host: usize,
    per_user: usize,
    remote: usize,
}

impl Caps {
    fn of(config: &Config) -> Caps {
        Caps {
            per_host: config.max_per_host,
            per_user: max_per_user(config.max_connections),
            remote: max_remote(config.max_connections),
        }
    }
}

const SIGNAL: Token = Token(0);
const FIRST_LISTENER: usize = 1;
/// How often the port manager registration is checked (a restarted port manager has
/// forgotten it, and clients would no longer find us).
const REGISTRATION_CHECK: Duration = Duration::from_secs(5);
/// The legacy daemon's retry interval for getting its port.
const REGISTRATION_RETRY: Duration = Duration::from_secs(1);
const PORTMGR_TIMEOUT: Duration = Duration::from_secs(5);
/// Thread stacks: requests need little; a thousand idle clients then cost little.
const STACK: usize = 256 * 1024;
/// How soon to retry accepting after running out of descriptors.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// How long a stop waits for connection threads to finish.
const STOP_WAIT: Duration = Duration::from_secs(5);
/// Tokens of connections waiting for their first request start here, above the listeners.
const FIRST_WAITING: usize = 64;
/// How long a new connection may take to send its first request line. Clients send it
/// as soon as they connect.
const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines about refused connections logged at once, then per second: any host can cause them.
const REFUSAL_LOG_BURST: u32 = 50;
const REFUSAL_LOG_RATE: u32 = 5;

/// A connection counted against its remote host and its user of this host; uncounted
/// when dropped (with its connection, waiting or served).
struct HostTicket {
    shared: Arc<Shared>,
    counted: Vec<Key>,
    remote: bool,
}

impl HostTicket {
    /// `None` when the remote host of `peer` (an IPv6 host per /64: it can use all of it)
    /// holds `per_host` connections already, or the user `who` of this host `per_user`
    /// (each connection that has sent a line holds a thread for as long as it stays
    /// open, so one user could otherwise fill the table every other user's CONNECT
    /// needs), or other hosts together hold `remote` (64 hosts of 64 each would
    /// otherwise fill it). Root's programs and unidentified loopback clients count only
    /// against the total.
    fn take(shared: &Arc<Shared>, peer: IpAddr, who: Who, caps: Caps) -> Option<HostTicket> {
        let mut limits = Vec::new();
        if !peer.to_canonical().is_loopback() {
            limits.push((Key::Address(network_of(peer)), caps.per_host));
        }
        if let Who::User(uid) = who {
            if uid != 0 {
                limits.push((Key::User(uid), caps.per_user));
            }
        }
        let remote = !who.on_this_host();
        let mut counts = lock(&shared.hosts);
        if remote && counts.remote >= caps.remote
            || limits.iter().any(|(key, max)| counts.per_key.get(key).is_some_and(|n| n >= max))
        {
            return None;
        }
        for (key, _) in &limits {
            *counts.per_key.entry(*key).or_insert(0) += 1;
        }
        counts.remote += usize::from(remote);
        Some(HostTicket { shared: shared.clone(), counted: limits.into_iter().map(|(key, _)| key).collect(), remote })
    }
}

impl Drop for HostTicket {
    fn drop(&mut self) {
        let mut counts = lock(&self.shared.hosts);
        counts.remote -= usize::from(self.remote);
        for key in &self.counted {
            if let Some(n) = counts.per_key.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    counts.per_key.remove(key);
                }
            }
        }
    }
}

/// A connection that has not sent a complete request line yet.
struct Waiting {
    stream: mio::net::TcpStream,
    peer: SocketAddr,
    /// Who the client is, learnt at accept (see `peer`).
    who: Who,
    deadline: Instant,
    ticket: HostTicket,
}

/// What a waiting connection's first bytes say.
enum FirstLine {
    /// A line is complete (or too long, or the client hung up): a thread takes it.
    Ready,
    /// Not yet.
    Pending,
    /// Reset or failed: nothing to serve.
    Gone,
}

/// Looks at what the client sent without taking it from the socket (the session reads
/// it as if it had just arrived).
fn first_line(stream: &mio::net::TcpStream) -> FirstLine {
    let mut peek = [0u8; MAX_LINE + 1];
    loop {
        let n = match recv(stream.as_raw_fd(), &mut peek, MsgFlags::MSG_PEEK) {
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => return FirstLine::Pending,
            Err(_) => return FirstLine::Gone,
        };
        let got = &peek[..n];
        // End of file, a line end, or more than a line may hold: the session knows what
        // to do with each.
        return if n == 0 || got.len() > MAX_LINE || got.iter().any(|&b| b == b'\n' || b == b'\r') {
            FirstLine::Ready
        } else {
            FirstLine::Pending
        };
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(config: &Config) -> Result<()> {
    // REMOTE senders attach to rings through the ring core alone: this process never
    // installs the client layer (`daqflow::client`), which would announce them to the ring
    // master advertised here, this very daemon.
    raise_fd_limit();
    // Blocked before any thread starts, so every thread inherits the mask.
    let mut signals = block_signals()?;
    let log = open_log(config.log_file.as_deref());
    let shared = Arc::new(Shared {
        log: Mutex::new(log),
        noise: Mutex::new(Noise::default()),
        stop: AtomicBool::new(false),
        access: config.access.clone(),
        remote_rings: config.remote_rings,
        stall_timeout: config.stall_timeout,
        idle_timeout: config.idle_timeout,
        conns: Mutex::new(HashMap::new()),
        hosts: Mutex::new(Counts::default()),
        streams: Streams::default(),
        known: Known::default(),
    });
    shared.log(format_args!(
        "ringmaster {} starting (pid {}); REMOTE allowed for: {}; rings other hosts may read: {}; stalled readers \
         dropped after {} s; idle connections of other hosts closed after {}",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        shared.access,
        shared.remote_rings,
        shared.stall_timeout.as_secs_f64(),
        shared.idle_timeout.map_or_else(|| "never".to_string(), |t| format!("{} s", t.as_secs_f64()))
    ));
    let Some((registration, Some(listeners))) = register(config, &shared, &mut signals, None) else {
        shared.log(format_args!("ringmaster stopped before it was registered"));
        return Ok(());
    };
    learn_rings(&shared, "present at start");
    let mut daemon = Daemon::new(config.clone(), shared.clone(), signals, registration, listeners)?;
    if let Err(e) = sdnotify::notify(&format!("READY=1\nMAINPID={}", std::process::id())) {
        shared.log(format_args!("cannot notify systemd: {e}"));
    }
    let result = daemon.serve();
    let _ = sdnotify::notify("STOPPING=1");
    daemon.shut_down();
    result
}

/// Adds the rings in /dev/shm to the known ones. Called once the port manager lists us
/// and our listeners are bound (requests wait in their backlog meanwhile): a ring made
/// before that could not have been registered with us, one made after will be.
fn learn_rings(shared: &Shared, when: &str) {
    match short_of_descriptors_retry(|| shared.known.enumerate()) {
        Ok(n) => shared.log(format_args!("{n} rings {when} added to the known rings")),
        Err(e) => shared.log(format_args!("cannot list the rings {when}: {e}; they stay unknown until registered")),
    }
}

/// Waits for a signal for up to `wait`; true when it is a stop signal.
fn stop_signalled(signals: &mut SignalFd, wait: Duration) -> bool {
    let mut fds = [nix::poll::PollFd::new(std::os::fd::AsFd::as_fd(signals), nix::poll::PollFlags::POLLIN)];
    let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
    let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms));
    let mut stop = false;
    while let Ok(Some(info)) = signals.read_signal() {
        stop |= Signal::try_from(info.ssi_signo as i32).is_ok_and(|s| s != Signal::SIGHUP);
    }
    stop
}

/// Gets a port from the local port manager under `RingMaster` and listens on it,
/// retrying every second until both work; `None` when a stop signal came first.
/// `current`: the port already listened on (when registering again); if the port
/// manager hands out that one again, the listeners are kept (`None` in the result).
fn register(
    config: &Config,
    shared: &Shared,
    signals: &mut SignalFd,
    current: Option<u16>,
) -> Option<(portmgr::Client, Option<Vec<TcpListener>>)> {
    let mut complained = false;
    loop {
        let attempt = portmgr::Client::connect_timeout(Some("localhost"), config.portmgr_port, Some(PORTMGR_TIMEOUT))
            .and_then(|mut client| client.allocate(SERVICE).map(|port| (client, port)))
            .and_then(|(client, port)| match current {
                Some(same) if same == port => Ok((client, port, None)),
                _ => bind_listeners(&config.listen, port).map(|l| (client, port, Some(l))),
            });
        match attempt {
            Ok((client, port, listeners)) => {
                let addresses: Vec<String> =
                    listeners.iter().flatten().filter_map(|l| l.local_addr().ok()).map(|a| a.to_string()).collect();
                let listening = if listeners.is_some() { addresses.join(" ") } else { "as before".to_string() };
                shared.log(format_args!("registered as {SERVICE} on port {port}; listening {listening}"));
                return Some((client, listeners));
            }
            Err(e) => {
                if !complained {
                    shared.log(format_args!("cannot register with the port manager ({e}); retrying every second"));
                    complained = true;
                }
                if stop_signalled(signals, REGISTRATION_RETRY) {
                    return None;
                }
            }
        }
    }
}

fn bind_listeners(addresses: &[IpAddr], port: u16) -> Result<Vec<TcpListener>> {
    let explicit = !addresses.is_empty();
    let addresses = if explicit {
        let mut addresses = addresses.to_vec();
        // Local clients connect to 127.0.0.1 whatever this list says: unless we hold that
        // address on our port, any user may, and be this host's ring master for them.
        if !addresses
            .iter()
            .any(|ip| *ip == IpAddr::V4(Ipv4Addr::LOCALHOST) || *ip == IpAddr::V4(Ipv4Addr::UNSPECIFIED))
        {
            addresses.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        addresses
    } else {
        vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED), IpAddr::V6(Ipv6Addr::UNSPECIFIED)]
    };
    let mut listeners = Vec::new();
    for ip in addresses {
        let addr = SocketAddr::new(ip, port);
        match listen_on(addr) {
            Ok(listener) => listeners.push(listener),
            // A host without IPv6 still serves IPv4 by default.
            Err(e) if !explicit && ip.is_ipv6() && matches!(e, Errno::EAFNOSUPPORT | Errno::EADDRNOTAVAIL) => {}
            Err(e) => return Err(Error::sys(e, format!("cannot listen on {addr}"))),
        }
    }
    Ok(listeners)
}

struct Daemon {
    config: Config,
    shared: Arc<Shared>,
    poll: Poll,
    signals: SignalFd,
    /// The port manager connection that holds our port.
    registration: portmgr::Client,
    listeners: Vec<TcpListener>,
    next_key: AtomicU64,
    /// Accepting failed for want of resources: retry after ACCEPT_RETRY.
    accept_paused: bool,
    /// The failure is logged: no line per retry.
    accept_failing: bool,
    /// Asks the kernel who owns a local client's socket (`None`: could not be opened).
    owners: Option<OwnerLookup>,
    /// Connections waiting for their first request, by token.
    waiting: HashMap<usize, Waiting>,
    next_waiting: usize,
    refusals: RateLimit,
}

impl Daemon {
    fn new(
        config: Config,
        shared: Arc<Shared>,
        signals: SignalFd,
        registration: portmgr::Client,
        listeners: Vec<TcpListener>,
    ) -> Result<Daemon> {
        let poll = Poll::new().map_err(|e| Error::io(&e, "cannot create the event loop"))?;
        let owners = OwnerLookup::new()
            .map_err(|e| {
                shared.log(format_args!("cannot identify local clients ({e}): they may read world-readable rings only"))
            })
            .ok();
        poll.registry()
            .register(&mut SourceFd(&signals.as_raw_fd()), SIGNAL, Interest::READABLE)
            .map_err(|e| Error::io(&e, "cannot watch the signalfd"))?;
        let mut daemon = Daemon {
            config,
            shared,
            poll,
            signals,
            registration,
            listeners: Vec::new(),
            next_key: AtomicU64::new(0),
            accept_paused: false,
            accept_failing: false,
            owners,
            waiting: HashMap::new(),
            next_waiting: FIRST_WAITING,
            refusals: RateLimit::new(REFUSAL_LOG_BURST, REFUSAL_LOG_RATE),
        };
        daemon.watch(listeners)?;
        Ok(daemon)
    }

    fn watch(&mut self, listeners: Vec<TcpListener>) -> Result<()> {
        for mut old in self.listeners.drain(..) {
            let _ = self.poll.registry().deregister(&mut old);
        }
        for (i, mut listener) in listeners.into_iter().enumerate() {
            self.poll
                .registry()
                .register(&mut listener, Token(FIRST_LISTENER + i), Interest::READABLE)
                .map_err(|e| Error::io(&e, "cannot watch a listening socket"))?;
            self.listeners.push(listener);
        }
        Ok(())
    }

    fn serve(&mut self) -> Result<()> {
        let mut events = Events::with_capacity(256);
        let mut next_check = Instant::now() + REGISTRATION_CHECK;
        loop {
            let mut wait = next_check.saturating_duration_since(Instant::now());
            if self.accept_paused {
                wait = wait.min(ACCEPT_RETRY);
            }
            if let Some(first) = self.waiting.values().map(|w| w.deadline).min() {
                wait = wait.min(first.saturating_duration_since(Instant::now()));
            }
            if let Err(e) = self.poll.poll(&mut events, Some(wait)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::io(&e, "event loop failed"));
            }
            if std::mem::take(&mut self.accept_paused) {
                // Edge-triggered: the connections left waiting raise no new event.
                for i in 0..self.listeners.len() {
                    self.accept(i);
                }
            }
            for event in events.iter() {
                match event.token() {
                    SIGNAL => {
                        while let Ok(Some(info)) = self.signals.read_signal() {
                            match Signal::try_from(info.ssi_signo as i32) {
                                Ok(Signal::SIGHUP) => self.reopen_log(),
                                signal => {
                                    let name = signal.map_or("a signal", |s| s.as_str());
                                    self.shared.log(format_args!("ringmaster stopping on {name}"));
                                    return Ok(());
                                }
                            }
                        }
                    }
                    Token(t) if t >= FIRST_WAITING => self.first_request(t, event.is_read_closed() || event.is_error()),
                    Token(t) => self.accept(t - FIRST_LISTENER),
                }
            }
            self.expire_waiting();
            if Instant::now() >= next_check {
                self.shared.log_suppressed();
                if !self.check_registration() {
                    return Ok(());
                }
                next_check = Instant::now() + REGISTRATION_CHECK;
            }
        }
    }

    fn reopen_log(&mut self) {
        let Some(path) = self.config.log_file.clone() else {
            return;
        };
        let result = lock(&self.shared.log).reopen(&path);
        match result {
            Ok(()) => self.shared.log(format_args!("log file reopened on SIGHUP")),
            Err(e) => self.shared.log(format_args!("cannot reopen log file {} ({e})", path.display())),
        }
    }

    /// A port manager that restarted has forgotten our port: register again (the new
    /// port may differ; connections already open stay). False when a stop signal
    /// arrived meanwhile.
    fn check_registration(&mut self) -> bool {
        if self.registration.list().is_ok() {
            return true;
        }
        self.shared.log(format_args!("lost the port manager connection; registering again"));
        let current = self.listeners.first().and_then(|l| l.local_addr().ok()).map(|a| a.port());
        let Some((registration, listeners)) = register(&self.config, &self.shared, &mut self.signals, current) else {
            self.shared.log(format_args!("ringmaster stopping on a signal"));
            return false;
        };
        self.registration = registration;
        // Rings made while the port manager did not list us could not register.
        learn_rings(&self.shared, "made while unregistered");
        if let Some(listeners) = listeners {
            if let Err(e) = self.watch(listeners) {
                self.shared.log(format_args!("{e}"));
            }
        }
        true
    }

    fn accept(&mut self, index: usize) {
        loop {
            let Some(listener) = self.listeners.get(index) else {
                return;
            };
            match listener.accept() {
                Ok((mut stream, peer)) => {
                    self.accept_failing = false;
                    let open = lock(&self.shared.conns).len() + self.waiting.len();
                    if open >= self.config.max_connections {
                        let max = self.config.max_connections;
                        self.refused(format_args!("connection from {} refused: {max} connections open", peer.ip()));
                        continue; // dropping it closes it
                    }
                    // Now, while the client's socket is sure to be the client's.
                    let who = match stream.local_addr() {
                        Ok(local) => peer::identify(self.owners.as_mut(), peer, local),
                        Err(_) => peer::identify(None, peer, peer),
                    };
                    let caps = Caps::of(&self.config);
                    let Some(ticket) = HostTicket::take(&self.shared, peer.ip(), who, caps) else {
                        let (per_host, per_user, remote) = (caps.per_host, caps.per_user, caps.remote);
                        self.refused(format_args!(
                            "connection from {} ({who}) refused: its host has {per_host} or its user {per_user} open, \
                             or other hosts together {remote}",
                            peer.ip()
                        ));
                        continue;
                    };
                    let token = self.next_waiting;
                    self.next_waiting += 1;
                    if let Err(e) = self.poll.registry().register(&mut stream, Token(token), Interest::READABLE) {
                        self.shared.log(format_args!("cannot watch the connection from {peer}: {e}"));
                        continue;
                    }
                    let deadline = Instant::now() + FIRST_REQUEST_TIMEOUT;
                    self.waiting.insert(token, Waiting { stream, peer, who, deadline, ticket });
                    // Its request may have come with the handshake's last packet: no new
                    // edge would announce it.
                    self.first_request(token, false);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted) => {}
                Err(e) => {
                    // Out of descriptors or memory: the backlog keeps clients waiting;
                    // try again shortly instead of spinning (logged once per pause).
                    if !self.accept_failing {
                        self.shared.log(format_args!("cannot accept a connection: {e}; retrying shortly"));
                        self.accept_failing = true;
                    }
                    self.accept_paused = true;
                    return;
                }
            }
        }
    }
}

impl Daemon {
    /// A waiting connection is readable: hands it to a thread once its first request line
    /// is complete or the client has hung up (its session then says what it left
    /// unfinished); closes it if it is gone.
    fn first_request(&mut self, token: usize, hung_up: bool) {
        let Some(waiting) = self.waiting.get(&token) else {
            return;
        };
        // A peek shows the bytes before an end of file, not the end itself.
        let first = if hung_up { FirstLine::Ready } else { first_line(&waiting.stream) };
        match first {
            FirstLine::Pending => {}
            FirstLine::Gone => self.drop_waiting(token),
            FirstLine::Ready => {
                let Some(mut waiting) = self.waiting.remove(&token) else {
                    return;
                };
                let _ = self.poll.registry().deregister(&mut waiting.stream);
                let stream = TcpStream::from(OwnedFd::from(waiting.stream));
                if let Err(e) = stream.set_nonblocking(false) {
                    self.shared.log(format_args!("cannot serve the connection from {}: {e}", waiting.peer));
                    return;
                }
                let _ = stream.set_nodelay(true);
                spawn(&self.shared, &self.next_key, stream, waiting.peer, waiting.who, waiting.ticket);
            }
        }
    }

    fn drop_waiting(&mut self, token: usize) {
        if let Some(mut waiting) = self.waiting.remove(&token) {
            let _ = self.poll.registry().deregister(&mut waiting.stream);
        }
    }

    /// Closes the connections that did not send a request in time.
    fn expire_waiting(&mut self) {
        let now = Instant::now();
        let late: Vec<usize> = self.waiting.iter().filter(|(_, w)| w.deadline <= now).map(|(&t, _)| t).collect();
        for token in late {
            if let Some(ip) = self.waiting.get(&token).map(|w| w.peer.ip()) {
                let secs = FIRST_REQUEST_TIMEOUT.as_secs();
                self.refused(format_args!("connection from {ip} closed: no request in {secs} s"));
            }
            self.drop_waiting(token);
        }
    }

    /// Logs a refused or expired connection, unless they come too fast to log each.
    fn refused(&mut self, message: std::fmt::Arguments<'_>) {
        if let Some(missed) = self.refusals.admit(Instant::now()) {
            if missed > 0 {
                self.shared.log(format_args!("{missed} refused connections not logged (too many)"));
            }
            self.shared.log(message);
        }
    }
}

/// Serves a connection that has sent its first request on a thread of its own.
fn spawn(
    shared: &Arc<Shared>,
    next_key: &AtomicU64,
    stream: TcpStream,
    peer: SocketAddr,
    who: Who,
    ticket: HostTicket,
) {
    let key = next_key.fetch_add(1, Ordering::Relaxed);
    // One descriptor, two owners: the thread, and the registry a stop wakes it through.
    let stream = Arc::new(stream);
    lock(&shared.conns).insert(key, stream.clone());
    shared.log_from(who, format_args!("New socket connection from {} ({who})", peer.ip()));
    let mine = shared.clone();
    let spawned = std::thread::Builder::new().name("ringmaster-conn".into()).stack_size(STACK).spawn(move || {
        Session::new(stream, peer, who, &mine).run();
        lock(&mine.conns).remove(&key);
        drop(ticket);
    });
    if let Err(e) = spawned {
        shared.log(format_args!("cannot start a thread for the connection from {peer}: {e}"));
        if let Some(conn) = lock(&shared.conns).remove(&key) {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }
}

impl Daemon {
    /// Wakes every connection thread and waits (bounded) for them to finish: senders
    /// detach from their rings, clients' slots stay theirs.
    fn shut_down(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for conn in lock(&self.shared.conns).values() {
            let _ = conn.shutdown(Shutdown::Both);
        }
        let deadline = Instant::now() + STOP_WAIT;
        while !lock(&self.shared.conns).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let left = lock(&self.shared.conns).len();
        if left > 0 {
            self.shared.log(format_args!("{left} connections still busy at exit"));
        }
        self.shared.log(format_args!("ringmaster stopped"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::Log;

    fn shared() -> Arc<Shared> {
        Arc::new(Shared {
            log: Mutex::new(Log::stderr()),
            noise: Mutex::new(Noise::default()),
            stop: AtomicBool::new(false),
            access: Access::default(),
            remote_rings: RemoteRings::default(),
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            conns: Mutex::new(HashMap::new()),
            hosts: Mutex::new(Counts::default()),
            streams: Streams::default(),
            known: Known::default(),
        })
    }

    fn caps(per_host: usize, per_user: usize, remote: usize) -> Caps {
        Caps { per_host, per_user, remote }
    }

    #[test]
    fn other_hosts_together_take_at_most_their_share() {
        let shared = shared();
        let caps = caps(2, 100, 4);
        let host = |i: u8| IpAddr::from([10, 0, 0, i]);
        let held: Vec<_> = (1..=4).map(|i| HostTicket::take(&shared, host(i), Who::Host(host(i)), caps)).collect();
        assert!(held.iter().all(Option::is_some), "within each host's cap and the remote share");
        assert!(HostTicket::take(&shared, host(9), Who::Host(host(9)), caps).is_none(), "a fifth host");
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(HostTicket::take(&shared, lo, Who::User(4242), caps).is_some(), "this host's clients are not");
        assert!(HostTicket::take(&shared, host(5), Who::Unidentified(host(5)), caps).is_some(), "nor its addresses");
        drop(held);
        assert!(HostTicket::take(&shared, host(9), Who::Host(host(9)), caps).is_some(), "freed with its connections");
    }

    #[test]
    fn an_ipv6_host_cannot_rotate_addresses_in_its_64_past_the_per_host_cap() {
        let shared = shared();
        let v6 = |n: u128| IpAddr::V6(n.into());
        let host = Who::Host;
        let base = u128::from("2001:db8:1:2::".parse::<Ipv6Addr>().unwrap());
        let other = u128::from("2001:db8:1:3::1".parse::<Ipv6Addr>().unwrap());
        let tickets: Vec<_> = (1..=4u128)
            .map(|i| {
                HostTicket::take(&shared, v6(base + i), host(v6(base + i)), caps(4, 4, 100)).expect("within the cap")
            })
            .collect();
        assert!(
            HostTicket::take(&shared, v6(base + 99), host(v6(base + 99)), caps(4, 4, 100)).is_none(),
            "a fifth address of the /64"
        );
        assert!(HostTicket::take(&shared, v6(other), host(v6(other)), caps(4, 4, 100)).is_some(), "another /64");
        drop(tickets);
        assert!(
            HostTicket::take(&shared, v6(base + 99), host(v6(base + 99)), caps(4, 4, 100)).is_some(),
            "freed with its connections"
        );
    }

    #[test]
    fn a_user_of_this_host_but_root_is_capped_on_loopback() {
        let shared = shared();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let held: Vec<_> =
            (0..3).map(|_| HostTicket::take(&shared, lo, Who::User(4242), caps(1, 3, 1)).expect("within")).collect();
        assert!(HostTicket::take(&shared, lo, Who::User(4242), caps(1, 3, 1)).is_none(), "a fourth of that user's");
        assert!(HostTicket::take(&shared, lo, Who::User(4243), caps(1, 3, 1)).is_some(), "another user");
        let root: Vec<_> = (0..10).map(|_| HostTicket::take(&shared, lo, Who::User(0), caps(1, 3, 1))).collect();
        assert!(root.iter().all(Option::is_some), "root counts only against the total");
        assert!(HostTicket::take(&shared, lo, Who::Unidentified(lo), caps(1, 3, 1)).is_some());
        drop(held);
        assert!(HostTicket::take(&shared, lo, Who::User(4242), caps(1, 3, 1)).is_some(), "freed with its connections");
    }
}
