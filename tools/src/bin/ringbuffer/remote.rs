//! `--host`: another host's rings come from its ring master's LIST. This host's own
//! names are served from /dev/shm directly, with no daemon.

use std::time::Duration;

use daqflow::Error;
use daqflow::ringmaster;

use crate::rings::{Client, RingStatus};

/// Whether `host` names this host (then /dev/shm is read directly).
pub fn is_local(host: &str) -> bool {
    if matches!(host, "localhost" | "127.0.0.1" | "::1" | "localhost.localdomain") {
        return true;
    }
    let Some(me) = hostname() else { return false };
    let short = |h: &str| h.split('.').next().unwrap_or(h).to_ascii_lowercase();
    host.eq_ignore_ascii_case(&me) || (!host.contains('.') && short(host) == short(&me))
}

fn hostname() -> Option<String> {
    nix::unistd::gethostname().ok()?.into_string().ok()
}

/// Bounds finding the ring master through the port manager, connecting, and the LIST.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Every ring of `host`, as its ring master lists them (sorted by name). The LIST
/// carries no owners, slots or commands.
pub fn status(host: &str) -> Result<Vec<RingStatus>, Error> {
    let mut ringmaster = ringmaster::Client::locate(host, None, TIMEOUT)?;
    let rings = ringmaster.list()?;
    Ok(rings
        .into_iter()
        .map(|(name, u)| RingStatus {
            name,
            owner: None,
            data_bytes: u.data_bytes,
            free: u.put_space,
            max_consumers: u.max_consumers,
            producer_pid: u.producer_pid,
            max_backlog: u.max_get,
            min_backlog: u.min_get,
            clients: u
                .consumers
                .into_iter()
                .map(|(pid, backlog)| Client { slot: None, pid, backlog, command: None })
                .collect(),
            // Another host's processes cannot be looked at.
            producer_may_lose_data: false,
        })
        .collect())
}
