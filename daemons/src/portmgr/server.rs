//! The daqportmgr daemon: listeners, the event loop and the daemon's life cycle.
//!
//! One thread and one readiness loop (mio, edge-triggered) serve every connection: the
//! pool is a single shared structure that must change in a strict order (LIFO reuse), and
//! an idle connection then costs a few hundred bytes instead of a thread. Each loop turn
//! first answers every request that arrived, then rewrites ports.txt once if anything
//! changed, and only then writes the replies, so a client that has read `OK port` finds
//! its port in ports.txt, and a burst of requests costs one file rewrite.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;

use super::listing;
use super::peercred::OwnerLookup;
use super::pool::{Pool, PortRange};
use super::scanner::Scanner;
use super::sdnotify;
use super::session::{Conn, Core, Key, Limits, is_local};
use crate::daemon::{block_signals, listen_on, open_log, raise_fd_limit};
use crate::log::Level;
use crate::network::network_of;
use crate::statefiles::{self, InstanceLock, SwapFile};
use daqflow::error::{Error, Result};

/// The legacy defaults (the port and its file are the library's: clients read them).
pub use daqflow::portmgr::protocol::{DEFAULT_LISTEN_PORT, DEFAULT_PORT_FILE};
pub const DEFAULT_PID_FILE: &str = "/var/run/nscldaq/daqportmgr.pid";
pub const DEFAULT_LOG_FILE: &str = "/var/log/nscldaq/portmanager.log";
/// ports.txt lives next to listen.port (with the defaults, where the legacy server put it).
pub const USAGE_FILE_NAME: &str = "ports.txt";

#[derive(Debug, Clone)]
pub struct Config {
    /// 0 lets the kernel choose (the chosen port is written to the port file).
    pub listen_port: u16,
    pub range: PortRange,
    /// Addresses to listen on; empty means every IPv4 and IPv6 address.
    pub bind: Vec<IpAddr>,
    /// `None` logs to stderr.
    pub log_file: Option<PathBuf>,
    pub port_file: PathBuf,
    pub pid_file: PathBuf,
    /// Refuse a GIMME whose user does not own the client's socket.
    pub verify_users: bool,
    /// Ports one connection and one user may hold.
    pub limits: Limits,
    /// Connections served at once; past it a new one is closed at once.
    pub max_connections: usize,
    /// Bytes held in unsent replies by all connections together (each shared LIST
    /// snapshot counted once); past it the connections stalled longest are dropped.
    pub max_buffered: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen_port: DEFAULT_LISTEN_PORT,
            range: PortRange::DEFAULT,
            bind: Vec::new(),
            log_file: Some(PathBuf::from(DEFAULT_LOG_FILE)),
            port_file: PathBuf::from(DEFAULT_PORT_FILE),
            pid_file: PathBuf::from(DEFAULT_PID_FILE),
            verify_users: true,
            limits: Limits::DEFAULT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_buffered: DEFAULT_MAX_BUFFERED,
        }
    }
}

const SIGNAL: Token = Token(0);
/// The scanner thread has finished searches.
const SEARCHES: Token = Token(1);
const FIRST_LISTENER: usize = 2;
/// Connection keys start above every listener token and are never reused, so a stale
/// event can never reach a newer connection.
const FIRST_CONNECTION: Key = 64;
/// How soon to retry accepting after running out of file descriptors.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// At most one "cannot accept" log line per listener per this interval: the retries
/// above would otherwise log ten lines a second for as long as descriptors run short.
const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(1);
/// The kernel's send buffer per connection (it doubles this for its own bookkeeping).
const SEND_BUFFER: usize = 64 * 1024;
/// Far above what a DAQ host needs (one connection per server and per lookup in
/// progress), far below what would exhaust the daemon's descriptors or memory.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Connections from one remote host (an IPv4 address or an IPv6 /64): it may only LIST,
/// which needs one connection at a time, and no host may fill the table that local
/// servers need for their ports.
pub const MAX_PER_REMOTE_HOST: usize = 64;
/// Connections all remote hosts together may hold: half of the total. Each host's cap
/// alone let 64 hosts (or one site's 64 IPv6 /64s) hold every connection, idle for as
/// long as they liked, and no local server could get a port.
fn remote_share(max_connections: usize) -> usize {
    (max_connections / 2).max(1)
}

/// Connections open at once owned by one local uid other than root's: the global cap
/// alone let one user take every connection and lock everyone else out.
pub const MAX_PER_LOCAL_USER: usize = 256;
/// A LIST of a full default pool with the longest names is about 0.5 MB: this is over a
/// hundred distinct ones in flight.
pub const DEFAULT_MAX_BUFFERED: usize = 64 << 20;

/// Runs the daemon until SIGTERM or SIGINT. Fails before touching any file when the
/// listen port is taken or another instance holds the state files.
pub fn run(config: &Config) -> Result<()> {
    raise_fd_limit();
    let signals = block_signals()?;
    let listeners = bind_listeners(config)?;
    let listen_port = listeners.first().and_then(|l| l.local_addr().ok()).map_or(config.listen_port, |a| a.port());
    // The daemon may run as root: its directory must be one no one else can plant
    // names in, and every file in it is opened through the directory, never a symlink.
    let (state_dir, port_file_name) = statefiles::state_dir_of(&config.port_file)?;
    let mut lock = InstanceLock::acquire(&config.pid_file, &state_dir)?;
    // Only now, holding the locks, may this daemon open (and create) state files.
    let mut usage_file = SwapFile::new(state_dir.try_clone()?, USAGE_FILE_NAME)?;
    let mut log = open_log(config.log_file.as_deref());
    // Without user verification the owner is still asked where the kernel can tell (it
    // bounds what one user holds and how many connections it opens), but not required.
    let owners = if config.verify_users {
        Some(OwnerLookup::new().map_err(|e| {
            Error::io(&e, "cannot open the sock_diag socket that user verification needs (see -no-user-check)")
        })?)
    } else {
        OwnerLookup::new().ok()
    };
    lock.write_pid()?;
    state_dir.write_atomic(&port_file_name, format!("{listen_port}\n").as_bytes())?;
    usage_file.replace(b"")?;
    let addresses: Vec<String> = listeners.iter().filter_map(|l| l.local_addr().ok()).map(|a| a.to_string()).collect();
    log.entry(
        Level::Notice,
        format_args!(
            "daqportmgr {} started (pid {}): listening on {}, ports {}, user verification {}",
            env!("CARGO_PKG_VERSION"),
            std::process::id(),
            addresses.join(" "),
            config.range,
            if config.verify_users { "on" } else { "off" }
        ),
    );
    log.flush();

    let core = Core::new(Pool::new(config.range), log, config.limits);
    let mut daemon = Daemon::new(listeners, signals, core, usage_file)?;
    daemon.core.verify_users = config.verify_users;
    if config.verify_users {
        let waker = Waker::new(daemon.poll.registry(), SEARCHES)
            .map_err(|e| Error::io(&e, "cannot create the event loop's waker"))?;
        let scanner = Scanner::start(waker, PathBuf::from("/proc"))
            .map_err(|e| Error::io(&e, "cannot start the thread that checks clients' processes"))?;
        daemon.core.scanner = Some(scanner);
    }
    daemon.owners = owners;
    daemon.max_connections = config.max_connections;
    daemon.max_buffered = config.max_buffered;
    daemon.log_path = config.log_file.clone();
    // Readiness is worth a log line when it fails, never a reason to stop.
    if let Err(e) = sdnotify::notify(&format!("READY=1\nMAINPID={}", std::process::id())) {
        daemon.core.log.entry(Level::Error, format_args!("cannot notify systemd: {e}"));
    }
    let result = daemon.serve();
    let _ = sdnotify::notify("STOPPING=1");
    daemon.shut_down();
    lock.remove_pid_file();
    result
}

fn bind_listeners(config: &Config) -> Result<Vec<TcpListener>> {
    let explicit = !config.bind.is_empty();
    let addresses = if explicit {
        config.bind.clone()
    } else {
        vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED), IpAddr::V6(Ipv6Addr::UNSPECIFIED)]
    };
    let mut listeners: Vec<TcpListener> = Vec::new();
    let mut port = config.listen_port;
    for ip in addresses {
        match listen_on(SocketAddr::new(ip, port)) {
            Ok(listener) => {
                // With -listen 0 every address shares the port the first one got.
                if let Ok(addr) = listener.local_addr() {
                    port = addr.port();
                }
                listeners.push(listener);
            }
            // A host without IPv6 still serves IPv4 by default.
            Err(e) if !explicit && ip.is_ipv6() && matches!(e, Errno::EAFNOSUPPORT | Errno::EADDRNOTAVAIL) => {}
            Err(Errno::EADDRINUSE) => {
                return Err(Error::new(
                    libc::EADDRINUSE,
                    format!(
                        "cannot listen on {}: the port is in use (is another daqportmgr running?)",
                        SocketAddr::new(ip, port)
                    ),
                ));
            }
            Err(e) => return Err(Error::sys(e, format!("cannot listen on {}", SocketAddr::new(ip, port)))),
        }
    }
    Ok(listeners)
}

struct Daemon {
    poll: Poll,
    listeners: Vec<TcpListener>,
    signals: SignalFd,
    conns: HashMap<Key, Conn>,
    next_key: Key,
    /// Connections with replies to write or to close, in this loop turn.
    queue: Vec<Key>,
    accept_paused: bool,
    /// Per listener: when a failed accept was last logged, and how many since were not.
    accept_failures: Vec<(Option<Instant>, u64)>,
    /// The log file to reopen on SIGHUP (`None`: logging to stderr).
    log_path: Option<PathBuf>,
    usage_file: SwapFile,
    /// ports.txt's contents, rebuilt in place on every change.
    usage_buf: Vec<u8>,
    /// `None` when user verification is switched off.
    owners: Option<OwnerLookup>,
    /// Loop turns so far: orders stalled connections.
    turn: u64,
    max_connections: usize,
    max_buffered: usize,
    /// Connections open per remote (not local) host: per IPv4 address or IPv6 /64
    /// (`network_of`), so a host cannot escape the cap by rotating addresses.
    remote_hosts: HashMap<IpAddr, usize>,
    /// Connections open from all remote hosts together (at most `remote_share`).
    remote_open: usize,
    /// Connections open per local socket owner (root's are not counted).
    local_users: HashMap<u32, usize>,
    core: Core,
}

impl Daemon {
    fn new(mut listeners: Vec<TcpListener>, signals: SignalFd, core: Core, usage_file: SwapFile) -> Result<Daemon> {
        let poll = Poll::new().map_err(|e| Error::io(&e, "cannot create the event loop"))?;
        let registry = poll.registry();
        registry
            .register(&mut SourceFd(&signals.as_raw_fd()), SIGNAL, Interest::READABLE)
            .map_err(|e| Error::io(&e, "cannot watch the signalfd"))?;
        for (i, listener) in listeners.iter_mut().enumerate() {
            registry
                .register(listener, Token(FIRST_LISTENER + i), Interest::READABLE)
                .map_err(|e| Error::io(&e, "cannot watch a listening socket"))?;
        }
        Ok(Daemon {
            poll,
            accept_failures: vec![(None, 0); listeners.len()],
            log_path: None,
            listeners,
            signals,
            conns: HashMap::new(),
            next_key: FIRST_CONNECTION,
            queue: Vec::new(),
            accept_paused: false,
            usage_file,
            usage_buf: Vec::new(),
            owners: None,
            turn: 0,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_buffered: DEFAULT_MAX_BUFFERED,
            remote_hosts: HashMap::new(),
            remote_open: 0,
            local_users: HashMap::new(),
            core,
        })
    }

    /// The event loop; returns when a stop signal arrives.
    fn serve(&mut self) -> Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.accept_paused.then_some(ACCEPT_RETRY);
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::io(&e, "event loop failed"));
            }
            if self.accept_paused {
                self.accept_paused = false;
                for i in 0..self.listeners.len() {
                    self.accept(i);
                }
            }
            for event in events.iter() {
                match event.token() {
                    SIGNAL => {
                        // Edge-triggered: take every pending signal.
                        while let Ok(Some(info)) = self.signals.read_signal() {
                            match Signal::try_from(info.ssi_signo as i32) {
                                Ok(Signal::SIGHUP) => self.reopen_log(),
                                signal => {
                                    let name = signal.map_or("a signal", |s| s.as_str());
                                    self.core.log.entry(Level::Notice, format_args!("daqportmgr stopping on {name}"));
                                    return Ok(());
                                }
                            }
                        }
                    }
                    SEARCHES => self.searched(),
                    Token(t) if t < FIRST_CONNECTION => self.accept(t - FIRST_LISTENER),
                    Token(key) => {
                        if event.is_read_closed() || event.is_error() {
                            if let Some(conn) = self.conns.get_mut(&key) {
                                conn.peer_closed = true;
                            }
                        }
                        self.service(key)
                    }
                }
            }
            self.settle();
            self.shed();
            self.turn += 1;
            self.core.log.flush();
        }
    }

    fn accept(&mut self, index: usize) {
        let Some(listener) = self.listeners.get(index) else {
            return;
        };
        loop {
            match listener.accept() {
                Ok((mut stream, peer)) => {
                    if self.conns.len() >= self.max_connections {
                        let max = self.max_connections;
                        self.core.log_connection(
                            Level::Notice,
                            format_args!("connection from {} refused: {max} connections already", peer.ip()),
                        );
                        continue; // dropping the stream closes it
                    }
                    let host = network_of(peer.ip());
                    if self.remote_hosts.get(&host).is_some_and(|&open| open >= MAX_PER_REMOTE_HOST) {
                        self.core.log_connection(
                            Level::Notice,
                            format_args!("connection from {} refused: {MAX_PER_REMOTE_HOST} from {host}", peer.ip()),
                        );
                        continue;
                    }
                    if !is_local(peer.ip()) && self.remote_open >= remote_share(self.max_connections) {
                        let share = remote_share(self.max_connections);
                        self.core.log_connection(
                            Level::Notice,
                            format_args!("connection from {} refused: {share} from other hosts already", peer.ip()),
                        );
                        continue;
                    }
                    let key = self.next_key;
                    self.next_key += 1;
                    let local = match stream.local_addr() {
                        Ok(local) => local,
                        Err(_) => continue, // already gone
                    };
                    // Who the client is, asked now, while its socket is certainly still the
                    // client's: asked at a later GIMME, a client that had already closed
                    // would leave a TIME_WAIT socket the kernel reports as root's.
                    // Remote peers never get ports, so they are not looked up.
                    let socket = match self.owners.as_mut() {
                        Some(owners) if is_local(peer.ip()) => {
                            Some(owners.tcp_owner(peer, local).map_err(|e| e.to_string()))
                        }
                        Some(_) => Some(Err("not a local connection".to_string())),
                        None => None,
                    };
                    let user = match &socket {
                        Some(Ok(id)) if id.uid != 0 => Some(id.uid),
                        _ => None,
                    };
                    if let Some(uid) = user
                        && self.local_users.get(&uid).is_some_and(|&open| open >= MAX_PER_LOCAL_USER)
                    {
                        self.core.log_connection(
                            Level::Notice,
                            format_args!("connection from uid {uid} refused: {MAX_PER_LOCAL_USER} open"),
                        );
                        continue;
                    }
                    // Replies are single small writes; do not let Nagle hold one back
                    // behind an unacknowledged earlier reply.
                    let _ = stream.set_nodelay(true);
                    // The kernel would otherwise grow a stalled client's send buffer to
                    // megabytes (tcp_wmem's maximum) of replies it never reads: host memory
                    // any client can take. A LIST of a full pool still goes in a few turns.
                    let _ = nix::sys::socket::setsockopt(&stream, nix::sys::socket::sockopt::SndBuf, &SEND_BUFFER);
                    if let Err(e) =
                        self.poll.registry().register(&mut stream, Token(key), Interest::READABLE | Interest::WRITABLE)
                    {
                        self.core.log.entry(Level::Error, format_args!("cannot watch the connection from {peer}: {e}"));
                        continue;
                    }
                    self.core.log_connection(Level::Info, format_args!("Connection accepted from {}", peer.ip()));
                    if !is_local(peer.ip()) {
                        *self.remote_hosts.entry(host).or_insert(0) += 1;
                        self.remote_open += 1;
                    }
                    if let Some(uid) = user {
                        *self.local_users.entry(uid).or_insert(0) += 1;
                    }
                    self.conns.insert(key, Conn::new(stream, peer, socket, &self.core.budget));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted) => {}
                Err(e) => {
                    // Out of descriptors or memory: the backlog keeps the clients waiting;
                    // try again shortly instead of spinning.
                    if let Some((last, suppressed)) = self.accept_failures.get_mut(index) {
                        if last.is_none_or(|at| at.elapsed() >= ACCEPT_LOG_INTERVAL) {
                            let more = if *suppressed > 0 {
                                format!(" ({suppressed} more failures not logged)")
                            } else {
                                String::new()
                            };
                            self.core
                                .log
                                .entry(Level::Error, format_args!("cannot accept a connection ({e}); retrying{more}"));
                            *last = Some(Instant::now());
                            *suppressed = 0;
                        } else {
                            *suppressed += 1;
                        }
                    }
                    self.accept_paused = true;
                    return;
                }
            }
        }
    }

    /// SIGHUP: logrotate has renamed the log file; write to a new one at the same path.
    fn reopen_log(&mut self) {
        let Some(path) = self.log_path.clone() else {
            return; // stderr (or the journal) needs no reopening
        };
        self.core.log.entry(Level::Notice, format_args!("reopening log file {} on SIGHUP", path.display()));
        match self.core.log.reopen(&path) {
            Ok(()) => self.core.log.entry(Level::Notice, format_args!("log file reopened on SIGHUP")),
            Err(e) => self.core.log.entry(
                Level::Error,
                format_args!("cannot reopen log file {} ({e}); still logging here", path.display()),
            ),
        }
        self.core.log.flush();
    }

    fn service(&mut self, key: Key) {
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        self.core.service(key, conn);
        if !conn.queued {
            conn.queued = true;
            self.queue.push(key);
        }
    }

    /// Answers the GIMMEs whose searches are done, and reads on behind them.
    fn searched(&mut self) {
        let done: Vec<_> = self.core.scanner.as_ref().map(|s| s.finished().collect()).unwrap_or_default();
        for done in done {
            let key = done.key;
            // Gone meanwhile (dropped, or closed): keys are never reused, nothing to answer.
            let Some(conn) = self.conns.get_mut(&key) else {
                continue;
            };
            self.core.searched(key, conn, done);
            self.service(key);
        }
    }

    /// The write phase: ports.txt first, then the replies; closes finished connections and
    /// resumes clients that were waiting to read their replies.
    fn settle(&mut self) {
        while !self.queue.is_empty() {
            if self.core.dirty {
                self.write_usage_file();
            }
            // The log, too, is complete before a client can act on a reply.
            self.core.log.flush();
            for key in std::mem::take(&mut self.queue) {
                let Some(conn) = self.conns.get_mut(&key) else {
                    continue;
                };
                conn.queued = false;
                let drained = match conn.flush() {
                    Ok(drained) => drained,
                    Err(_) => {
                        conn.discard_output();
                        self.core.end(conn);
                        true
                    }
                };
                conn.stalled_since = if drained { None } else { Some(conn.stalled_since.unwrap_or(self.turn)) };
                if drained && conn.closing {
                    self.remove(key);
                } else if drained && conn.throttled {
                    self.service(key);
                }
            }
        }
        if self.core.dirty {
            self.write_usage_file();
        }
    }

    /// Stops serving a connection (it closes when the returned value is dropped).
    fn remove(&mut self, key: Key) -> Option<Conn> {
        let mut conn = self.conns.remove(&key)?;
        let _ = self.poll.registry().deregister(&mut conn.stream);
        if !is_local(conn.peer().ip()) {
            self.remote_open -= 1;
        }
        let host = network_of(conn.peer().ip());
        if let Some(open) = self.remote_hosts.get_mut(&host) {
            *open -= 1;
            if *open == 0 {
                self.remote_hosts.remove(&host);
            }
        }
        if let (Some(scanner), Some(uid)) = (&self.core.scanner, conn.socket_owner()) {
            scanner.cancel(key, uid);
        }
        if let Some(uid) = conn.socket_owner().filter(|&uid| uid != 0)
            && let Some(open) = self.local_users.get_mut(&uid)
        {
            *open -= 1;
            if *open == 0 {
                self.local_users.remove(&uid);
            }
        }
        Some(conn)
    }

    /// Keeps the bytes held in unsent replies under `max_buffered`: clients that stopped
    /// reading longest ago are dropped (their ports released) until it is. Bounded memory
    /// keeps every other client's GIMME fast.
    fn shed(&mut self) {
        let max = self.max_buffered;
        if self.core.budget.held() <= max {
            return;
        }
        let mut stalled: Vec<(u64, Key)> =
            self.conns.iter().filter_map(|(&key, conn)| conn.stalled_since.map(|turn| (turn, key))).collect();
        stalled.sort_unstable();
        let mut dropped = 0usize;
        for (_, key) in stalled {
            if self.core.budget.held() <= max {
                break;
            }
            if let Some(mut conn) = self.remove(key) {
                conn.discard_output();
                self.core.end(&mut conn);
                dropped += 1;
            }
        }
        self.core.log.entry(
            Level::Notice,
            format_args!(
                "{dropped} connections that did not read their replies dropped: replies held past {max} bytes"
            ),
        );
        if self.core.dirty {
            self.write_usage_file();
        }
    }

    fn write_usage_file(&mut self) {
        self.core.dirty = false;
        listing::usage_file(
            self.core.pool.allocations().map(|a| (a.port, a.application.as_slice(), a.user.as_slice())),
            &mut self.usage_buf,
        );
        if let Err(e) = self.usage_file.replace(&self.usage_buf) {
            self.core.log.entry(Level::Error, format_args!("{e}"));
        }
    }

    /// Clean exit: every port released (and logged), ports.txt emptied.
    fn shut_down(&mut self) {
        for (_, mut conn) in self.conns.drain() {
            self.core.end(&mut conn);
        }
        if self.core.dirty {
            self.write_usage_file();
        }
        self.usage_file.remove_spare();
        self.core.log.entry(Level::Notice, format_args!("daqportmgr stopped"));
        self.core.log.flush();
    }
}
