//! What `list` and `status` report, gathered from this host's /dev/shm, or from another
//! host's ring master.

use std::os::unix::fs::MetadataExt;

use daqflow::Error;
use daqflow::ring::{self, Usage};
use daqflow_tools::glob;

use crate::args::Owners;

/// One client of a ring, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// Unknown for remote rings (the ring master's LIST gives pids only).
    pub slot: Option<u32>,
    pub pid: i32,
    pub backlog: u64,
    /// The process's name (`/proc/PID/comm`), for local clients that still exist.
    pub command: Option<String>,
}

/// One ring's usage, NSCLDAQ's figures plus its owner and its clients' names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingStatus {
    pub name: String,
    /// The user owning /dev/shm/NAME (unknown for remote rings).
    pub owner: Option<String>,
    pub data_bytes: u64,
    pub free: u64,
    pub max_consumers: u32,
    pub producer_pid: i32,
    pub max_backlog: u64,
    pub min_backlog: u64,
    pub clients: Vec<Client>,
    /// The producer is a program built with FRIB's Rust crate, whose free space lacks
    /// the one-byte gap: it can fill the ring, which then looks empty (see `frib`).
    pub producer_may_lose_data: bool,
}

/// A ring that could not be read (corrupt, unreadable): reported, never fatal.
#[derive(Debug, Clone)]
pub struct Failure {
    pub name: String,
    pub error: Error,
}

/// Names of this host's rings that match `pattern`.
pub fn local_names(pattern: &str) -> Result<Vec<String>, Error> {
    Ok(ring::list()?.into_iter().filter(|n| glob::matches(pattern, n)).collect())
}

fn user_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(user)) => user.name,
        _ => uid.to_string(),
    }
}

fn owner_of(name: &str) -> Option<String> {
    std::fs::metadata(format!("/dev/shm/{name}")).ok().map(|m| user_name(m.uid()))
}

/// The user running this command, who `status` shows by default.
pub fn me() -> String {
    user_name(nix::unistd::geteuid().as_raw())
}

/// `text` safe to print on a terminal: every control character (an escape sequence's
/// ESC among them) as `?`, as ps shows them. Any user can name a process anything
/// (/proc/PID/comm) and attach it to a world-writable ring, and /dev/shm names are
/// anyone's choice: printed raw, they could rewrite the operator's screen or worse.
pub fn printable(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

pub fn command_of(pid: i32) -> Option<String> {
    if pid <= 0 {
        return None;
    }
    // Lossy: a name that is not UTF-8 (anyone can set any bytes) still shows, as U+FFFD.
    let comm = std::fs::read(format!("/proc/{pid}/comm")).ok()?;
    Some(String::from_utf8_lossy(&comm).trim_end_matches('\n').to_string())
}

fn from_usage(name: &str, owner: Option<String>, u: Usage) -> RingStatus {
    RingStatus {
        name: name.to_string(),
        owner,
        data_bytes: u.data_bytes,
        free: u.put_space,
        max_consumers: u.max_consumers,
        producer_pid: u.producer_pid,
        max_backlog: u.max_get,
        min_backlog: u.min_get,
        clients: u
            .consumers
            .iter()
            .map(|c| Client { slot: Some(c.slot), pid: c.pid, backlog: c.backlog, command: command_of(c.pid) })
            .collect(),
        producer_may_lose_data: !ring::producer_is_daqflow(name).unwrap_or(false)
            && crate::frib::is_frib_program(u.producer_pid),
    }
}

/// Usage of this host's rings matching `pattern` and owned by `owners`, sorted by name.
/// A ring removed meanwhile is left out; one that cannot be read is a failure.
pub fn local_status(pattern: &str, owners: &Owners) -> Result<(Vec<RingStatus>, Vec<Failure>), Error> {
    let me = me();
    let wanted = |owner: &Option<String>| match owners {
        Owners::All => true,
        Owners::Me => owner.as_deref() == Some(me.as_str()),
        Owners::Users(users) => owner.as_ref().is_some_and(|o| users.contains(o)),
    };
    let (mut rings, mut failures) = (Vec::new(), Vec::new());
    for name in local_names(pattern)? {
        let owner = owner_of(&name);
        if !wanted(&owner) {
            continue;
        }
        match ring::usage(&name) {
            Ok(u) => rings.push(from_usage(&name, owner, u)),
            Err(e) if e.errno() == libc::ENOENT => {}
            Err(error) => failures.push(Failure { name, error }),
        }
    }
    Ok((rings, failures))
}
