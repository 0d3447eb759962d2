//! A bound on the log lines any one client can cause.
//!
//! Anyone who can reach the port can make the daemon log (a connection, a garbage line,
//! a hang-up: about 400 bytes), so a flood of garbage connections would fill the disk of
//! a root daemon. Each client (a user of this host, else an address or IPv6 /64) gets a
//! token bucket of lines; lines beyond it are counted, not written, and a summary line
//! per client says how many were dropped once a summary interval has passed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::peer::Key;

/// Lines a client may cause in a burst.
const BURST: f64 = 60.0;
/// Lines per second a client may cause on average.
const RATE: f64 = 2.0;
/// At most one summary line per client this often.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(10);
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

#[derive(Debug, Default)]
pub struct Noise {
    buckets: HashMap<Option<Key>, Bucket>,
}

/// What to do with a client's line.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Write it (after a summary of `suppressed` lines dropped before it, when not 0).
    Write {
        suppressed: u64,
    },
    Drop,
}

impl Noise {
    pub fn admit(&mut self, client: Key, now: Instant) -> Verdict {
        let key = self.slot_for(client, now);
        let bucket =
            self.buckets.entry(key).or_insert(Bucket { tokens: BURST, filled: now, suppressed: 0, since: now });
        bucket.tokens = (bucket.tokens + now.saturating_duration_since(bucket.filled).as_secs_f64() * RATE).min(BURST);
        bucket.filled = now;
        if bucket.tokens < 1.0 {
            bucket.suppressed += 1;
            return Verdict::Drop;
        }
        bucket.tokens -= 1.0;
        Verdict::Write { suppressed: std::mem::take(&mut bucket.suppressed) }
    }

    /// The summaries due: `(client, lines dropped)` for each client that has dropped
    /// lines for a summary interval (called now and then, so a client that went quiet
    /// still gets its summary). `None` is the shared bucket.
    pub fn due(&mut self, now: Instant) -> Vec<(Option<Key>, u64)> {
        let mut out = Vec::new();
        for (key, bucket) in &mut self.buckets {
            if bucket.suppressed > 0 && now.saturating_duration_since(bucket.since) >= SUMMARY_INTERVAL {
                out.push((*key, std::mem::take(&mut bucket.suppressed)));
                bucket.since = now;
            }
        }
        out
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
        assert_eq!(noise.admit(Key::User(8), start), Verdict::Write { suppressed: 0 }, "others are not affected");
        assert!(noise.due(start).is_empty(), "not before an interval");
        let later = start + SUMMARY_INTERVAL;
        assert_eq!(noise.due(later), vec![(Some(client), 100 - BURST as u64)]);
        assert!(noise.due(later).is_empty());
        assert_eq!(noise.admit(client, later + Duration::from_secs(1)), Verdict::Write { suppressed: 0 });
    }

    #[test]
    fn a_dropped_count_is_reported_with_the_next_line_written() {
        let mut noise = Noise::default();
        let start = Instant::now();
        let client = Key::Address("10.0.0.1".parse().unwrap());
        for _ in 0..(BURST as usize + 3) {
            noise.admit(client, start);
        }
        assert_eq!(noise.admit(client, start + Duration::from_secs(1)), Verdict::Write { suppressed: 3 });
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
