//! ringmaster: the ring master daemon, a drop-in for NSCLDAQ's RingMaster.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use daqflow_daemons::ringmaster::access::{Access, Rule};
use daqflow_daemons::ringmaster::readers::RemoteRings;
use daqflow_daemons::ringmaster::server::{self, Config};

const USAGE: &str = "\
Usage: ringmaster [--listen address]... [--allow-remote rule]... [--remote-rings which]
                  [--stall-timeout seconds] [--portmgr-port port] [--log file]
                  [--max-connections n] [--max-per-host n] [--idle-timeout seconds]

Tracks which local processes use which ring slots and frees a dead client's slots when
its connection closes; lists the rings for anyone; streams a ring's data to allowed hosts
(the NSCLDAQ RingMaster protocol): to a user of this host the rings that user may
read, to other hosts the rings every user may read. Gets its port from the local port
manager as service RingMaster. Runs in the foreground until SIGTERM or SIGINT; SIGHUP
reopens the log.

  --listen address     listen on this address only (repeatable; default every IPv4 and
                       IPv6 address: other hosts must reach it for LIST and REMOTE).
                       127.0.0.1 is always added: local clients connect there.
  --allow-remote rule  who may ask for ring data (REMOTE); repeatable, the first one
                       replaces the default. A rule is an address, a CIDR network
                       (10.1.0.0/16, fd00::/8), loopback, local-subnets (the networks
                       of this host's interfaces), any, or none.
                       Default: loopback local-subnets.
  --remote-rings which which rings other hosts may read: world-readable (default:
                       those whose mode lets every user read them) or all.
  --stall-timeout seconds
                       drop a REMOTE reader that takes nothing for this long while
                       data waits for it, freeing its slot (default 30).
  --portmgr-port port  the local port manager's port (default: as in its listen.port
                       file, else 30000)
  --log file           log file (default /var/log/nscldaq/ringmaster.log; - for stderr)
  --max-connections n  connections open at once (default 4096; a quarter per user of
                       this host but root, half for all other hosts together); more
                       are closed at once
  --max-per-host n     connections open at once from one other host (default 64)
  --idle-timeout seconds
                       close a connection from another host that has sent nothing
                       for this long, unless it carries a stream (default 60; 0: never)
  --help               this text
";

fn parse(args: &[String]) -> Result<Option<Config>, String> {
    let mut config = Config::default();
    let mut access: Option<Access> = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        // One dash or two, like daqportmgr.
        let switch = arg.strip_prefix('-').map(|s| s.strip_prefix('-').unwrap_or(s));
        let mut value = |name: &str| args.next().cloned().ok_or_else(|| format!("--{name} needs a value"));
        match switch {
            Some("help" | "h") => return Ok(None),
            Some("listen") => {
                let text = value("listen")?;
                let ip: IpAddr = text.parse().map_err(|_| format!("--listen {text:?} is not an IP address"))?;
                config.listen.push(ip);
            }
            Some("allow-remote") => {
                let text = value("allow-remote")?;
                let rules = &mut access.get_or_insert_with(|| Access { rules: Vec::new() }).rules;
                if text != "none" {
                    rules.push(text.parse::<Rule>().map_err(|e| format!("--allow-remote: {e}"))?);
                }
            }
            Some("remote-rings") => {
                let text = value("remote-rings")?;
                config.remote_rings = text.parse::<RemoteRings>().map_err(|e| format!("--remote-rings: {e}"))?;
            }
            Some("stall-timeout") => {
                let text = value("stall-timeout")?;
                let seconds = text.parse::<f64>().ok().filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0);
                let seconds = seconds.ok_or_else(|| format!("--stall-timeout {text:?} is not a number of seconds"))?;
                config.stall_timeout = std::time::Duration::from_secs_f64(seconds);
            }
            Some("portmgr-port") => {
                let text = value("portmgr-port")?;
                let port = text.parse::<u16>().ok().filter(|&p| p > 0);
                config.portmgr_port =
                    Some(port.ok_or_else(|| format!("--portmgr-port {text:?} is not a port number"))?);
            }
            Some("log") => {
                let file = value("log")?;
                config.log_file = if file == "-" { None } else { Some(PathBuf::from(file)) };
            }
            Some("max-connections") => config.max_connections = count("max-connections", &value("max-connections")?)?,
            Some("max-per-host") => config.max_per_host = count("max-per-host", &value("max-per-host")?)?,
            Some("idle-timeout") => {
                let text = value("idle-timeout")?;
                let seconds = text.parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0 && *s <= 86_400.0);
                let seconds = seconds.ok_or_else(|| format!("--idle-timeout {text:?} is not a number of seconds"))?;
                config.idle_timeout = (seconds > 0.0).then(|| std::time::Duration::from_secs_f64(seconds));
            }
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    if let Some(access) = access {
        config.access = access;
    }
    Ok(Some(config))
}

/// A limit: a positive decimal number.
fn count(name: &str, text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("--{name} {text:?} is not a positive number")),
    }
}

fn main() -> ExitCode {
    daqflow_daemons::daemon::main("ringmaster", USAGE, parse, server::run)
}
