//! What every connection thread of the ring master shares with the daemon's event loop:
//! the log (and how much each client may put in it), the connection table and its counts,
//! the access rules, the streams and the known rings.

use std::collections::HashMap;
use std::net::TcpStream;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::access::Access;
use super::known::Known;
use super::noise::{GLOBAL_RATE, Noise, Verdict};
use super::peer::{Key, Who};
use super::readers::RemoteRings;
use super::streams::Streams;
use crate::log::Log;

/// Connections open per remote host and per user of this host but root, and from all
/// other hosts together (waiting or served).
#[derive(Debug, Default)]
pub struct Counts {
    pub per_key: HashMap<Key, usize>,
    pub remote: usize,
}

/// What every connection thread shares with the daemon.
pub struct Shared {
    pub log: Mutex<Log>,
    /// How many lines each client may cause.
    pub noise: Mutex<Noise>,
    pub stop: AtomicBool,
    pub access: Access,
    pub remote_rings: RemoteRings,
    pub stall_timeout: Duration,
    pub idle_timeout: Option<Duration>,
    /// Every connection with a thread, so a stop can wake its thread.
    pub conns: Mutex<HashMap<u64, Arc<TcpStream>>>,
    /// Connections open per remote host, per user, and from other hosts together.
    pub hosts: Mutex<Counts>,
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
            Verdict::Write { suppressed: 0, suppressed_globally: 0 }
        } else {
            lock(&self.noise).admit(who.key(), Instant::now())
        };
        if let Verdict::Write { suppressed, suppressed_globally } = verdict {
            let mut log = lock(&self.log);
            if suppressed_globally > 0 {
                log.line(format_args!("{}", global_summary(suppressed_globally)));
            }
            if suppressed > 0 {
                log.line(format_args!("{suppressed} lines caused by {who} were not logged (too many)"));
            }
            log.line(message);
            log.flush();
        }
    }

    /// Logs how many lines each client that went over its share lost.
    pub fn log_suppressed(&self) {
        let globally = lock(&self.noise).global_due(Instant::now());
        if let Some(n) = globally {
            self.log(format_args!("{}", global_summary(n)));
        }
        let due = lock(&self.noise).due(Instant::now());
        for (key, n) in due {
            let whose = key.map_or_else(|| "clients beyond the tracked ones".to_string(), |k| format!("{k}"));
            self.log(format_args!("{n} lines caused by {whose} were not logged (too many)"));
        }
    }
}

/// The line that reports what the log's global budget left out.
fn global_summary(n: u64) -> String {
    format!("{n} lines suppressed: all clients together went over the log's limit of {GLOBAL_RATE} lines a second")
}

/// A poisoned lock only means another thread panicked while logging or bookkeeping;
/// the data is still usable.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
