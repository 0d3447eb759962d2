//! Rates from successive samples of a ring's pointers. A pointer's move between two
//! samples is known only modulo one turn of the ring, so samples are taken often (every
//! millisecond): a rate above one ring size per sample interval is under-counted.

use std::collections::HashMap;
use std::time::Instant;

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

    pub fn observe(&mut self, sample: Positions) {
        if let Some(last) = self.last.as_ref().filter(|l| l.data_bytes == sample.data_bytes) {
            self.produced += sample.advance(last.put, sample.put);
            for c in sample.consumers.iter().filter(|c| c.pid > 0) {
                // A consumer still joining (pid 0) or new in its slot has no earlier
                // position of its own: its first get pointer is a copy of the put pointer.
                if let Some(before) = last.consumers.iter().find(|b| b.slot == c.slot && b.pid == c.pid) {
                    *self.consumed.entry((c.slot, c.pid)).or_default() += sample.advance(before.get, c.get);
                }
            }
        }
        self.last = Some(sample);
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
    use std::time::Duration;

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
}
