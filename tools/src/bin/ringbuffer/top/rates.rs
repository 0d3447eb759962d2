//! Rates from successive samples of a ring's pointers. A pointer's move between two
//! samples is known only modulo one turn of the ring, so a ring whose pointers move far
//! is sampled often (every millisecond), and one whose pointers barely move less and less
//! often (`Pace`), so that watching an idle host's rings costs next to nothing. A rate
//! above one ring size per sample interval is under-counted: at worst for the first
//! `MAX_PERIOD` of a burst on an idle ring.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The shortest and longest time between two samples of one ring.
pub const MIN_PERIOD: Duration = Duration::from_millis(1);
pub const MAX_PERIOD: Duration = Duration::from_millis(16);

/// How often one ring is sampled, adapted after each sample to how far its pointers moved.
pub struct Pace {
    period: Duration,
}

impl Pace {
    pub fn new() -> Pace {
        Pace { period: MIN_PERIOD }
    }

    /// The time until the next sample, after one in which the pointers moved at most
    /// `moved` bytes of a ring of `data_bytes`: back to the shortest period beyond a
    /// quarter turn, twice as long below a sixteenth (so the move stays far from a turn).
    pub fn after(&mut self, moved: u64, data_bytes: u64) -> Duration {
        if moved.saturating_mul(4) > data_bytes {
            self.period = MIN_PERIOD;
        } else if moved.saturating_mul(16) < data_bytes {
            self.period = (self.period * 2).min(MAX_PERIOD);
        }
        self.period
    }

    pub fn period(&self) -> Duration {
        self.period
    }
}

use daqflow::ring::Positions;

/// Bytes moved by the producer and by each consumer since the window began.
pub struct Tracker {
    last: Option<Positions>,
    window_start: Instant,
    produced: u64,
    /// By (slot, pid): a slot taken over by another process starts afresh.
    consumed: HashMap<(u32, i32), u64>,
}

/// Bytes per second over one window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rates {
    pub producer: f64,
    pub consumers: HashMap<(u32, i32), f64>,
}

impl Tracker {
    pub fn new(now: Instant) -> Tracker {
        Tracker { last: None, window_start: now, produced: 0, consumed: HashMap::new() }
    }

    /// Adds the moves since the last sample; returns the longest of them.
    pub fn observe(&mut self, sample: Positions) -> u64 {
        let mut longest = 0;
        if let Some(last) = self.last.as_ref().filter(|l| l.data_bytes == sample.data_bytes) {
            let produced = sample.advance(last.put, sample.put);
            self.produced += produced;
            longest = produced;
            for c in sample.consumers.iter().filter(|c| c.pid > 0) {
                // A consumer still joining (pid 0) or new in its slot has no earlier
                // position of its own: its first get pointer is a copy of the put pointer.
                if let Some(before) = last.consumers.iter().find(|b| b.slot == c.slot && b.pid == c.pid) {
                    let consumed = sample.advance(before.get, c.get);
                    *self.consumed.entry((c.slot, c.pid)).or_default() += consumed;
                    longest = longest.max(consumed);
                }
            }
        }
        self.last = Some(sample);
        longest
    }

    /// The rates since the last call (or since `new`), and a new window from `now`.
    pub fn take(&mut self, now: Instant) -> Rates {
        let secs = now.duration_since(self.window_start).as_secs_f64();
        let per_second = |bytes: u64| if secs > 0.0 { bytes as f64 / secs } else { 0.0 };
        let rates = Rates {
            producer: per_second(self.produced),
            consumers: self.consumed.iter().map(|(&k, &b)| (k, per_second(b))).collect(),
        };
        self.window_start = now;
        self.produced = 0;
        self.consumed.clear();
        rates
    }

    pub fn last(&self) -> Option<&Positions> {
        self.last.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use daqflow::ring::ConsumerPosition;

    fn at(put: u64, consumers: &[(u32, i32, u64)]) -> Positions {
        Positions {
            data_bytes: 1000,
            producer_pid: 1,
            put,
            consumers: consumers.iter().map(|&(slot, pid, get)| ConsumerPosition { slot, pid, get }).collect(),
        }
    }

    #[test]
    fn moves_are_summed_across_wraps() {
        let t0 = Instant::now();
        let mut t = Tracker::new(t0);
        t.observe(at(900, &[(0, 5, 800)]));
        t.observe(at(100, &[(0, 5, 950)])); // the producer wrapped: 200 bytes
        t.observe(at(300, &[(0, 5, 50)])); // the consumer wrapped: 100 + 50 + 100
        let r = t.take(t0 + Duration::from_secs(2));
        assert_eq!(r.producer, 200.0);
        assert_eq!(r.consumers[&(0, 5)], 125.0);
        // A new window starts empty.
        let r = t.take(t0 + Duration::from_secs(3));
        assert_eq!(r.producer, 0.0);
        assert!(r.consumers.is_empty());
    }

    #[test]
    fn a_new_client_in_a_slot_starts_afresh() {
        let t0 = Instant::now();
        let mut t = Tracker::new(t0);
        t.observe(at(0, &[(0, 5, 0)]));
        t.observe(at(500, &[(0, 0, 500)])); // pid 5 left, another is joining
        t.observe(at(600, &[(0, 6, 500)]));
        t.observe(at(700, &[(0, 6, 650)]));
        let r = t.take(t0 + Duration::from_secs(1));
        assert_eq!(r.producer, 700.0);
        assert_eq!(r.consumers.get(&(0, 5)), None);
        assert_eq!(r.consumers[&(0, 6)], 150.0);
    }

    #[test]
    fn an_idle_ring_is_sampled_rarely_and_a_busy_one_often() {
        let mut pace = Pace::new();
        for _ in 0..10 {
            pace.after(0, 1000);
        }
        assert_eq!(pace.period(), MAX_PERIOD, "idle");
        assert_eq!(pace.after(300, 1000), MIN_PERIOD, "a quarter turn in one sample");
        assert_eq!(pace.after(100, 1000), MIN_PERIOD, "a tenth: kept");
        assert_eq!(pace.after(50, 1000), MIN_PERIOD * 2, "a twentieth: slower");
        assert_eq!(pace.after(u64::MAX, 1000), MIN_PERIOD);
    }

    #[test]
    fn observe_returns_the_longest_move() {
        let mut t = Tracker::new(Instant::now());
        assert_eq!(t.observe(at(900, &[(0, 5, 800)])), 0, "nothing to compare with");
        assert_eq!(t.observe(at(100, &[(0, 5, 950)])), 200);
        assert_eq!(t.observe(at(150, &[(0, 5, 50)])), 100);
    }
}
