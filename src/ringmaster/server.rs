//! The ringmaster daemon's life cycle: its port from the port manager, its listeners, a
//! thread per connection, and a clean stop on SIGTERM.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;

use super::access::Access;
use super::known::Known;
use super::noise::{Noise, Verdict};
use super::peer::{self, Who};
use super::protocol::SERVICE;
use super::readers::RemoteRings;
use super::session::{Session, short_of_descriptors_retry};
use super::streams::Streams;
use crate::daemon::{block_signals, listen_on, open_log, raise_fd_limit};
use crate::error::{Error, Result};
use crate::portmgr::log::Log;
use crate::portmgr::peercred::OwnerLookup;
use crate::portmgr::{self, sdnotify};

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
        }
    }
}

/// What every connection thread shares with the daemon.
pub struct Shared {
    log: Mutex<Log>,
    /// How many lines each client may cause.
    noise: Mutex<Noise>,
    pub stop: AtomicBool,
    pub access: Access,
    pub remote_rings: RemoteRings,
    pub stall_timeout: Duration,
    /// Every open connection, so a stop can wake its thread.
    conns: Mutex<HashMap<u64, Arc<TcpStream>>>,
    /// REMOTE streams under way.
    pub streams: Streams,
    /// The rings LIST shows.
    pub known: Known,
}

impl Shared {
    /// One log line, written at once (threads interleave whole lines only).
    pub fn log(&self, message: std::fmt::Arguments<'_>) {
        let mut log = lock(&self.log);
        log.line(message);
        log.flush();
    }

    /// A log line caused by a client: written only while the client is within its
    /// share (see `noise`; root's are all written). Client-supplied fields must be `printable` already.
    pub fn log_from(&self, who: Who, message: std::fmt::Arguments<'_>) {
        // Root's programs could write to the log themselves.
        let verdict = if who == Who::User(0) {
            Verdict::Write { suppressed: 0 }
        } else {
            lock(&self.noise).admit(who.key(), Instant::now())
        };
        if let Verdict::Write { suppressed } = verdict {
            let mut log = lock(&self.log);
            if suppressed > 0 {
                log.line(format_args!("{suppressed} lines caused by {who} were not logged (too many)"));
            }
            log.line(message);
            log.flush();
        }
    }

    /// Logs how many lines each client that went over its share lost.
    fn log_suppressed(&self) {
        let due = lock(&self.noise).due(Instant::now());
        for (key, n) in due {
            let whose = key.map_or_else(|| "clients beyond the tracked ones".to_string(), |k| format!("{k}"));
            self.log(format_args!("{n} lines caused by {whose} were not logged (too many)"));
        }
    }
}

/// A poisoned lock only means another thread panicked while logging or bookkeeping;
/// the data is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(config: &Config) -> Result<()> {
    // REMOTE senders attach to rings through the library, which would otherwise announce
    // them to the ring master advertised here: this very daemon.
    crate::remote::master::disable();
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
        conns: Mutex::new(HashMap::new()),
        streams: Streams::default(),
        known: Known::default(),
    });
    shared.log(format_args!(
        "ringmaster {} starting (pid {}); REMOTE allowed for: {}; rings other hosts may read: {}; stalled readers \
         dropped after {} s",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        shared.access,
        shared.remote_rings,
        shared.stall_timeout.as_secs_f64()
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
        addresses.to_vec()
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
                    Token(t) => self.accept(t - FIRST_LISTENER),
                }
            }
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
        let Some(listener) = self.listeners.get(index) else {
            return;
        };
        loop {
            match listener.accept() {
                Ok((stream, peer)) => {
                    self.accept_failing = false;
                    let stream = TcpStream::from(OwnedFd::from(stream));
                    if let Err(e) = stream.set_nonblocking(false) {
                        self.shared.log(format_args!("cannot serve the connection from {peer}: {e}"));
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    // Now, while the client's socket is sure to be the client's.
                    let who = match stream.local_addr() {
                        Ok(local) => peer::identify(self.owners.as_mut(), peer, local),
                        Err(_) => peer::identify(None, peer, peer),
                    };
                    spawn(&self.shared, &self.next_key, stream, peer, who);
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

/// Serves a new connection on a thread of its own.
fn spawn(shared: &Arc<Shared>, next_key: &AtomicU64, stream: TcpStream, peer: SocketAddr, who: Who) {
    let key = next_key.fetch_add(1, Ordering::Relaxed);
    // One descriptor, two owners: the thread, and the registry a stop wakes it through.
    let stream = Arc::new(stream);
    lock(&shared.conns).insert(key, stream.clone());
    shared.log_from(who, format_args!("New socket connection from {} ({who})", peer.ip()));
    let mine = shared.clone();
    let spawned = std::thread::Builder::new().name("ringmaster-conn".into()).stack_size(STACK).spawn(move || {
        Session::new(stream, peer, who, &mine).run();
        lock(&mine.conns).remove(&key);
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
