//! daqportmgr: the port manager daemon, a drop-in for NSCLDAQ's DaqPortManager.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use daqflow_daemons::portmgr::server::{self, Config};

const USAGE: &str = "\
Usage: daqportmgr [-listen port] [-ports low-high] [-log file] [-portfile file]
                  [-pidfile file] [-bind address]... [-no-user-check]
                  [-max-per-connection n] [-max-per-user n] [-max-connections n]
                  [-max-buffered bytes]

Hands out TCP listen ports to local servers and lists them for anyone (the NSCLDAQ port
manager protocol). Runs in the foreground until SIGTERM or SIGINT.

  -listen port      port to listen on (default 30000; 0 lets the system pick one)
  -ports low-high   the ports handed out (default 30001-31000)
  -log file         log file (default /var/log/nscldaq/portmanager.log; - for stderr)
  -portfile file    where the listen port is written (default
                    /var/tmp/daqportmgr/listen.port); ports.txt goes next to it
  -pidfile file     pid file (default /var/run/nscldaq/daqportmgr.pid)
  -bind address     listen on this address only (repeatable; default every IPv4 and
                    IPv6 address)
  -no-user-check    accept any user name in GIMME requests, as the legacy server did
                    (by default the name must be the owner of the client's socket)
  -max-per-connection n  ports one connection may hold (default 64)
  -max-per-user n   ports one user may hold, counted by the uid the user check
                    accepted, or that owns the socket (default 256)
  -max-connections n  connections served at once (default 4096; other hosts
                    together half of them)
  -max-buffered bytes  unsent replies held in all (default 67108864); past it the
                    clients that stopped reading longest ago are disconnected
  --help            this text
";

fn parse(args: &[String]) -> Result<Option<Config>, String> {
    let mut config = Config::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        // Legacy switches have one dash; accept two as well.
        let switch = arg.strip_prefix('-').map(|s| s.strip_prefix('-').unwrap_or(s));
        let mut value = |name: &str| args.next().cloned().ok_or_else(|| format!("-{name} needs a value"));
        match switch {
            Some("help" | "h") => return Ok(None),
            Some("no-user-check") => config.verify_users = false,
            Some("listen") => {
                let text = value("listen")?;
                config.listen_port = text.parse().map_err(|_| format!("-listen {text:?} is not a port number"))?;
            }
            Some("ports") => config.range = value("ports")?.parse()?,
            Some("log") => {
                let file = value("log")?;
                config.log_file = if file == "-" { None } else { Some(PathBuf::from(file)) };
            }
            Some("portfile") => config.port_file = PathBuf::from(value("portfile")?),
            Some("pidfile") => config.pid_file = PathBuf::from(value("pidfile")?),
            Some("bind") => {
                let text = value("bind")?;
                let ip: IpAddr = text.parse().map_err(|_| format!("-bind {text:?} is not an IP address"))?;
                config.bind.push(ip);
            }
            Some("max-per-connection") => config.limits.per_connection = count(&value("max-per-connection")?)?,
            Some("max-per-user") => config.limits.per_user = count(&value("max-per-user")?)?,
            Some("max-connections") => config.max_connections = count(&value("max-connections")?)?,
            Some("max-buffered") => config.max_buffered = count(&value("max-buffered")?)?,
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    if config.range.contains(config.listen_port) {
        return Err(format!("the listen port {} is inside the port range {}", config.listen_port, config.range));
    }
    Ok(Some(config))
}

/// A limit: a positive decimal number.
fn count(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{text:?} is not a positive number")),
    }
}

fn main() -> ExitCode {
    daqflow_daemons::daemon::main("daqportmgr", USAGE, parse, server::run)
}
