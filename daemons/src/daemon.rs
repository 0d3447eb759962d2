//! What both daemons (daqportmgr and ringmaster) share: their main, the descriptor limit,
//! signals as events, the log file and a listening socket.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use mio::net::TcpListener;
use nix::errno::Errno;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{self, AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, sockopt};

use crate::log::Log;
use crate::statefiles;
use daqflow::error::{Error, Result};

/// A daemon holds a connection (a descriptor) per client; the default soft limit of 1024
/// is below what the protocol needs with the default range of 1000 ports.
pub fn raise_fd_limit() {
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

/// SIGTERM and SIGINT (stop) and SIGHUP (reopen the log, for logrotate) become readable
/// events on a signalfd, so the loop handles them between requests. Call it before any
/// thread starts, so every thread inherits the mask.
pub fn block_signals() -> Result<SignalFd> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGTERM);
    mask.add(Signal::SIGINT);
    mask.add(Signal::SIGHUP);
    mask.thread_block().map_err(|e| Error::sys(e, "cannot block SIGTERM"))?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| Error::sys(e, "cannot create a signalfd"))
}

/// The log at `path` (its directory created), or stderr when there is none or it cannot
/// be opened: a daemon logs somewhere rather than not starting.
pub fn open_log(path: Option<&Path>) -> Log {
    let Some(path) = path else {
        return Log::stderr();
    };
    let opened = statefiles::make_parent(path)
        .map_err(|e| e.to_string())
        .and_then(|()| Log::file(path).map_err(|e| e.to_string()));
    opened.unwrap_or_else(|why| {
        let mut log = Log::stderr();
        log.line(format_args!("cannot open log file {} ({why}); logging to stderr", path.display()));
        log
    })
}

/// A non-blocking listener on `addr`, with SO_REUSEADDR, IPv6 sockets IPv6 only.
pub fn listen_on(addr: SocketAddr) -> std::result::Result<TcpListener, Errno> {
    let family = if addr.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    let fd: OwnedFd = socket::socket(family, SockType::Stream, SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC, None)?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    if addr.is_ipv6() {
        // IPv4 clients arrive on the IPv4 socket with their real address, never as
        // ::ffff:127.0.0.1, which would not count as local.
        socket::setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    }
    socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    socket::listen(&fd, Backlog::new(1024).unwrap_or(Backlog::MAXCONN))?;
    Ok(TcpListener::from_std(std::net::TcpListener::from(fd)))
}

/// Exit status for usage errors, as the legacy daemons used.
const USAGE_ERROR: u8 = 255;

/// A daemon's `main`: `parse` gives its configuration (`None` for --help, which prints
/// `usage`), `run` serves until stopped. Wrong arguments print why and `usage` and exit
/// with 255; a failure to run prints why and exits with 1.
pub fn main<C>(
    name: &str,
    usage: &str,
    parse: fn(&[String]) -> std::result::Result<Option<C>, String>,
    run: fn(&C) -> Result<()>,
) -> std::process::ExitCode {
    use std::process::ExitCode;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match parse(&args) {
        Ok(Some(config)) => config,
        Ok(None) => {
            print!("{usage}");
            return ExitCode::SUCCESS;
        }
        Err(why) => {
            eprintln!("{name}: {why}\n\n{usage}");
            return ExitCode::from(USAGE_ERROR);
        }
    };
    match run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}
