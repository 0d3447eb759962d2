//! A bound on the log lines any one client can cause.
//!
//! Anyone who can reach the port can make the daemon log (a connection, a garbage line,
//! a hang-up: about 400 bytes), so a flood of garbage connections would fill the disk of
//! a root daemon. Each client (a user of this host, else an address or IPv6 /64) gets a
//! token bucket of lines; lines beyond it are counted, not written, and a summary line
//! per client says how many were dropped once a summary interval has passed.
//!
//! Per-client budgets alone do not bound the log: an IPv6 host has a /52 of /64s, each
//! a client of its own (about 1 MB/s of log from one host). So all clients' lines
//! together also draw from one global bucket; lines it refuses are counted once, and
//! reported as a summary line of their own.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::peer::Key;

/// Lines a client may cause in a burst.
const BURST: f64 = 60.0;
/// Lines per second a client may cause on average.
const RATE: f64 = 2.0;
/// At most one summary line per client this often.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(10);
/// Lines all clients together may cause in a burst: a host's every process attaching at
/// once (two lines each) fits.
const GLOBAL_BURST: f64 = 600.0;
/// Lines per second all clients together may cause on average (about 2 KB/s of log).
pub const GLOBAL_RATE: f64 = 20.0;
/// Clients tracked at once; beyond it idle (full) buckets are forgotten, and then all
/// new clients share one bucket.
const MAX_CLIENTS: usize = 4096;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    filled: Instant,
    suppressed: u64,
    since: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Bucket {
        Bucket { tokens: burst, filled: now, suppressed: 0, since: now }
    }

    /// Takes a token if there is one (refilled at `rate` up to `burst`); counts a drop otherwise.
    fn take(&mut self, burst: f64, rate: f64, now: Instant) -> bool {
        self.tokens = (self.tokens + now.saturating_duration_since(self.filled).as_secs_f64() * rate).min(burst);
        self.filled = now;
        if self.tokens < 1.0 {
            self.suppressed += 1;
            return false;
        }
        self.tokens -= 1.0;
        true
    }

    /// The drops counted, when there are some and a summary interval has passed.
    fn summary_due(&mut self, now: Instant) -> Option<u64> {
        if self.suppressed > 0 && now.saturating_duration_since(self.since) >= SUMMARY_INTERVAL {
            self.since = now;
            return Some(std::mem::take(&mut self.suppressed));
        }
        None
    }
}

#[derive(Debug)]
pub struct Noise {
    buckets: HashMap<Option<Key>, Bucket>,
    /// Every client's lines together.
    global: Bucket,
}

impl Default for Noise {
    fn default() -> Noise {
        Noise { buckets: HashMap::new(), global: Bucket::full(GLOBAL_BURST, Instant::now()) }
    }
}

/// What to do with a client's line.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Write it, after a summary of the `suppressed` lines of this client and the
    /// `suppressed_globally` lines of all clients dropped before it (when not 0).
    Write {
        suppressed: u64,
        suppressed_globally: u64,
    },
    Drop,
}

impl Noise {
    pub fn admit(&mut self, client: Key, now: Instant) -> Verdict {
        let key = self.slot_for(client, now);
        let bucket = self.buckets.entry(key).or_insert_with(|| Bucket::full(BURST, now));
        if !bucket.take(BURST, RATE, now) {
            return Verdict::Drop;
        }
        // The client's token is spent even when the global budget refuses: its line was
        // one of the flood.
        if !self.global.take(GLOBAL_BURST, GLOBAL_RATE, now) {
            return Verdict::Drop;
        }
        Verdict::Write {
            suppressed: std::mem::take(&mut bucket.suppressed),
            suppressed_globally: std::mem::take(&mut self.global.suppressed),
        }
    }

    /// Lines refused by the global budget, once a summary interval has passed since the
    /// last report (called now and then, so a flood that stopped is still reported).
    pub fn global_due(&mut self, now: Instant) -> Option<u64> {
        self.global.summary_due(now)
    }

    /// The summaries due: `(client, lines dropped)` for each client that has dropped
    /// lines for a summary interval (called now and then, so a client that went quiet
    /// still gets its summary). `None` is the shared bucket.
    pub fn due(&mut self, now: Instant) -> Vec<(Option<Key>, u64)> {
        self.buckets.iter_mut().filter_map(|(key, bucket)| Some((*key, bucket.summary_due(now)?))).collect()
    }

    fn slot_for(&mut self, client: Key, now: Instant) -> Option<Key> {
        if self.buckets.contains_key(&Some(client)) || self.buckets.len() < MAX_CLIENTS {
            return Some(client);
        }
        self.buckets.retain(|_, b| {
            b.suppressed > 0 || b.tokens + now.saturating_duration_since(b.filled).as_secs_f64() * RATE < BURST
        });
        if self.buckets.len() < MAX_CLIENTS { Some(client) } else { None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate_then_a_summary() {
        let mut noise = Noise::default();
        let start = Instant::now();
        let client = Key::User(7);
        let written = (0..100).filter(|_| noise.admit(client, start) != Verdict::Drop).count();
        assert_eq!(written, BURST as usize);
        assert_eq!(
            noise.admit(Key::User(8), start),
            Verdict::Write { suppressed: 0, suppressed_globally: 0 },
            "others are not affected"
        );
        assert!(noise.due(start).is_empty(), "not before an interval");
        let later = start + SUMMARY_INTERVAL;
        assert_eq!(noise.due(later), vec![(Some(client), 100 - BURST as u64)]);
        assert!(noise.due(later).is_empty());
        assert_eq!(
            noise.admit(client, later + Duration::from_secs(1)),
            Verdict::Write { suppressed: 0, suppressed_globally: 0 }
        );
    }

    #[test]
    fn a_dropped_count_is_reported_with_the_next_line_written() {
        let mut noise = Noise::default();
        let start = Instant::now();
        let client = Key::Address("10.0.0.1".parse().unwrap());
        for _ in 0..(BURST as usize + 3) {
            noise.admit(client, start);
        }
        assert_eq!(
            noise.admit(client, start + Duration::from_secs(1)),
            Verdict::Write { suppressed: 3, suppressed_globally: 0 }
        );
    }

    #[test]
    fn all_clients_together_are_bounded_too() {
        let mut noise = Noise::default();
        let start = Instant::now();
        // Each /64 of a /52 is a client of its own, each within its own budget.
        let written = (0..4096u128)
            .map(|i| Key::Address(std::net::IpAddr::V6((0x2001_0db8_0000_0000_u128 << 64 | i << 64).into())))
            .flat_map(|client| (0..10).map(move |_| client))
            .filter(|&client| noise.admit(client, start) != Verdict::Drop)
            .count();
        assert_eq!(written, GLOBAL_BURST as usize);
        assert_eq!(noise.global_due(start), None, "not before an interval");
        let later = start + Duration::from_secs(1);
        let verdict = noise.admit(Key::User(9), later);
        let dropped = 40_960 - GLOBAL_BURST as u64;
        assert_eq!(
            verdict,
            Verdict::Write { suppressed: 0, suppressed_globally: dropped },
            "reported with the next line"
        );
        assert_eq!(noise.global_due(later + SUMMARY_INTERVAL), None, "reported already");

        // A flood that stops is reported all the same.
        let mut noise = Noise::default();
        let start = Instant::now();
        for i in 0..(GLOBAL_BURST as u32 + 7) {
            noise.admit(Key::User(i), start);
        }
        assert_eq!(noise.global_due(start + SUMMARY_INTERVAL), Some(7));
        assert_eq!(noise.global_due(start + SUMMARY_INTERVAL * 2), None);
    }

    #[test]
    fn memory_is_bounded() {
        let mut noise = Noise::default();
        let now = Instant::now();
        for i in 0..(MAX_CLIENTS as u32 * 2) {
            for _ in 0..(BURST as usize + 1) {
                noise.admit(Key::User(i), now);
            }
        }
        assert!(noise.buckets.len() <= MAX_CLIENTS + 1);
    }
}
