//! A token bucket for log lines any host can cause by connecting.
//!
//! Every connection logs where it came from, and a garbage request adds an alert: about
//! 400 bytes per connection that anyone on the network can repeat in a loop to fill the
//! root daemon's disk. A burst is logged in full (so a real incident is visible line by
//! line); past it, lines are counted and the count is logged once lines are allowed again.

use std::time::Instant;

#[derive(Debug)]
pub struct RateLimit {
    burst: f64,
    per_second: f64,
    tokens: f64,
    at: Instant,
    suppressed: u64,
}

impl RateLimit {
    pub fn new(burst: u32, per_second: u32) -> RateLimit {
        RateLimit {
            burst: f64::from(burst),
            per_second: f64::from(per_second),
            tokens: f64::from(burst),
            at: Instant::now(),
            suppressed: 0,
        }
    }

    /// `Some(n)` when a line may be logged now, `n` being how many were not since the last
    /// one that was; `None` when this one is not to be logged.
    pub fn admit(&mut self, now: Instant) -> Option<u64> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_the_rate_and_the_count_of_what_was_left_out() {
        let start = Instant::now();
        let mut limit = RateLimit::new(3, 2);
        assert_eq!((0..3).map(|_| limit.admit(start)).collect::<Vec<_>>(), [Some(0); 3]);
        assert_eq!(limit.admit(start), None);
        assert_eq!(limit.admit(start), None);
        assert_eq!(limit.admit(start + Duration::from_millis(500)), Some(2));
        assert_eq!(limit.admit(start + Duration::from_millis(500)), None);
    }
}
