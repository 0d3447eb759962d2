//! Which local proxy ring a consumer of `tcp://host/ring` may read.
//!
//! The proxy's name is predictable, and /dev/shm lets anyone create any free name: another
//! user who makes and feeds it first would decide what every consumer of the URL reads.
//! So a proxy is read only when it belongs to a trusted account (see `crate::trust`:
//! root, a configured one, or the consumer's own user), nobody else can write it (a
//! world-writable ring can be overwritten in place by anyone), and its producer, if it
//! has one, is a daqflow feeder of a trusted account feeding this very ring into it.
//! Proxies are made mode 0600, so each user has its own unless it is root.
//!
//! The name NSCLDAQ uses, `<host>.<ring>`, comes first; when it is untrusted (or cannot
//! be opened) the consumer's own `<host>.<ring>.uid<uid>` is used instead. When both
//! are squatted the attach fails with `EPERM`, saying whose they are.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::spawn::{FEEDER_NAME, feeder_path};
use crate::error::{Error, Result};
use crate::ring;
use crate::trust::{Trust, describe_uid};

/// Where shm_open puts ring objects.
const SHM_DIR: &str = "/dev/shm";

pub use super::geometry::PROXY_MODE;

/// The proxy names to try for `ring` of `canonical_host`, in order.
pub fn candidates(canonical_host: &str, ring: &str) -> Result<[String; 2]> {
    let shared = super::url::proxy_name(canonical_host, ring)?;
    let own = format!("{shared}.uid{}", nix::unistd::geteuid().as_raw());
    crate::ring::validate_name(&own)?;
    Ok([shared, own])
}

/// Why the object named `proxy` must not be read, or `None` when its owner and mode are
/// trusted. An object a trusted account owns cannot be unlinked or renamed by anyone
/// else (/dev/shm is sticky), so what is found here stays what the name names.
pub fn untrusted_object(proxy: &str, trust: &Trust) -> Result<Option<String>> {
    let path = Path::new(SHM_DIR).join(proxy);
    let meta =
        std::fs::symlink_metadata(&path).map_err(|e| Error::io(&e, format!("cannot look at proxy ring {proxy}")))?;
    if !trust.uid(meta.uid()) {
        return Ok(Some(format!(
            "proxy ring {proxy} belongs to {}, an account this process does not trust",
            describe_uid(meta.uid())
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Ok(Some(format!(
            "proxy ring {proxy} (of {}) is writable by {} (mode {:o}): anyone there could write what you read",
            describe_uid(meta.uid()),
            if meta.mode() & 0o002 != 0 { "every user" } else { "its group" },
            meta.mode() & 0o777
        )));
    }
    Ok(None)
}

/// Who feeds a proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feeder {
    /// No live producer: start a feeder.
    None,
    /// A daqflow feeder of a trusted account, for this ring and proxy.
    Trusted,
    /// Anything else: why.
    Untrusted(String),
}

/// Who feeds `proxy` with `ring`'s data.
pub fn feeder_of(proxy: &str, ring: &str, trust: &Trust) -> Result<Feeder> {
    let pid = ring::usage(proxy)?.producer_pid;
    if pid <= 0 {
        return Ok(Feeder::None);
    }
    let proc = Path::new("/proc").join(pid.to_string());
    let untrusted =
        |why: String| Ok(Feeder::Untrusted(format!("the producer of proxy ring {proxy} (pid {pid}) {why}")));
    let Some(uid) = effective_uid(&proc) else {
        // Gone since the usage was read: nobody feeds it.
        return if proc.exists() { untrusted("cannot be looked at".into()) } else { Ok(Feeder::None) };
    };
    if !trust.uid(uid) {
        return untrusted(format!("runs as {}, an account this process does not trust", describe_uid(uid)));
    }
    if !is_feeder_program(&proc) {
        return untrusted(format!("is not the daqflow feeder ({FEEDER_NAME})"));
    }
    // A feeder's last arguments are `-- host ring proxy` (see `spawn::launch`).
    let cmdline = std::fs::read(proc.join("cmdline")).unwrap_or_default();
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).filter(|a| !a.is_empty()).collect();
    let feeds = args.len() >= 4
        && args[args.len() - 4] == b"--"
        && args[args.len() - 2] == ring.as_bytes()
        && args[args.len() - 1] == proxy.as_bytes();
    if !feeds {
        return untrusted(format!("is a feeder, but not of ring {ring} into this proxy"));
    }
    Ok(Feeder::Trusted)
}

/// The effective uid of the process at `proc` (/proc/PID), if it still exists.
fn effective_uid(proc: &Path) -> Option<u32> {
    let status = std::fs::read_to_string(proc.join("status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Whether the process at `proc` runs the feeder program: its executable when we may
/// see it (our own processes, or any as root), else its command name.
fn is_feeder_program(proc: &Path) -> bool {
    match std::fs::read_link(proc.join("exe")) {
        Ok(exe) => {
            exe.file_name().is_some_and(|n| n == FEEDER_NAME)
                || feeder_path().ok().and_then(|p| std::fs::canonicalize(p).ok()).is_some_and(|ours| ours == exe)
        }
        Err(_) => std::fs::read_to_string(proc.join("comm")).is_ok_and(|comm| comm.trim_end() == FEEDER_NAME),
    }
}
